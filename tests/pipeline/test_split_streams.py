"""Video pages that offer picture and sound only as separate files (Bilibili, most YouTube qualities, DASH
players): yt-dlp's generic extractor reads a real DASH manifest from a page on the loopback media server,
both files are downloaded through the guarded downloader and merged by ffmpeg without re-encoding."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import ip_network
from pathlib import Path

import pytest
import requests

from pipeline import ffmpeg
from pipeline.download import DownloadPolicy
from pipeline.errors import JobCancelled, NotAVideoError, TooLargeError, UnsupportedSourceError
from pipeline.models import CancelToken, VideoSource
from pipeline.netguard import AddressGuard, guarded_session
from pipeline.sources import UrlFetcher
from pipeline.video_pages import VideoPageResolver, page_format_spec
from tests.support import media
from tests.support.media_server import MediaServer

POLICY = DownloadPolicy(
    max_bytes=50 * 1024 * 1024, connect_timeout_s=5, read_timeout_s=5, retries=1, backoff_base_s=0.01
)


@pytest.fixture(scope="module")
def video_only(speech_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The speech video's picture alone (H.264 in MP4, no audio stream)."""
    path = tmp_path_factory.mktemp("split") / "video-only.mp4"
    media._run(["ffmpeg", "-y", "-v", "error", "-i", str(speech_video), "-an", "-c", "copy", str(path)])
    return path


@pytest.fixture
def session() -> requests.Session:
    return guarded_session(AddressGuard(allowed_networks=(ip_network("127.0.0.1/32"),)))


def representation(rep_id: str, name: str, *, height: int = 0, bandwidth: int, codecs: str) -> str:
    size = f' width="{height * 16 // 9}" height="{height}"' if height else ""
    attributes = f'id="{rep_id}" codecs="{codecs}" bandwidth="{bandwidth}"{size}'
    return f"<Representation {attributes}><BaseURL>{name}</BaseURL></Representation>"


def manifest(
    video_reps: Sequence[str],
    audio_reps: Sequence[str],
    *,
    webm_video: Sequence[str] = (),
    webm_audio: Sequence[str] = (),
) -> str:
    """A static DASH manifest whose representations are whole files (BaseURL only, no segments)."""
    sets = [("video/mp4", "video", video_reps), ("audio/mp4", "audio", audio_reps)]
    sets += [("video/webm", "video", webm_video), ("audio/webm", "audio", webm_audio)]
    adaptation_sets = "".join(
        f'<AdaptationSet mimeType="{mime}" contentType="{kind}">{"".join(reps)}</AdaptationSet>'
        for mime, kind, reps in sets
        if reps
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT12S"
     minBufferTime="PT2S" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">
 <Period>{adaptation_sets}</Period>
</MPD>"""


def serve_dash_page(server: MediaServer, mpd: str, *, title: str = "Split recording") -> str:
    server.add_file("talk.mpd", mpd.encode(), "application/dash+xml")
    server.add_page(
        "dash.html",
        f"<!DOCTYPE html><html><head><title>{title}</title></head><body>"
        '<video controls><source src="/media/talk.mpd" type="application/dash+xml"></video></body></html>',
    )
    return server.url("/html/dash.html")


def fetcher(session: requests.Session, policy: DownloadPolicy = POLICY) -> UrlFetcher:
    return UrlFetcher(session, policy, pages=VideoPageResolver(session, policy, max_video_seconds=3600))


def test_separate_video_and_audio_are_downloaded_and_merged(
    media_server: MediaServer, session: requests.Session, video_only: Path, audio_only_file: Path, tmp_path: Path
) -> None:
    media_server.add_file("v720.mp4", video_only.read_bytes())
    media_server.add_file("a128.m4a", audio_only_file.read_bytes(), "audio/mp4")
    page = serve_dash_page(
        media_server,
        manifest(
            [representation("v720", "v720.mp4", height=720, bandwidth=900_000, codecs="avc1.64001f")],
            [representation("a128", "a128.m4a", bandwidth=128_000, codecs="mp4a.40.2")],
        ),
    )
    progress: list[tuple[int, int | None]] = []

    fetched = fetcher(session).fetch(
        VideoSource.url(page), tmp_path, on_bytes=lambda d, t: progress.append((d, t)), cancel=CancelToken()
    )

    info = ffmpeg.probe(fetched.path)
    assert info.video is not None and info.video.codec == "h264"
    assert info.audio is not None and info.audio.codec == "aac"
    assert info.duration_s == pytest.approx(12.0, abs=0.5)
    assert fetched.path.suffix == ".mp4" and fetched.name.startswith("Split recording")
    assert fetched.size_bytes == fetched.path.stat().st_size
    # Each part was fetched once, with the headers yt-dlp chose for it, and only the merged file is left.
    for part in ("/media/v720.mp4", "/media/a128.m4a"):
        assert media_server.hits(part) == 1
        assert media_server.requests_for(part)[0].headers["Referer"] == page
    assert [p.name for p in tmp_path.iterdir()] == [fetched.path.name]
    # Bytes of both parts, counted as one download that only grows.
    done = [d for d, _ in progress]
    assert done == sorted(done)
    assert done[-1] == video_only.stat().st_size + audio_only_file.stat().st_size


def test_modest_mp4_and_m4a_are_preferred(
    media_server: MediaServer, session: requests.Session, video_only: Path, audio_only_file: Path
) -> None:
    media_server.add_file("v720.mp4", video_only.read_bytes())
    media_server.add_file("a128.m4a", audio_only_file.read_bytes(), "audio/mp4")
    page = serve_dash_page(
        media_server,
        manifest(
            [
                representation("v2160", "v2160.mp4", height=2160, bandwidth=20_000_000, codecs="avc1.640033"),
                representation("v720", "v720.mp4", height=720, bandwidth=900_000, codecs="avc1.64001f"),
                representation("v360", "v360.mp4", height=360, bandwidth=300_000, codecs="avc1.64001e"),
            ],
            [
                representation("a48", "a48.m4a", bandwidth=48_000, codecs="mp4a.40.5"),
                representation("a128", "a128.m4a", bandwidth=128_000, codecs="mp4a.40.2"),
            ],
            # Better on paper, but MP4 + M4A merge into an MP4 that every player and OpenCV read.
            webm_video=[representation("v1080", "v1080.webm", height=1080, bandwidth=2_000_000, codecs="vp9")],
            webm_audio=[representation("a160", "a160.webm", bandwidth=160_000, codecs="opus")],
        ),
    )
    chosen = VideoPageResolver(session, POLICY, max_video_seconds=3600).resolve(page)
    assert chosen.url == media_server.url("/media/v720.mp4")  # the best up to 1080p, not 4K
    assert chosen.audio is not None and chosen.audio.url == media_server.url("/media/a128.m4a")
    assert (chosen.ext, chosen.audio.ext, chosen.container_ext) == ("mp4", "m4a", "mp4")
    assert not {"/media/v2160.mp4", "/media/v1080.webm", "/media/a160.webm"} & {r.path for r in media_server.requests}


def test_the_size_cap_covers_both_parts(
    media_server: MediaServer, session: requests.Session, video_only: Path, audio_only_file: Path, tmp_path: Path
) -> None:
    media_server.add_file("v720.mp4", video_only.read_bytes())
    media_server.add_file("a128.m4a", audio_only_file.read_bytes(), "audio/mp4")
    page = serve_dash_page(
        media_server,
        manifest(
            [representation("v720", "v720.mp4", height=720, bandwidth=900_000, codecs="avc1.64001f")],
            [representation("a128", "a128.m4a", bandwidth=128_000, codecs="mp4a.40.2")],
        ),
    )
    # Room for the picture, not for the picture and the sound.
    cap = video_only.stat().st_size + audio_only_file.stat().st_size // 2
    small = DownloadPolicy(max_bytes=cap, connect_timeout_s=5, read_timeout_s=5, retries=0)
    with pytest.raises(TooLargeError) as caught:
        fetcher(session, small).fetch(VideoSource.url(page), tmp_path, on_bytes=None, cancel=CancelToken())
    assert caught.value.limit_bytes == cap
    assert caught.value.user_message.zh and caught.value.user_message.en
    assert list(tmp_path.iterdir()) == []  # neither part is left behind


def test_segmented_only_streams_are_explained(media_server: MediaServer, session: requests.Session) -> None:
    segmented = """<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT12S" minBufferTime="PT2S">
 <Period><AdaptationSet mimeType="video/mp4" contentType="video">
  <SegmentTemplate initialization="init-$RepresentationID$.mp4" media="seg-$RepresentationID$-$Number$.m4s"
                   startNumber="1" duration="4" timescale="1"/>
  <Representation id="v1" codecs="avc1.64001f" width="1280" height="720" bandwidth="900000"/>
 </AdaptationSet></Period>
</MPD>"""
    page = serve_dash_page(media_server, segmented)
    with pytest.raises(NotAVideoError) as caught:
        VideoPageResolver(session, POLICY, max_video_seconds=3600).resolve(page)
    assert "HLS/DASH" in caught.value.user_message.en


def test_format_spec_prefers_one_file_then_separate_ones() -> None:
    spec = page_format_spec(1000).split("/")
    assert spec[0].startswith("best[") and "[filesize<?1000]" in spec[0]
    assert spec[1].startswith("bestvideo[") and "[height<=?1080][ext=mp4]+bestaudio[" in spec[1]
    assert all("[protocol!*=dash]" in alternative for alternative in spec)


def test_merge_av_copies_both_streams_and_reads_local_files_only(
    video_only: Path, audio_only_file: Path, tmp_path: Path
) -> None:
    merged = ffmpeg.merge_av(video_only, audio_only_file, tmp_path / "merged.mkv", cancel=CancelToken())
    info = ffmpeg.probe(merged)
    assert info.container.startswith("matroska")
    assert info.video is not None and info.audio is not None
    assert [p.name for p in tmp_path.iterdir()] == ["merged.mkv"]

    with pytest.raises(UnsupportedSourceError):
        ffmpeg.merge_av(video_only, Path("http://127.0.0.1/a.m4a"), tmp_path / "x.mp4")
    with pytest.raises(ValueError, match="merge_av writes"):
        ffmpeg.merge_av(video_only, audio_only_file, tmp_path / "x.avi")
    cancelled = CancelToken()
    cancelled.cancel()
    with pytest.raises(JobCancelled):
        ffmpeg.merge_av(video_only, audio_only_file, tmp_path / "late.mp4", cancel=cancelled)
    assert [p.name for p in tmp_path.iterdir()] == ["merged.mkv"]
