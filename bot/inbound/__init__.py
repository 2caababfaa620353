"""What comes in from Feishu: the webhook adapter (verify, decrypt, replay window, dedupe), message
parsing (``commands``), intake (a message becomes a queued job and its first card) and card actions."""
