"""Per-job scratch space (``WORK_DIR/<job_id>/``) and the sweeper that removes what crashes leave behind.

A job's directory is made empty when the job starts and removed when it ends, whatever the outcome
(the runner sees to that). Only a killed process leaves one behind; ``sweep`` removes those once nothing
inside has been written for ``TEMP_MAX_AGE_HOURS``.

Both only ever delete inside ``WORK_DIR``: symbolic links are removed as links, never followed, and paths
built from user-supplied names are refused when they would point outside a workspace.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Job ids are URL-safe tokens (see pipeline.jobs.new_job_id); anything else cannot name a workspace, so
# an id arriving over HTTP (the FC runner's /jobs/run) can never become "../something".
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def for_job(cls, work_dir: Path, job_id: str) -> Workspace:
        if not _SAFE_NAME.fullmatch(job_id):
            raise ValueError(f"not a usable job id for a work directory: {job_id!r}")
        return cls(Path(work_dir) / job_id)

    def create(self) -> Workspace:
        """Make the directory, empty: leftovers of an interrupted attempt are removed first, because a
        job always starts again from scratch."""
        self.remove()
        self.root.mkdir(parents=True, mode=0o700)
        return self

    def path(self, *parts: str) -> Path:
        """A path inside the workspace. Raises ``ValueError`` for parts that would leave it (``..``,
        absolute paths), so names that came from users are safe to pass."""
        root = Path(os.path.normpath(self.root))
        normal = Path(os.path.normpath(root.joinpath(*parts)))
        if normal != root and root not in normal.parents:
            raise ValueError(f"path {'/'.join(parts)!r} leaves the workspace")
        return normal

    def directory(self, *parts: str) -> Path:
        """Like ``path``, and the directory exists afterwards."""
        target = self.path(*parts)
        target.mkdir(parents=True, exist_ok=True)
        return target

    def remove(self) -> None:
        _remove_entry(self.root)

    @property
    def exists(self) -> bool:
        return self.root.is_dir()


def sweep(
    work_dir: Path,
    max_age_s: float,
    *,
    now: float | None = None,
    keep: Collection[str] = (),
) -> list[Path]:
    """Remove the entries of ``work_dir`` in which nothing was modified for ``max_age_s``; return them.

    An entry's age is that of the newest thing inside it (directories walked without following links),
    so a job that is still writing is never swept however long it has run. ``keep`` names entries
    (running jobs' ids) that stay whatever their age. Entries that vanish or cannot be read meanwhile
    are skipped and logged, never raised: the sweeper runs unattended."""
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        entries = list(os.scandir(work_dir))
    except FileNotFoundError:
        return removed
    kept = set(keep)
    for entry in entries:
        if entry.name in kept:
            continue
        path = Path(entry.path)
        try:
            if now - _newest_mtime(path) < max_age_s:
                continue
            _remove_entry(path)
        except FileNotFoundError:
            continue  # gone meanwhile
        except OSError as exc:
            log.warning("sweep: could not remove %s: %s", path, exc)
            continue
        removed.append(path)
    if removed:
        log.info("sweep: removed %d leftover(s) from %s", len(removed), work_dir)
    return removed


def _newest_mtime(path: Path) -> float:
    info = path.lstat()
    newest = info.st_mtime
    if not stat.S_ISDIR(info.st_mode):
        return newest
    for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
        for name in (*dirnames, *filenames):
            try:
                newest = max(newest, (Path(dirpath) / name).lstat().st_mtime)
            except FileNotFoundError:
                continue
    return newest


def _remove_entry(path: Path) -> None:
    """Remove a file, a link (the link itself) or a directory tree (links inside removed, not followed)."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


class Sweeper:
    """Sweeps ``work_dir`` once at start and then every ``interval_s`` on a background thread.

    Built only when TEMP_CLEANUP_ENABLED (the caller decides). ``keep`` is asked before each sweep for
    the ids of jobs that are running, whose directories stay whatever their age."""

    def __init__(
        self,
        work_dir: Path,
        max_age_s: float,
        *,
        interval_s: float = 3600.0,
        keep: Callable[[], Collection[str]] = frozenset,
        clock: Callable[[], float] = time.time,
        on_sweep: Callable[[list[Path]], None] | None = None,
    ) -> None:
        if max_age_s <= 0 or interval_s <= 0:
            raise ValueError("max_age_s and interval_s must be above 0")
        self.work_dir = Path(work_dir)
        self.max_age_s = max_age_s
        self.interval_s = interval_s
        self._keep = keep
        self._clock = clock
        self._on_sweep = on_sweep  # told what each sweep removed (metrics, tests)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sweeps = 0  # completed sweeps, for health checks and tests

    def sweep_once(self) -> list[Path]:
        removed = sweep(self.work_dir, self.max_age_s, now=self._clock(), keep=self._keep())
        self.sweeps += 1
        if self._on_sweep is not None:
            self._on_sweep(removed)
        return removed

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="work-dir-sweeper", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _loop(self) -> None:
        while True:
            try:
                self.sweep_once()
            except Exception:
                log.exception("sweep of %s failed; trying again in %.0f s", self.work_dir, self.interval_s)
            if self._stop.wait(self.interval_s):
                return
