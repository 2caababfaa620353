"""pipeline.ffmpeg against real files made by ffmpeg and espeak-ng: probing, audio extraction, the
keyframe feed, cancellation and the local-files-only rule (checked against a real HTTP server)."""

from __future__ import annotations

import http.server
import subprocess
import threading
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pipeline import ffmpeg, frames
from pipeline.errors import (
    FFmpegError,
    JobCancelled,
    MediaError,
    NotAVideoError,
    UnplayableMediaError,
    UnsupportedSourceError,
)
from pipeline.models import CancelToken, MediaInfo, ShotReason, VideoStream
from tests.support import media

# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def keyframe_times(path: Path) -> list[float]:
    """Keyframe times as ffprobe lists them: the oracle for scan_keyframes."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-skip_frame",
            "nokey",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=pts_time",
            "-of",
            "csv=p=0",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [float(line.strip().strip(",")) for line in out.splitlines() if line.strip().strip(",")]


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that contain ``text``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        line = " ".join(a.decode(errors="replace") for a in args)
        if text in line:
            found.append(line)
    return found


class RecordingServer:
    """A real HTTP server on loopback that records every request it receives."""

    def __init__(self) -> None:
        hits: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.hits = hits
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> RecordingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def recording_server() -> Iterator[RecordingServer]:
    with RecordingServer() as server:
        yield server


@pytest.fixture
def playlists(tmp_path: Path, recording_server: RecordingServer) -> list[Path]:
    """Files that point ffmpeg at the recording server: HLS playlists (one dressed up as .mp4) and a
    DASH manifest."""
    base = f"http://127.0.0.1:{recording_server.port}"
    hls = (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f"#EXTINF:4.0,\n{base}/seg0.ts\n#EXTINF:4.0,\n{base}/seg1.ts\n#EXT-X-ENDLIST\n"
    )
    dash = (
        '<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" '
        'mediaPresentationDuration="PT8S" minBufferTime="PT2S" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">'
        '<Period><AdaptationSet mimeType="video/mp4"><Representation id="1" bandwidth="1000" codecs="avc1">'
        f"<BaseURL>{base}/video.mp4</BaseURL></Representation></AdaptationSet></Period></MPD>\n"
    )
    files = {"list.m3u8": hls, "disguised.mp4": hls, "manifest.mpd": dash}
    paths = []
    for name, text in files.items():
        path = tmp_path / name
        path.write_text(text)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def rotated_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(plain, rotated): the same 320x240 stream, the second flagged to be shown turned a quarter."""
    folder = tmp_path_factory.mktemp("rotation")
    plain = media.video(folder / "plain.mp4", duration_s=2.0, scenes=("testsrc2",))
    return plain, make_rotated(plain, folder / "rotated.mp4")


def make_rotated(plain: Path, rotated: Path) -> Path:
    """Flag ``plain`` as rotated without re-encoding: ``-display_rotation`` (ffmpeg 6+) or the
    ``rotate`` tag (ffmpeg 5)."""
    attempt = subprocess.run(
        ["ffmpeg", "-y", "-v", "error", "-display_rotation", "90", "-i", str(plain), "-c", "copy", str(rotated)],
        capture_output=True,
    )
    if attempt.returncode != 0:
        media._run(
            ["ffmpeg", "-y", "-v", "error", "-i", str(plain), "-c", "copy", "-metadata:s:v", "rotate=90", str(rotated)]
        )
    return rotated


def first_frame_as_ffmpeg_shows_it(path: Path) -> np.ndarray:
    """ffmpeg applies the display matrix itself: its first frame is the player's view."""
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        check=True,
        capture_output=True,
    ).stdout
    info = ffmpeg.probe(path)
    assert info.video is not None
    width, height = info.video.display_size
    return np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)


# --------------------------------------------------------------------------------------------------
# probe
# --------------------------------------------------------------------------------------------------


def test_probe_reads_the_speech_video(speech_video: Path) -> None:
    info = ffmpeg.probe(speech_video)

    assert info.duration_s == pytest.approx(12.0, abs=0.1)
    assert info.size_bytes == speech_video.stat().st_size
    assert "mp4" in info.container
    assert info.video is not None and info.audio is not None
    assert (info.video.codec, info.video.width, info.video.height) == ("h264", 320, 240)
    assert info.video.fps == pytest.approx(25.0)
    assert info.video.rotation == 0
    assert info.video.resolution == "320x240"
    assert info.audio.codec == "aac"
    assert info.audio.sample_rate == 22050  # espeak-ng's rate, kept by the AAC encoder
    assert info.audio.channels == 1
    assert info.bit_rate is not None and info.bit_rate > 0


def test_probe_of_a_silent_video_has_no_audio(silent_video: Path) -> None:
    info = ffmpeg.probe(silent_video)

    assert info.audio is None
    assert info.video is not None
    assert info.duration_s == pytest.approx(4.0, abs=0.1)


def test_probe_of_an_audio_file_has_no_video(audio_only_file: Path, speech_wav: Path) -> None:
    with wave.open(str(speech_wav)) as w:
        speech_s = w.getnframes() / w.getframerate()

    info = ffmpeg.probe(audio_only_file)

    assert info.video is None
    assert info.audio is not None and info.audio.codec == "aac"
    assert info.duration_s == pytest.approx(speech_s, abs=0.1)


def test_cover_art_is_not_a_video(tmp_path: Path, audio_only_file: Path) -> None:
    cover = tmp_path / "cover.png"
    media._run(
        ["ffmpeg", "-y", "-v", "error", "-f", "lavfi", "-i", "color=c=red:size=64x64", "-frames:v", "1", str(cover)]
    )
    with_cover = tmp_path / "song.m4a"
    media._run(
        [
            "ffmpeg",
            "-y",
            "-v",
            "error",
            "-i",
            str(audio_only_file),
            "-i",
            str(cover),
            "-map",
            "0:a",
            "-map",
            "1:v",
            "-c",
            "copy",
            "-disposition:v:0",
            "attached_pic",
            str(with_cover),
        ]
    )

    info = ffmpeg.probe(with_cover)

    assert info.video is None
    assert info.audio is not None


def test_an_empty_file_is_not_a_video(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")

    with pytest.raises(NotAVideoError) as caught:
        ffmpeg.probe(empty)

    assert "empty" in caught.value.user_message.en
    assert "空" in caught.value.user_message.zh


def test_random_bytes_are_unplayable_with_a_plain_reason(random_mp4: Path) -> None:
    with pytest.raises(UnplayableMediaError) as caught:
        ffmpeg.probe(random_mp4)

    error = caught.value
    assert error.code == "unplayable"
    assert isinstance(error.__cause__, FFmpegError)
    assert error.__cause__.tool == "ffprobe" and error.__cause__.returncode != 0
    assert error.__cause__.stderr_tail  # what ffprobe said is kept for the logs
    assert "ffprobe" not in error.user_message.en
    assert error.user_message.zh and error.user_message.en


def test_a_truncated_video_is_reported_as_incomplete(truncated_video: Path) -> None:
    with pytest.raises(UnplayableMediaError) as caught:
        ffmpeg.probe(truncated_video)

    assert "incomplete" in caught.value.user_message.en
    assert "不完整" in caught.value.user_message.zh


def test_a_rotated_video_reports_rotation_and_display_size(rotated_video: tuple[Path, Path]) -> None:
    plain, rotated = rotated_video

    info = ffmpeg.probe(rotated)

    assert info.video is not None
    assert info.video.rotation in (90, 270)
    assert (info.video.width, info.video.height) == (320, 240)
    assert info.video.display_size == (240, 320)
    assert info.video.resolution == "240x320"
    # "Clockwise as a player turns it" must agree with how ffmpeg itself shows the file.
    upright = first_frame_as_ffmpeg_shows_it(plain)
    expected = np.rot90(upright, k=-info.video.rotation // 90)
    shown = first_frame_as_ffmpeg_shows_it(rotated)
    assert np.abs(shown.astype(int) - expected.astype(int)).mean() < 2


@pytest.mark.parametrize("name", ["-i", "http://example.com/a.mp4", "rtmp://host/live", "file:/etc/passwd"])
def test_urls_and_option_like_names_never_reach_ffmpeg(name: str) -> None:
    with pytest.raises(UnsupportedSourceError):
        ffmpeg.probe(Path(name))


def test_missing_files_and_directories_are_refused(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.mp4", tmp_path):
        with pytest.raises(NotAVideoError):
            ffmpeg.probe(path)


# --------------------------------------------------------------------------------------------------
# local files only
# --------------------------------------------------------------------------------------------------


def test_playlists_cannot_make_ffmpeg_fetch_anything(playlists: list[Path], recording_server: RecordingServer) -> None:
    for playlist in playlists:
        with pytest.raises(UnplayableMediaError) as caught:
            ffmpeg.probe(playlist)
        with pytest.raises(FFmpegError) as extracting:
            ffmpeg.extract_audio(playlist, playlist.with_suffix(".wav"))
        with pytest.raises(FFmpegError):
            list(ffmpeg.scan_keyframes(playlist))
        with pytest.raises(FFmpegError):
            ffmpeg.grab_frame(playlist, 1.0)
        assert recording_server.hits == [], playlist.name
        assert not playlist.with_suffix(".wav").exists()
        # Refused by our whitelist, not merely by ffmpeg's own defaults ('file,crypto,data').
        cause = caught.value.__cause__
        assert isinstance(cause, FFmpegError)
        assert "not on whitelist 'file'" in cause.stderr_tail
        assert "not on whitelist 'file'" in extracting.value.stderr_tail


def test_opencv_capture_of_a_playlist_fetches_nothing(
    playlists: list[Path], recording_server: RecordingServer, tmp_path: Path
) -> None:
    # As if a caller skipped probe: capture must still read nothing but local files.
    pretend = MediaInfo(8.0, 100, "mov", VideoStream("h264", 320, 240, 25.0), None)
    for playlist in playlists:
        shots = frames.capture(playlist, pretend, [(1.0, ShotReason.TIME)], tmp_path / playlist.stem)
        assert shots == []
    assert recording_server.hits == []


# --------------------------------------------------------------------------------------------------
# audio
# --------------------------------------------------------------------------------------------------


def test_extract_audio_gives_16k_mono_wav_of_the_video_length(speech_video: Path, tmp_path: Path) -> None:
    dest = tmp_path / "audio.wav"

    result = ffmpeg.extract_audio(speech_video, dest)

    assert result == dest
    with wave.open(str(dest)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        assert w.getnframes() / w.getframerate() == pytest.approx(12.0, abs=0.1)
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    assert np.abs(samples).max() > 1000  # speech, not silence
    assert list(tmp_path.iterdir()) == [dest]


def test_extract_audio_honours_rate_and_channels(speech_video: Path, tmp_path: Path) -> None:
    dest = ffmpeg.extract_audio(speech_video, tmp_path / "a.wav", sample_rate=8000, channels=2)

    with wave.open(str(dest)) as w:
        assert (w.getframerate(), w.getnchannels()) == (8000, 2)


def test_extract_audio_from_a_silent_video_says_there_is_no_audio(silent_video: Path, tmp_path: Path) -> None:
    dest = tmp_path / "audio.wav"

    with pytest.raises(MediaError) as caught:
        ffmpeg.extract_audio(silent_video, dest)

    assert "no audio" in caught.value.user_message.en
    assert "音轨" in caught.value.user_message.zh
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def long_audio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 2.8 hours of AAC made in a second by looping a 10 s clip without re-encoding."""
    folder = tmp_path_factory.mktemp("long")
    clip = folder / "clip.m4a"
    media._run(
        [
            "ffmpeg",
            "-y",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=8000",
            "-t",
            "10",
            "-c:a",
            "aac",
            "-b:a",
            "12k",
            "-ac",
            "1",
            str(clip),
        ]
    )
    long = folder / "long.m4a"
    media._run(["ffmpeg", "-y", "-v", "error", "-stream_loop", "999", "-i", str(clip), "-c", "copy", str(long)])
    return long


def test_cancelling_kills_a_running_extraction(long_audio: Path, tmp_path: Path) -> None:
    dest = tmp_path / "long.wav"
    partial = tmp_path / "long.wav.part"

    # Cancel once ffmpeg is demonstrably at work (its output is growing): no clock involved.
    def started() -> bool:
        return partial.exists() and partial.stat().st_size > 1_000_000

    with pytest.raises(JobCancelled):
        ffmpeg.extract_audio(long_audio, dest, cancel=CancelToken(poll=started, poll_interval_s=0.01))

    assert not dest.exists() and not partial.exists()
    assert processes_mentioning(str(partial)) == []


def test_a_run_past_its_timeout_is_killed(long_audio: Path, tmp_path: Path) -> None:
    with pytest.raises(FFmpegError) as caught:
        ffmpeg.extract_audio(long_audio, tmp_path / "long.wav", timeout_s=0.2)

    assert "timed out" in caught.value.stderr_tail
    assert list(tmp_path.iterdir()) == []


def test_an_already_cancelled_token_stops_a_probe(speech_video: Path) -> None:
    token = CancelToken()
    token.cancel()

    with pytest.raises(JobCancelled):
        ffmpeg.probe(speech_video, cancel=token)


# --------------------------------------------------------------------------------------------------
# keyframes
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyframed_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 20 s video with a keyframe every second (GOP of 25 frames)."""
    folder = tmp_path_factory.mktemp("gop")
    plain = media.video(folder / "plain.mp4", duration_s=20.0, scenes=("testsrc2",))
    out = folder / "gop25.mp4"
    media._run(
        [
            "ffmpeg",
            "-y",
            "-v",
            "error",
            "-i",
            str(plain),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-keyint_min",
            "25",
            str(out),
        ]
    )
    return out


def test_scan_keyframes_yields_every_keyframe_with_its_time(keyframed_video: Path) -> None:
    expected = keyframe_times(keyframed_video)
    assert len(expected) == 20  # the fixture's premise

    scanned = list(ffmpeg.scan_keyframes(keyframed_video, width=64))

    assert [t for t, _ in scanned] == pytest.approx(expected, abs=0.001)
    for _, frame in scanned:
        assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
    assert scanned[0][1].std() > 10  # testsrc2, not a blank picture


def test_scan_keyframes_keeps_colour(tmp_path: Path) -> None:
    video = media.video(tmp_path / "green.mp4", duration_s=1.0, scenes=("green",), label=False)

    (_, frame), *_ = ffmpeg.scan_keyframes(video)

    red, green, blue = frame.reshape(-1, 3).mean(axis=0)
    assert green > 100 and red < 30 and blue < 30


def test_leaving_a_keyframe_scan_early_ends_the_process(keyframed_video: Path) -> None:
    scan = ffmpeg.scan_keyframes(keyframed_video)
    next(scan)
    assert processes_mentioning(str(keyframed_video.absolute())) != []

    scan.close()

    assert processes_mentioning(str(keyframed_video.absolute())) == []


def test_scan_keyframes_of_an_audio_file_fails_cleanly(audio_only_file: Path) -> None:
    with pytest.raises(FFmpegError) as caught:
        list(ffmpeg.scan_keyframes(audio_only_file))

    assert caught.value.tool == "ffmpeg" and caught.value.returncode != 0


# --------------------------------------------------------------------------------------------------
# single frames
# --------------------------------------------------------------------------------------------------


def test_grab_frame_returns_the_frame_as_shown(rotated_video: tuple[Path, Path]) -> None:
    _, rotated = rotated_video

    frame = ffmpeg.grab_frame(rotated, 0.0)

    assert frame is not None and frame.shape == (320, 240, 3)
    assert np.abs(frame.astype(int) - first_frame_as_ffmpeg_shows_it(rotated).astype(int)).mean() < 2


def test_grab_frame_past_the_end_is_none(silent_video: Path) -> None:
    assert ffmpeg.grab_frame(silent_video, 60.0) is None


# --------------------------------------------------------------------------------------------------
# odd descriptions
# --------------------------------------------------------------------------------------------------


def test_a_raw_stream_without_any_duration_probes_as_zero(silent_video: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw.h264"
    media._run(["ffmpeg", "-y", "-v", "error", "-i", str(silent_video), "-c", "copy", "-f", "h264", str(raw)])

    info = ffmpeg.probe(raw)

    assert info.duration_s == 0.0
    assert info.video is not None and info.video.fps == pytest.approx(25.0)


def test_descriptions_with_missing_values_are_read_leniently() -> None:
    description = {
        "format": {"format_name": "matroska,webm", "duration": "N/A", "bit_rate": "N/A"},
        "streams": [
            {"codec_type": "video", "codec_name": "mjpeg", "width": 600, "height": 600, "duration": "N/A"}
            | {"disposition": {"attached_pic": 1}},
            {
                "codec_type": "video",
                "codec_name": "hevc",
                "width": 1920,
                "height": 1080,
                "avg_frame_rate": "0/0",
                "r_frame_rate": "30000/1001",
                "duration": "7.5",
                "tags": {"rotate": "90"},
            },
            {"codec_type": "audio", "codec_name": "opus", "sample_rate": "48000", "channels": 2, "duration": "8.25"},
        ],
    }

    info = ffmpeg.media_info_from_probe(description, size_bytes=123)

    assert info.duration_s == 8.25  # the longest stream when the container does not know
    assert info.bit_rate is None
    assert info.video is not None and info.video.codec == "hevc"  # the cover art is skipped
    assert info.video.fps == pytest.approx(29.97)
    assert info.video.rotation == 90 and info.video.display_size == (1080, 1920)
    assert info.audio is not None and (info.audio.sample_rate, info.audio.channels) == (48000, 2)


def test_a_display_matrix_counts_counter_clockwise() -> None:
    stream = {"codec_type": "video", "codec_name": "h264", "width": 4, "height": 2}
    for matrix_angle, clockwise in ((90, 270), (-90, 90), (180, 180), (-180, 180), (0, 0)):
        described = stream | {"side_data_list": [{"side_data_type": "Display Matrix", "rotation": matrix_angle}]}
        info = ffmpeg.media_info_from_probe({"format": {"duration": "1"}, "streams": [described]}, size_bytes=1)
        assert info.video is not None and info.video.rotation == clockwise


def test_a_description_without_streams_is_unplayable() -> None:
    with pytest.raises(UnplayableMediaError):
        ffmpeg.media_info_from_probe({"format": {"duration": "3"}, "streams": [{"codec_type": "data"}]}, size_bytes=1)
