"""A job of the bot's: the job function (``delivery``), the typed job record, the card updater, the
Feishu video sources, the Bitable reader and the results sink."""
