"""Jobs: the SQLite store that survives restarts, the runner that executes job functions, and the
progress record a job saves as it goes. Nothing here knows Feishu or Function Compute."""

from pipeline.jobs.progress import BatchProgress, VideoProgress, VideoState
from pipeline.jobs.runner import (
    JobContext,
    JobFunction,
    JobOutcome,
    LocalRunner,
    OnFinished,
    Runner,
    SyncRunner,
    internal_error,
    run_job,
)
from pipeline.jobs.store import (
    Job,
    JobNotFoundError,
    JobStatus,
    JobStore,
    interrupted_error,
    job_error,
    new_job_id,
)

__all__ = [
    "BatchProgress",
    "Job",
    "JobContext",
    "JobFunction",
    "JobNotFoundError",
    "JobOutcome",
    "JobStatus",
    "JobStore",
    "LocalRunner",
    "OnFinished",
    "Runner",
    "SyncRunner",
    "VideoProgress",
    "VideoState",
    "internal_error",
    "interrupted_error",
    "job_error",
    "new_job_id",
    "run_job",
]
