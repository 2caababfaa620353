"""A job function for restart tests, loaded by a real ``python server.py`` through ``JOB_FUNCTION``
(``tests.support.restart_jobs:analyze``).

It runs the real analysis of the job's sources (download, probe, audio, Whisper, screenshots) with the
settings the server read from the environment, saves the progress record at every event, and returns
the transcripts and what progress it found saved when it started (so a test sees that a resumed job
found the progress of the run that was cut off). Nothing Feishu: the bot's delivery is tested elsewhere.
"""

from __future__ import annotations

from typing import Any

from pipeline.analyze import Analyzer
from pipeline.config import PipelineSettings
from pipeline.jobs.progress import BatchProgress
from pipeline.jobs.runner import JobContext, JobOutcome
from pipeline.sources import default_registry


def analyze(context: JobContext) -> JobOutcome:
    settings = PipelineSettings.load()
    job = context.job
    found = dict(job.progress)
    progress = BatchProgress.new([source.display_name for source in job.spec.sources])

    def on_progress(event: Any) -> None:
        if progress.apply(event):
            context.save_progress(progress.to_dict())

    analyzer = Analyzer(settings, default_registry(settings, include_local=False))
    batch = analyzer.analyze_batch(
        job.spec.sources,
        job.spec.options,
        out_dir=context.workspace.directory("out"),
        scratch_dir=context.workspace.directory("scratch"),
        on_progress=on_progress,
        cancel=context.cancel,
    )
    context.save_progress(progress.to_dict())
    return JobOutcome.done(
        {
            "attempt": job.attempts,
            "found_progress": found,
            "transcripts": [video.transcript.text if video.transcript else "" for video in batch.videos],
            "ok": batch.ok_count,
        }
    )
