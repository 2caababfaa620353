"""Kept for ``JOB_FUNCTION`` modules written against the earlier layout: the runner lives in
``pipeline.jobs`` now."""

from pipeline.jobs.runner import JobContext, JobFunction, JobOutcome

__all__ = ["JobContext", "JobFunction", "JobOutcome"]
