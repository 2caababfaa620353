"""A message's ids are claimed before its job exists. Killed (SIGKILL) in between, the process leaves a
claim nobody finishes; Feishu's redelivery after the restart must take it over and create the job (and
the queued card) exactly once, not be answered "duplicate" and lost.

The moment is made real without touching our code: a trigger on the ``jobs`` table (installed in the
state file from outside) makes the job insert take seconds, the test waits until the claim is on disk,
then kills ``python server.py`` with SIGKILL."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, closing, suppress
from pathlib import Path

import httpx
import pytest

from bot.inbound.dedupe import SeenStore
from tests.support.events import EventFactory
from tests.support.feishu import FakeFeishu
from tests.support.server_process import ServerProcess, running_server

pytestmark = pytest.mark.slow

CLAIM_TIMEOUT_S = 1.0


def state_db(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "data" / "state.sqlite3", timeout=30, isolation_level=None)


def served(tmp_path: Path, fake: FakeFeishu, events: EventFactory) -> AbstractContextManager[ServerProcess]:
    return running_server(tmp_path, fake, events, env={"DEDUPE_CLAIM_TIMEOUT_S": str(CLAIM_TIMEOUT_S)})


def wait_for(condition: Callable[[], object], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_a_redelivery_after_a_kill_between_the_claim_and_the_job_creates_the_job_once(
    tmp_path: Path, fake_feishu: FakeFeishu
) -> None:
    events = EventFactory(app_id=fake_feishu.app_id)
    headers, body = events.text("请分析 https://v.example.com/talk.mp4")
    message_id = events.payload_of(body)["event"]["message"]["message_id"]

    with served(tmp_path, fake_feishu, events) as server:
        with closing(state_db(tmp_path)) as db:
            # A job insert that takes many seconds: 10^8 rows joined inside the trigger.
            db.execute("CREATE TABLE stall (x INTEGER)")
            db.executemany("INSERT INTO stall (x) VALUES (?)", [(n,) for n in range(10_000)])
            db.execute(
                "CREATE TRIGGER stall_job_insert BEFORE INSERT ON jobs BEGIN "
                "SELECT count(*) FROM stall a, stall b WHERE a.x + b.x < 0; END"
            )

        def deliver() -> None:
            with suppress(httpx.TransportError):  # the server is killed under this request
                httpx.post(server.url + "/webhook/event", headers=headers, content=body, timeout=60)

        sender = threading.Thread(target=deliver, daemon=True)
        sender.start()

        def claimed() -> bool:
            with closing(state_db(tmp_path)) as db:
                row = db.execute("SELECT 1 FROM webhook_seen WHERE kind = 'message_id' AND key = ?", (message_id,))
                return row.fetchone() is not None

        wait_for(claimed, "the message id was never recorded")
        server.process.send_signal(signal.SIGKILL)  # between the claim and the job
        server.process.wait(timeout=30)
        sender.join(timeout=60)

    with closing(state_db(tmp_path)) as db:
        db.execute("DROP TRIGGER stall_job_insert")
        db.execute("DROP TABLE stall")
        assert db.execute("SELECT count(*) FROM jobs").fetchone()[0] == 0, "the job was created before the kill"
        (handled_at,) = db.execute(
            "SELECT handled_at FROM webhook_seen WHERE kind = 'message_id' AND key = ?", (message_id,)
        ).fetchone()
    assert handled_at is None  # a claim, never finished
    assert fake_feishu.sent_messages == []

    with served(tmp_path, fake_feishu, events) as server:
        time.sleep(CLAIM_TIMEOUT_S)  # Feishu's first redelivery comes after 15 s; the claim is older than this
        response = httpx.post(server.url + "/webhook/event", headers=headers, content=body, timeout=30)
        assert (response.status_code, response.json()) == (200, {"msg": "ok"})
        again = httpx.post(server.url + "/webhook/event", headers=headers, content=body, timeout=30)
        assert (again.status_code, again.json()) == (200, {"msg": "duplicate"})
        wait_for(lambda: [m for m in fake_feishu.sent_messages if m.parent_id == message_id], "no queued card")

    with closing(state_db(tmp_path)) as db:
        keys = db.execute("SELECT idempotency_key FROM jobs").fetchall()
    assert keys == [(message_id,)]
    assert len([m for m in fake_feishu.sent_messages if m.parent_id == message_id]) == 1


def test_claims_finished_fresh_and_abandoned(tmp_path: Path) -> None:
    seen = SeenStore(tmp_path / "state.sqlite3", claim_timeout_s=30.0)
    keys = [("message_id", "om_1")]
    assert seen.first_time_all(keys, 1000.0, claim=True) is None
    # Another delivery while the first is being handled: a duplicate.
    assert seen.first_time_all(keys, 1010.0, claim=True) == ("message_id", "om_1")
    # Abandoned for longer than the timeout: taken over, once.
    assert seen.first_time_all(keys, 1031.0, claim=True) is None
    assert seen.first_time_all(keys, 1032.0, claim=True) == ("message_id", "om_1")
    # Handled: a duplicate for good.
    seen.handled(keys, 1033.0)
    assert seen.first_time_all(keys, 5000.0, claim=True) == ("message_id", "om_1")
    # Plain records (signatures of /jobs/run) are never taken over.
    assert seen.first_time("jobrun", "sig", 1000.0)
    assert not seen.first_time("jobrun", "sig", 9000.0)


def test_rows_of_the_first_schema_count_as_handled(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.executescript(
            "CREATE TABLE webhook_seen (kind TEXT NOT NULL, key TEXT NOT NULL, seen_at REAL NOT NULL, "
            "PRIMARY KEY (kind, key)) WITHOUT ROWID;"
            "CREATE TABLE schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL);"
            "INSERT INTO schema_versions VALUES ('webhook_seen', 1);"
            "INSERT INTO webhook_seen VALUES ('message_id', 'om_old', 1000.0);"
        )
    seen = SeenStore(path, claim_timeout_s=30.0)
    assert seen.first_time_all([("message_id", "om_old")], 9000.0, claim=True) == ("message_id", "om_old")
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT version FROM schema_versions WHERE component = 'webhook_seen'").fetchone() == (2,)
