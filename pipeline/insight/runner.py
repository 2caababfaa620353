"""Insight for a batch: ``InsightRun`` is made once per batch (one client, one job token budget), asked
for each video as it finishes its CPU stages, and for the overview at the end.

Every call here is network wait: the analyser calls it outside the CPU slot, so the next video's
transcription goes on meanwhile. Nothing raises for a model's failure; a bug in here costs the insight
of one video, never the video.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pipeline.config import PipelineSettings
from pipeline.errors import InvalidOptionsError
from pipeline.insight import prompts
from pipeline.insight.client import InsightError, ModelClient, TokenBudget, problem
from pipeline.insight.models import BatchOverview, OverviewRow, VideoInsight
from pipeline.insight.presets import AdFields, Preset, cap_request, resolve_preset
from pipeline.insight.schemas import OverviewAnswer
from pipeline.insight.video import VideoRequest, analyse_video
from pipeline.models import AnalysisOptions, UserText, VideoResult

log = logging.getLogger(__name__)


class InsightRun:
    def __init__(self, settings: PipelineSettings, options: AnalysisOptions, client: ModelClient | None = None) -> None:
        self._settings = settings
        self._client = client or ModelClient(settings)
        self.budget = TokenBudget(settings.llm_tokens_per_job)
        self.notes: list[UserText] = []
        try:
            self.preset: Preset = resolve_preset(options.preset)
        except InvalidOptionsError as exc:  # the bot and the CLI refuse it earlier; a stored job may not
            self.preset = resolve_preset(None)
            self.notes.append(exc.user_message)
        self.request, request_note = cap_request(options.analysis_request)
        if request_note is not None:
            self.notes.append(request_note)

    def close(self) -> None:
        self._client.close()

    def video(self, result: VideoResult) -> VideoInsight:
        """The insight of one analysed video (transcript and/or screenshots present)."""
        try:
            insight = analyse_video(
                self._client, self._settings, result, VideoRequest(self.preset, self.request), self.budget
            )
        except Exception as exc:  # a bug must not cost the video its transcript and screenshots
            log.exception("insight for video %d crashed", result.index + 1)
            insight = VideoInsight(preset=self.preset.name, request=self.request)
            insight.problems.append(
                problem(
                    "internal_error",
                    "生成 AI 摘要时出现内部错误；文字稿和截图不受影响。",
                    "An internal error stopped the insight; the transcript and screenshots are fine.",
                    f"{type(exc).__name__}: {exc}",
                )
            )
        insight.notes.extend(self.notes)
        return insight

    def overview(self, videos: Sequence[VideoResult]) -> BatchOverview | None:
        """What two or more summarised videos share and how they differ; None for fewer."""
        summarised = [(v, v.insight) for v in videos if v.insight is not None and v.insight.summary]
        if len(summarised) < 2:
            return None
        overview = BatchOverview(rows=[_row(v, i) for v, i in summarised], model=self._settings.llm_model)
        language = next((v.transcript.language for v, _i in summarised if v.transcript), "")
        lines = []
        for row, (_video, insight) in zip(overview.rows, summarised, strict=True):
            lines.append(f"Video {row.video}: {row.name}\nSummary: {insight.summary}")
            if row.hook or row.selling_points:
                lines.append(f"Hook: {row.hook}\nSelling points: {'; '.join(row.selling_points)}")
        try:
            answer, usage = self._client.ask(
                OverviewAnswer, prompts.overview_system(language), "\n\n".join(lines), budget=self.budget
            )
        except InsightError as exc:
            overview.problem = exc.problem
            return overview
        overview.shared, overview.differences, overview.usage = answer.shared.strip(), answer.differences.strip(), usage
        return overview


def _row(video: VideoResult, insight: VideoInsight) -> OverviewRow:
    """A video's line in the side-by-side table, from its own analysis (not re-asked)."""
    hook, points = "", tuple[str, ...]()
    if insight.analysis is not None and insight.analysis.preset == "ad":
        fields = AdFields.model_validate(insight.analysis.fields)
        hook, points = fields.hook, tuple(fields.selling_points)
    gist = insight.summary.split("。")[0].split(". ")[0][:200]
    return OverviewRow(video.index + 1, video.title, hook, points, gist)
