"""Which moments to screenshot: pure functions of the plan, the probed media, the scene cuts and the
speech anchors, giving the times to capture (with why) and notes for the user. ``pipeline.frames``
captures them."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

from pipeline.models import MediaInfo, ScreenshotMode, ScreenshotPlan, ShotReason, UserText

Shot = tuple[float, ShotReason]

# --- selection ------------------------------------------------------------------------------------
EARLY_FRAME_S = 1.0  # the opening shot, late enough to miss a fade from black
AFTER_CUT_S = 0.5  # a frame shortly after a cut, past any dissolve
MIN_SCENE_GAP_S = 1.0
MIN_SPEECH_GAP_S = 3.0
COVERAGE_MOMENTS = 4
END_MARGIN_S = 0.1


# --------------------------------------------------------------------------------------------------
# Selection
# --------------------------------------------------------------------------------------------------


def select_times(
    plan: ScreenshotPlan,
    media: MediaInfo,
    *,
    scene_cuts: Sequence[float],
    speech_anchors: Sequence[float],
) -> tuple[list[Shot], list[UserText]]:
    """The moments to capture, in time order, and notes for the user (times skipped, caps applied).
    A file without video gets no moments (the pipeline says "audio only" itself)."""
    if media.video is None:
        return [], []
    duration = media.duration_s if media.duration_s > 0 else None
    if plan.mode is ScreenshotMode.TIMES:
        return _requested_times(plan, duration)
    if plan.mode is ScreenshotMode.INTERVAL:
        return _interval_times(plan, duration)
    return _scene_times(plan, duration, scene_cuts, speech_anchors), []


def _requested_times(plan: ScreenshotPlan, duration: float | None) -> tuple[list[Shot], list[UserText]]:
    wanted = sorted(set(plan.times_s))[: plan.max_shots]
    if duration is None:
        return [(t, ShotReason.TIME) for t in wanted], []
    inside = [t for t in wanted if t <= duration]
    beyond = [t for t in wanted if t > duration]
    notes = [_beyond_end_note(beyond, duration)] if beyond else []
    if inside:
        return [(t, ShotReason.TIME) for t in inside], notes
    middle = duration / 2
    notes.append(
        UserText(
            zh=f"给定的时间都超出了视频长度，已改为截取中间的一帧（{_clock(middle)}）。",
            en=f"All the given times are past the end, so one frame from the middle ({_clock(middle)}) was taken.",
        )
    )
    return [(middle, ShotReason.TIME)], notes


def _beyond_end_note(beyond: Sequence[float], duration: float) -> UserText:
    shown = ", ".join(_clock(t) for t in beyond)
    return UserText(
        zh=f"视频只有 {_clock(duration)}，超出时长的截图时间已跳过：{shown}。",
        en=f"The video is only {_clock(duration)} long; screenshot times past the end were skipped: {shown}.",
    )


def _interval_times(plan: ScreenshotPlan, duration: float | None) -> tuple[list[Shot], list[UserText]]:
    interval = plan.interval_s or 0.0
    if interval <= 0:  # parse() refuses this; a plan built by hand gets one frame
        return [(0.0, ShotReason.INTERVAL)], []
    if duration is None:
        return [(0.0, ShotReason.INTERVAL)], []
    if interval >= duration:
        middle = duration / 2
        note = UserText(
            zh=f"截图间隔 {interval:g} 秒不短于视频长度（{_clock(duration)}），已截取中间的一帧。",
            en=f"The interval of {interval:g} s is not shorter than the video ({_clock(duration)}), "
            "so one frame from the middle was taken.",
        )
        return [(middle, ShotReason.INTERVAL)], [note]
    # Each shot sits in the middle of its window: never the (often black) first frame or the last.
    count = math.ceil((duration - interval / 2) / interval)
    shots = [(interval / 2 + i * interval, ShotReason.INTERVAL) for i in range(count)]
    if len(shots) <= plan.max_shots:
        return shots, []
    note = UserText(
        zh=f"每 {interval:g} 秒一张会有 {len(shots)} 张截图，超过上限 {plan.max_shots} 张，已在全片均匀选取。",
        en=f"One screenshot every {interval:g} s would make {len(shots)}, more than the limit of "
        f"{plan.max_shots}; {plan.max_shots} were spread evenly over the video instead.",
    )
    return _spread_evenly(shots, plan.max_shots), [note]


def _scene_times(
    plan: ScreenshotPlan,
    duration: float | None,
    scene_cuts: Sequence[float],
    speech_anchors: Sequence[float],
) -> list[Shot]:
    """An early frame, a frame shortly after each cut, then speech anchors and a few evenly placed
    moments where nothing is near yet (so a short video without cuts or speech still gets more than
    its opening); capped at ``max_shots`` by spreading evenly over the video. Near-duplicates among
    them are dropped at capture."""
    latest = max(0.0, duration - END_MARGIN_S) if duration is not None else math.inf
    early = min(EARLY_FRAME_S, duration * 0.1) if duration is not None else 0.0
    speech_gap = max(MIN_SPEECH_GAP_S, (duration or 0.0) / (plan.max_shots * 2))
    taken: list[float] = [early]
    shots: list[Shot] = [(early, ShotReason.SCENE)]
    for cut in sorted(c for c in scene_cuts if c >= 0):
        _take_if_clear(shots, taken, min(float(cut) + AFTER_CUT_S, latest), ShotReason.SCENE, MIN_SCENE_GAP_S)
    for anchor in sorted(float(a) for a in speech_anchors if 0 <= a <= latest):
        _take_if_clear(shots, taken, anchor, ShotReason.SPEECH, speech_gap)
    if duration is not None:
        coverage_gap = min(speech_gap, duration / (COVERAGE_MOMENTS * 2))
        for i in range(COVERAGE_MOMENTS):
            moment = duration * (i + 0.5) / COVERAGE_MOMENTS
            _take_if_clear(shots, taken, moment, ShotReason.SCENE, coverage_gap)
    shots.sort()
    return _spread_evenly(shots, plan.max_shots)


def _take_if_clear(shots: list[Shot], taken: list[float], time_s: float, reason: ShotReason, gap: float) -> None:
    """Add ``time_s`` unless a moment already taken lies within ``gap`` of it (``taken`` stays sorted)."""
    i = bisect.bisect_left(taken, time_s)
    neighbours = taken[max(0, i - 1) : i + 1]
    if any(abs(time_s - t) < gap for t in neighbours):
        return
    taken.insert(i, time_s)
    shots.append((time_s, reason))


def _spread_evenly(shots: Sequence[Shot], limit: int) -> list[Shot]:
    """At most ``limit`` shots (sorted by time), as evenly spread over their span as the candidates
    allow; the first is always kept."""
    if len(shots) <= limit:
        return list(shots)
    if limit <= 1:
        return list(shots[:1])
    first, last = shots[0][0], shots[-1][0]
    remaining = list(shots)
    chosen: list[Shot] = []
    for i in range(limit):
        target = first + (last - first) * i / (limit - 1)
        best = min(remaining, key=lambda shot: abs(shot[0] - target))
        remaining.remove(best)
        chosen.append(best)
    return sorted(chosen)


def _clock(seconds: float) -> str:
    """``75`` -> ``1:15``, ``75.5`` -> ``1:15.5``; an hour or more -> ``1:02:03``."""
    tenths = round(seconds * 10)
    whole, fraction = divmod(tenths, 10)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    stamp = f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
    return f"{stamp}.{fraction}" if fraction else stamp
