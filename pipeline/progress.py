"""Kept for ``JOB_FUNCTION`` modules written against the earlier layout: the progress record lives in
``pipeline.jobs`` now."""

from pipeline.jobs.progress import BatchProgress, VideoProgress, VideoState

__all__ = ["BatchProgress", "VideoProgress", "VideoState"]
