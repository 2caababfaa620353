"""bot.inbound.dedupe.SeenStore: durable, atomic first-time checks on a real SQLite file."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from bot.inbound.dedupe import SeenStore
from pipeline.jobs import JobStore
from pipeline.models import JobSpec, VideoSource

HOUR = 3600.0


def test_first_time_once_per_kind_and_key(tmp_path: Path) -> None:
    seen = SeenStore(tmp_path / "state.sqlite3")
    assert seen.first_time("event_id", "ev1", now=1000.0)
    assert not seen.first_time("event_id", "ev1", now=1001.0)
    # The same key under another kind is another record.
    assert seen.first_time("message_id", "ev1", now=1002.0)
    assert seen.count() == 2


def test_records_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    first = SeenStore(path)
    assert first.first_time("message_id", "om_1", now=1000.0)
    first.close()
    second = SeenStore(path)
    assert not second.first_time("message_id", "om_1", now=2000.0)


def test_two_stores_on_one_file_agree(tmp_path: Path) -> None:
    a = SeenStore(tmp_path / "state.sqlite3")
    b = SeenStore(tmp_path / "state.sqlite3")
    assert a.first_time("event_id", "x", now=1.0)
    assert not b.first_time("event_id", "x", now=2.0)


def test_concurrent_deliveries_of_one_id_have_exactly_one_winner(tmp_path: Path) -> None:
    stores = [SeenStore(tmp_path / "state.sqlite3") for _ in range(4)]
    barrier = threading.Barrier(16)
    wins: list[bool] = []
    lock = threading.Lock()

    def deliver(store: SeenStore) -> None:
        barrier.wait()
        won = store.first_time("message_id", "om_same", now=5.0)
        with lock:
            wins.append(won)

    threads = [threading.Thread(target=deliver, args=(stores[i % 4],)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 15 + [True]


def test_entries_are_kept_for_the_ttl_and_purged_after_it(tmp_path: Path) -> None:
    seen = SeenStore(tmp_path / "state.sqlite3", ttl_s=8 * HOUR, purge_every_s=HOUR)
    assert seen.first_time("event_id", "old", now=0.0)
    # Within the TTL (a purge runs here too): still remembered.
    assert not seen.first_time("event_id", "old", now=8 * HOUR - 1)
    # Past the TTL, the next call that falls due for a purge removes it.
    assert seen.first_time("event_id", "new", now=9 * HOUR)
    assert seen.count() == 1
    assert seen.first_time("event_id", "old", now=9 * HOUR + 1)


def test_purge_runs_at_intervals_not_on_every_call(tmp_path: Path) -> None:
    minute = 60.0
    seen = SeenStore(tmp_path / "state.sqlite3", ttl_s=8 * HOUR, purge_every_s=HOUR)
    assert seen.first_time("event_id", "a", now=0.0)  # the first call purges (nothing yet)
    assert seen.first_time("event_id", "b", now=30 * minute)
    assert seen.first_time("event_id", "c", now=8 * HOUR + 10 * minute)  # purge due: "a" goes
    assert seen.count() == 2
    # "b" is past the TTL now, but the last purge was 30 minutes ago: nothing is deleted.
    assert seen.first_time("event_id", "d", now=8 * HOUR + 40 * minute)
    assert seen.count() == 3
    assert seen.first_time("event_id", "e", now=9 * HOUR + 10 * minute)  # purge due: "b" goes
    assert seen.count() == 3
    assert seen.purge(now=100 * HOUR) == 3


def test_forget_lets_a_redelivery_through(tmp_path: Path) -> None:
    seen = SeenStore(tmp_path / "state.sqlite3")
    assert seen.first_time("message_id", "om_1", now=1.0)
    seen.forget("message_id", "om_1")
    assert seen.first_time("message_id", "om_1", now=2.0)


def test_a_ttl_under_eight_hours_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 28800"):
        SeenStore(tmp_path / "state.sqlite3", ttl_s=7 * HOUR)


def test_shares_the_job_store_file_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    jobs = JobStore(path)
    seen = SeenStore(path)
    job, created = jobs.create(JobSpec(sources=(VideoSource.url("https://v.example.com/a.mp4"),)))
    assert created
    assert seen.first_time("message_id", "om_1", now=1.0)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        versions = dict(db.execute("SELECT component, version FROM schema_versions").fetchall())
    assert {"jobs", "webhook_seen"} <= tables
    assert versions == {"jobs": 1, "webhook_seen": 2}
    assert jobs.get(job.id) is not None


def test_several_keys_are_recorded_together_and_the_first_repeat_is_named(tmp_path: Path) -> None:
    seen = SeenStore(tmp_path / "state.sqlite3")
    assert seen.first_time_all([("event_id", "e1"), ("message_id", "m1")], now=1000.0) is None
    # A redelivery with a new event id: the new id is kept, the message id is the repeat.
    assert seen.first_time_all([("event_id", "e2"), ("message_id", "m1")], now=1001.0) == ("message_id", "m1")
    assert not seen.first_time("event_id", "e2", now=1002.0)
    assert seen.count() == 3
