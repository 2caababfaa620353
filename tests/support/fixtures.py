"""Pytest fixtures for the fakes in this folder (registered by tests/conftest.py)."""

from collections.abc import Iterator

import pytest

from bot.feishu import FeishuClient, RetryPolicy  # cheap: lark_oapi is imported lazily
from tests.support.events import EventFactory
from tests.support.feishu import FakeFeishu
from tests.support.media_server import connect_log, media_server  # noqa: F401 - pytest finds them here

# --- Feishu Open Platform fake (tests/support/feishu/) and webhook events (tests/support/events.py) ---
# Retries in milliseconds: tests exercise the retry paths without waiting for them.
FAST_FEISHU_RETRY = RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.05, max_total_s=5.0)


@pytest.fixture
def fake_feishu() -> Iterator[FakeFeishu]:
    """A fresh fake Open Platform on loopback (random app id/secret), stopped after the test."""
    with FakeFeishu() as fake:
        yield fake


@pytest.fixture
def feishu_client(fake_feishu: FakeFeishu) -> FeishuClient:
    """The real FeishuClient (real lark-oapi) pointed at ``fake_feishu``, with millisecond retries."""
    return FeishuClient(
        fake_feishu.app_id,
        fake_feishu.app_secret,
        domain=fake_feishu.url,
        timeout=10.0,
        retry=FAST_FEISHU_RETRY,
    )


@pytest.fixture
def feishu_events() -> EventFactory:
    """Builds webhook requests ``(headers, body)``, encrypted and signed with the sample credentials
    (verification token ``events.SAMPLE_VERIFICATION_TOKEN``, encrypt key ``"test key"``)."""
    return EventFactory()
