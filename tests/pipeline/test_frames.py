"""pipeline.frames: which moments to capture (pure), scene cuts from keyframes, and screenshots
captured from real videos made by ffmpeg."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline import ffmpeg, frames, shot_times
from pipeline.errors import InvalidOptionsError, JobCancelled
from pipeline.models import (
    AudioStream,
    CancelToken,
    MediaInfo,
    ScreenshotPlan,
    ShotReason,
    VideoStream,
)
from tests.pipeline.test_ffmpeg import first_frame_as_ffmpeg_shows_it, keyframe_times, make_rotated
from tests.support import media

COLOURS = {"red": (255, 0, 0), "blue": (0, 0, 255), "green": (0, 128, 0)}


def video_info(duration_s: float = 60.0) -> MediaInfo:
    return MediaInfo(
        duration_s=duration_s,
        size_bytes=1,
        container="mov,mp4,m4a,3gp,3g2,mj2",
        video=VideoStream("h264", 640, 360, 25.0),
        audio=AudioStream("aac", 16000, 1),
    )


def times_of(shots: list[tuple[float, ShotReason]]) -> list[float]:
    return [t for t, _ in shots]


def nearest_colour(path: Path) -> str:
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=float)
    mean = pixels[pixels.shape[0] // 3 :].reshape(-1, 3).mean(axis=0)  # below the time label
    return min(COLOURS, key=lambda name: float(np.abs(mean - COLOURS[name]).sum()))


def reencode(src: Path, dest: Path, *x264: str) -> Path:
    media._run(["ffmpeg", "-y", "-v", "error", "-i", str(src), "-c:v", "libx264", *x264, str(dest)])
    return dest


# --------------------------------------------------------------------------------------------------
# select_times: times
# --------------------------------------------------------------------------------------------------


def test_times_inside_the_video_are_taken_as_given() -> None:
    plan = ScreenshotPlan.parse("times:0,5,12.5,1:00")

    shots, notes = shot_times.select_times(plan, video_info(60.0), scene_cuts=[3.0], speech_anchors=[4.0])

    assert shots == [(0.0, ShotReason.TIME), (5.0, ShotReason.TIME), (12.5, ShotReason.TIME), (60.0, ShotReason.TIME)]
    assert notes == []


def test_times_past_the_end_are_dropped_and_named() -> None:
    plan = ScreenshotPlan.parse("times:5,65,1:10")

    shots, notes = shot_times.select_times(plan, video_info(60.0), scene_cuts=[], speech_anchors=[])

    assert times_of(shots) == [5.0]
    assert len(notes) == 1
    assert "1:05" in notes[0].en and "1:10" in notes[0].en and "1:00" in notes[0].en
    assert "1:05" in notes[0].zh and "1:10" in notes[0].zh


def test_when_every_time_is_past_the_end_the_middle_frame_is_taken() -> None:
    plan = ScreenshotPlan.parse("times:100,200")

    shots, notes = shot_times.select_times(plan, video_info(30.0), scene_cuts=[], speech_anchors=[])

    assert shots == [(15.0, ShotReason.TIME)]
    assert len(notes) == 2
    assert "0:15" in notes[1].en and "0:15" in notes[1].zh


@pytest.mark.parametrize("text", ["interval:0", "interval:-5", "times:-1,3", "times:", "times:abc"])
def test_unusable_plans_are_refused_before_any_selection(text: str) -> None:
    with pytest.raises(InvalidOptionsError):
        ScreenshotPlan.parse(text)


# --------------------------------------------------------------------------------------------------
# select_times: interval
# --------------------------------------------------------------------------------------------------


def test_an_interval_puts_one_shot_in_the_middle_of_each_window() -> None:
    shots, notes = shot_times.select_times(
        ScreenshotPlan.parse("interval:10"), video_info(60.0), scene_cuts=[], speech_anchors=[]
    )

    assert shots == [(t, ShotReason.INTERVAL) for t in (5.0, 15.0, 25.0, 35.0, 45.0, 55.0)]
    assert notes == []


def test_an_interval_over_the_cap_is_spread_evenly_with_a_note() -> None:
    plan = ScreenshotPlan.parse("interval:1", max_shots=20)

    shots, notes = shot_times.select_times(plan, video_info(600.0), scene_cuts=[], speech_anchors=[])

    times = times_of(shots)
    assert len(times) == 20
    assert times[0] == 0.5 and times[-1] == 599.5
    gaps = np.diff(times)
    assert gaps.min() > 25 and gaps.max() < 38  # about 600 / 19 apart
    assert len(notes) == 1 and "600" in notes[0].en and "20" in notes[0].en and "20" in notes[0].zh


def test_an_interval_longer_than_the_video_takes_the_middle() -> None:
    shots, notes = shot_times.select_times(
        ScreenshotPlan.parse("interval:90"), video_info(40.0), scene_cuts=[], speech_anchors=[]
    )

    assert shots == [(20.0, ShotReason.INTERVAL)]
    assert len(notes) == 1 and "90" in notes[0].en


# --------------------------------------------------------------------------------------------------
# select_times: scenes
# --------------------------------------------------------------------------------------------------


def test_scenes_take_an_early_frame_and_a_frame_after_each_cut() -> None:
    shots, notes = shot_times.select_times(
        ScreenshotPlan(), video_info(60.0), scene_cuts=[12.0, 30.0, 47.0], speech_anchors=[]
    )

    assert notes == []
    assert shots[0] == (1.0, ShotReason.SCENE)
    for cut in (12.0, 30.0, 47.0):
        assert (cut + 0.5, ShotReason.SCENE) in shots
    assert times_of(shots) == sorted(times_of(shots))


def test_speech_anchors_are_thinned_out() -> None:
    anchors = [i * 0.8 for i in range(70)]  # a sentence every 0.8 s

    shots, _ = shot_times.select_times(ScreenshotPlan(), video_info(60.0), scene_cuts=[], speech_anchors=anchors)

    speech = [t for t, reason in shots if reason is ShotReason.SPEECH]
    assert 5 <= len(speech) <= 60 / shot_times.MIN_SPEECH_GAP_S
    assert min(np.diff(speech)) >= shot_times.MIN_SPEECH_GAP_S
    assert min(np.diff(times_of(shots))) >= 1.0
    assert all(t in anchors for t in speech)


def test_scenes_are_capped_and_spread_over_the_whole_video() -> None:
    cuts = [i * 2.0 for i in range(1, 1800)]  # an hour with a cut every 2 s

    shots, _ = shot_times.select_times(
        ScreenshotPlan(max_shots=12), video_info(3600.0), scene_cuts=cuts, speech_anchors=[5.0, 700.0]
    )

    times = times_of(shots)
    assert len(times) == 12
    assert times[0] == 1.0  # the early frame survives the cap
    assert times[-1] > 3500
    assert max(np.diff(times)) < 3600 / 11 + 5


def test_a_short_video_without_cuts_or_speech_still_gets_several_moments() -> None:
    shots, _ = shot_times.select_times(ScreenshotPlan(), video_info(9.0), scene_cuts=[], speech_anchors=[])

    times = times_of(shots)
    assert len(times) >= 3
    assert times[0] < 1.0 and times[-1] > 6.0


def test_audio_only_media_gets_no_screenshots() -> None:
    audio_only = MediaInfo(30.0, 1, "mov", None, AudioStream("aac", 16000, 1))

    for plan in (ScreenshotPlan(), ScreenshotPlan.parse("interval:5"), ScreenshotPlan.parse("times:1")):
        assert shot_times.select_times(plan, audio_only, scene_cuts=[1.0], speech_anchors=[2.0]) == ([], [])


# --------------------------------------------------------------------------------------------------
# scene cuts
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def colour_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """9 s: red, blue, green, 3 s each, with keyframes at the cuts as encoders with scene-cut detection
    place them. x264 itself skips the keyframe between two flat colours (a P-frame codes them cheaply),
    so here the keyframes are forced where the cuts are. No running clock: at this size it covers a
    twentieth of the picture, and a change that large is a different picture to the duplicate filter."""
    folder = tmp_path_factory.mktemp("colours")
    plain = media.video(folder / "plain.mp4", duration_s=9.0, scenes=("red", "blue", "green"), label=False)
    return reencode(plain, folder / "colours.mp4", "-preset", "veryfast", "-force_key_frames", "3,6")


@pytest.fixture(scope="module")
def long_gop_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """36 s: red, blue, green, 12 s each, and a single keyframe (no scene-cut detection)."""
    folder = tmp_path_factory.mktemp("longgop")
    plain = media.video(folder / "plain.mp4", duration_s=36.0, scenes=("red", "blue", "green"), label=False)
    return reencode(plain, folder / "longgop.mp4", "-preset", "ultrafast", "-x264-params", "keyint=2000:scenecut=0")


def test_scene_cuts_are_found_at_the_cuts(colour_video: Path) -> None:
    assert keyframe_times(colour_video) == pytest.approx([0.0, 3.0, 6.0], abs=0.05)  # the premise
    info = ffmpeg.probe(colour_video)

    cuts = frames.detect_scene_cuts(colour_video, info)

    # Keyframes sit on the cut frames, so one frame (40 ms) is the honest tolerance.
    assert cuts == pytest.approx([3.0, 6.0], abs=0.041)


@pytest.mark.parametrize("scene", ["navy", "testsrc2"])
def test_one_continuous_scene_has_no_cuts(scene: str, tmp_path: Path) -> None:
    """A still picture, and a moving pattern whose keyframes all differ a little from each other."""
    plain = media.video(tmp_path / "plain.mp4", duration_s=8.0, scenes=(scene,))
    video = reencode(plain, tmp_path / "gop25.mp4", "-preset", "veryfast", "-g", "25")
    assert len(keyframe_times(video)) == 8  # keyframes every second, all inside one scene

    assert frames.detect_scene_cuts(video, ffmpeg.probe(video)) == []


def test_slide_changes_stand_out_from_still_keyframes(tmp_path: Path) -> None:
    """Black text on white: the colours never change, only the words, every 4 s."""
    text = "drawtext=text='Slide %{eif\\:trunc(t/4)+1\\:d}\\: budget %{eif\\:trunc(t/4)*7+3\\:d}':"
    text += "x=40+trunc(t/4)*60:y=80+trunc(t/4)*70:fontsize=48:fontcolor=black"
    slides = tmp_path / "slides.mp4"
    media._run(
        [
            "ffmpeg",
            "-y",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "color=c=white:size=640x360:rate=25",
            "-t",
            "12",
            "-vf",
            text,
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
            str(slides),
        ]
    )
    assert len(keyframe_times(slides)) == 12  # a keyframe every second: mostly identical pictures

    cuts = frames.detect_scene_cuts(slides, ffmpeg.probe(slides))

    assert cuts == pytest.approx([4.0, 8.0], abs=0.041)


def test_long_gops_get_evenly_spaced_candidates(long_gop_video: Path) -> None:
    assert keyframe_times(long_gop_video) == [0.0]  # the premise
    info = ffmpeg.probe(long_gop_video)

    cuts = frames.detect_scene_cuts(long_gop_video, info)

    marks = [0.0, *cuts, info.duration_s]
    assert len(cuts) >= 3
    assert max(np.diff(marks)) <= frames.MAX_KEYFRAME_GAP_S + 1e-6


def test_detect_scene_cuts_skips_audio(audio_only_file: Path) -> None:
    assert frames.detect_scene_cuts(audio_only_file, ffmpeg.probe(audio_only_file)) == []


# --------------------------------------------------------------------------------------------------
# capture
# --------------------------------------------------------------------------------------------------


def test_screenshots_are_jpegs_named_by_time_at_the_right_size(speech_video: Path, tmp_path: Path) -> None:
    info = ffmpeg.probe(speech_video)
    wanted = [(0.5, ShotReason.TIME), (5.0, ShotReason.TIME)]

    shots = frames.capture(speech_video, info, wanted, tmp_path / "full")
    small = frames.capture(speech_video, info, wanted, tmp_path / "small", max_width=160)

    assert [s.time_s for s in shots] == pytest.approx([0.5, 5.0], abs=0.041)
    assert [s.path.name for s in shots] == ["shot_0001_00m00s.jpg", "shot_0002_00m05s.jpg"]
    for shot in shots:
        with Image.open(shot.path) as image:
            assert image.format == "JPEG" and image.size == (320, 240)
    for shot in small:
        with Image.open(shot.path) as image:
            assert image.format == "JPEG" and image.size == (160, 120)
            assert re.fullmatch(r"shot_\d{4}_\d{2}m\d{2}s\.jpg", shot.path.name)


def test_each_screenshot_shows_its_moment(colour_video: Path, tmp_path: Path) -> None:
    info = ffmpeg.probe(colour_video)
    wanted = [(t, ShotReason.TIME) for t in (7.5, 0.5, 4.0, 1.0, 8.9)]  # unsorted: capture sorts

    shots = frames.capture(colour_video, info, wanted, tmp_path)

    assert [nearest_colour(s.path) for s in shots] == ["red", "red", "blue", "green", "green"]
    assert [s.reason for s in shots] == [ShotReason.TIME] * 5  # asked-for times are never deduplicated


def test_screenshots_from_mpeg_ts_show_the_moment_asked_for(colour_video: Path, tmp_path: Path) -> None:
    """MPEG-TS has no index: a seek into the first GOP lands on the next keyframe (3 s) instead."""
    ts = tmp_path / "colours.ts"
    media._run(["ffmpeg", "-y", "-v", "error", "-i", str(colour_video), "-c", "copy", "-f", "mpegts", str(ts)])
    info = ffmpeg.probe(ts)
    wanted = [(t, ShotReason.TIME) for t in (0.5, 2.9, 3.1, 5.9, 6.1)]

    shots = frames.capture(ts, info, wanted, tmp_path / "shots")

    assert [nearest_colour(s.path) for s in shots] == ["red", "red", "blue", "blue", "green"]
    assert [s.time_s for s in shots] == pytest.approx([0.5, 2.9, 3.1, 5.9, 6.1], abs=0.081)


def test_identical_frames_of_a_still_video_are_kept_once(tmp_path: Path) -> None:
    still = media.video(tmp_path / "still.mp4", duration_s=10.0, scenes=("darkgreen",))
    info = ffmpeg.probe(still)
    times, _ = shot_times.select_times(ScreenshotPlan.parse("interval:1"), info, scene_cuts=[], speech_anchors=[])
    assert len(times) == 10

    shots = frames.capture(still, info, times, tmp_path / "shots")

    assert len(shots) == 1
    assert shots[0].time_s == pytest.approx(0.5, abs=0.041)
    assert [p.name for p in (tmp_path / "shots").iterdir()] == [shots[0].path.name]


def test_a_frame_at_the_very_end_is_taken_slightly_earlier(silent_video: Path, tmp_path: Path) -> None:
    info = ffmpeg.probe(silent_video)

    shots = frames.capture(silent_video, info, [(info.duration_s, ShotReason.TIME)], tmp_path)

    assert len(shots) == 1
    assert info.duration_s - 1.0 <= shots[0].time_s < info.duration_s
    assert nearest_colour(shots[0].path) == "blue"


def test_frames_past_the_end_are_skipped_without_failing(silent_video: Path, tmp_path: Path) -> None:
    info = ffmpeg.probe(silent_video)

    shots = frames.capture(silent_video, info, [(1.0, ShotReason.TIME), (50.0, ShotReason.TIME)], tmp_path)

    assert [s.time_s for s in shots] == pytest.approx([1.0], abs=0.041)


def test_screenshots_of_a_rotated_video_are_upright(tmp_path: Path) -> None:
    plain = media.video(tmp_path / "plain.mp4", duration_s=2.0, scenes=("testsrc2",))
    rotated = make_rotated(plain, tmp_path / "rotated.mp4")
    info = ffmpeg.probe(rotated)

    shots = frames.capture(rotated, info, [(0.0, ShotReason.TIME)], tmp_path / "shots")

    with Image.open(shots[0].path) as image:
        assert image.size == (240, 320)
        captured = np.asarray(image.convert("RGB"), dtype=int)
    as_shown = first_frame_as_ffmpeg_shows_it(rotated).astype(int)
    upside_down = np.rot90(as_shown, 2)
    assert np.abs(captured - as_shown).mean() < 6  # JPEG noise only
    assert np.abs(captured - upside_down).mean() > 30


def test_capture_stops_when_cancelled(speech_video: Path, tmp_path: Path) -> None:
    token = CancelToken()
    token.cancel()

    with pytest.raises(JobCancelled):
        frames.capture(speech_video, ffmpeg.probe(speech_video), [(1.0, ShotReason.TIME)], tmp_path, cancel=token)


def test_capture_of_audio_only_media_does_nothing(audio_only_file: Path, tmp_path: Path) -> None:
    info = ffmpeg.probe(audio_only_file)

    assert frames.capture(audio_only_file, info, [(1.0, ShotReason.TIME)], tmp_path / "shots") == []
    assert not (tmp_path / "shots").exists()


# --------------------------------------------------------------------------------------------------
# take_screenshots
# --------------------------------------------------------------------------------------------------


def test_scene_screenshots_show_every_scene_once(colour_video: Path, tmp_path: Path) -> None:
    info = ffmpeg.probe(colour_video)

    shots, notes = frames.take_screenshots(colour_video, info, ScreenshotPlan(), tmp_path)

    assert notes == []
    assert [nearest_colour(s.path) for s in shots] == ["red", "blue", "green"]
    assert shots[1].time_s == pytest.approx(3.5, abs=0.041)


def test_a_long_gop_video_still_shows_every_scene(long_gop_video: Path, tmp_path: Path) -> None:
    info = ffmpeg.probe(long_gop_video)

    shots, _ = frames.take_screenshots(long_gop_video, info, ScreenshotPlan(), tmp_path)

    assert [nearest_colour(s.path) for s in shots] == ["red", "blue", "green"]


def test_speech_anchors_add_moments_in_a_still_talk(speech_video: Path, tmp_path: Path) -> None:
    info = ffmpeg.probe(speech_video)

    shots, _ = frames.take_screenshots(
        speech_video, info, ScreenshotPlan(), tmp_path, speech_anchors=[0.2, 2.0, 6.5, 9.0]
    )

    # testsrc2 (moving), navy, darkgreen: each scene appears, nothing twice from a still part.
    assert 3 <= len(shots) <= 8
    assert len({s.path for s in shots}) == len(shots)
    assert all(s.path.exists() for s in shots)


def test_times_beyond_the_end_come_back_as_notes(speech_video: Path, tmp_path: Path) -> None:
    info = ffmpeg.probe(speech_video)

    shots, notes = frames.take_screenshots(speech_video, info, ScreenshotPlan.parse("times:2,30"), tmp_path)

    assert [s.time_s for s in shots] == pytest.approx([2.0], abs=0.041)
    assert len(notes) == 1 and "0:30" in notes[0].en


def test_shot_file_names_carry_hours_past_an_hour() -> None:
    assert frames.shot_file_name(3, 65.9) == "shot_0003_01m05s.jpg"
    assert frames.shot_file_name(12, 3725.0) == "shot_0012_1h02m05s.jpg"


@pytest.mark.slow
def test_importing_frames_does_not_import_opencv() -> None:
    code = "import sys, pipeline.frames, pipeline.ffmpeg; assert 'cv2' not in sys.modules, 'cv2 imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_a_stream_without_timestamps_fails_soft(silent_video: Path, tmp_path: Path) -> None:
    """A raw H.264 stream: no duration, no timestamps, nothing to seek by. The opening frame is still
    there; frames asked for by time cannot be found, and the user is told so."""
    raw = tmp_path / "raw.h264"
    media._run(["ffmpeg", "-y", "-v", "error", "-i", str(silent_video), "-c", "copy", "-f", "h264", str(raw)])
    info = ffmpeg.probe(raw)
    assert info.duration_s == 0.0  # the premise: nobody knows how long it is

    shots, notes = frames.take_screenshots(raw, info, ScreenshotPlan(), tmp_path / "shots")
    timed, timed_notes = frames.take_screenshots(raw, info, ScreenshotPlan.parse("times:1,3"), tmp_path / "timed")

    assert notes == [] and [nearest_colour(s.path) for s in shots] == ["red"]
    assert timed == []
    assert len(timed_notes) == 1 and "No frame could be read" in timed_notes[0].en


def test_slides_that_differ_only_in_their_title_are_all_kept(tmp_path: Path) -> None:
    """A deck on one background: pHash sees the same picture, but the titles are different slides."""
    parts = []
    for number, title in enumerate(("Budget", "Roadmap", "Hiring")):
        part = tmp_path / f"slide{number}.mp4"
        subprocess.run(
            [
                "ffmpeg",
                "-y",
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "color=c=#1f3b57:size=640x360:rate=25:d=3",
                "-vf",
                f"drawtext=text='{title}':fontsize=44:fontcolor=white:x=(w-text_w)/2:y=(h-text_h)/2",
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-pix_fmt",
                "yuv420p",
                str(part),
            ],
            check=True,
        )
        parts.append(part)
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"file '{p.name}'\n" for p in parts))
    deck = tmp_path / "deck.mp4"
    subprocess.run(
        ["ffmpeg", "-y", "-v", "error", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(deck)],
        check=True,
    )
    info = ffmpeg.probe(deck)
    # Two moments of each slide: the second of each pair is the same picture and is dropped.
    times = [(t, ShotReason.SCENE) for t in (0.5, 1.5, 3.5, 4.5, 6.5, 7.5)]

    shots = frames.capture(deck, info, times, tmp_path / "shots")

    assert [s.time_s for s in shots] == pytest.approx([0.5, 3.5, 6.5], abs=0.05)
