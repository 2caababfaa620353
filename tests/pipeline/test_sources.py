"""Sources: the registry, local files, and links, including video pages resolved by yt-dlp, over real
loopback HTTP with the address guard on (only ``127.0.0.1/32`` let through)."""

from __future__ import annotations

import json
from ipaddress import ip_network
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from pipeline.config import PipelineSettings
from pipeline.download import DownloadPolicy
from pipeline.errors import (
    BlockedAddressError,
    DownloadError,
    JobCancelled,
    NotAVideoError,
    SourceError,
    TooLargeError,
    TooLongError,
    UnsupportedSourceError,
)
from pipeline.models import CancelToken, FetchedFile, VideoSource
from pipeline.netguard import AddressGuard, guarded_session
from pipeline.sources import (
    LocalFetcher,
    SourceRegistry,
    UrlFetcher,
    VideoPageResolver,
    default_registry,
)
from tests.support.media_server import MediaServer

POLICY = DownloadPolicy(
    max_bytes=50 * 1024 * 1024, connect_timeout_s=5, read_timeout_s=5, retries=1, backoff_base_s=0.01
)


@pytest.fixture
def session() -> requests.Session:
    return guarded_session(AddressGuard(allowed_networks=(ip_network("127.0.0.1/32"),)))


@pytest.fixture
def settings() -> PipelineSettings:
    return PipelineSettings(_env_file=None, allowed_networks="127.0.0.1/32", download_read_timeout_s=5)


@pytest.fixture
def registry(settings: PipelineSettings) -> SourceRegistry:
    return default_registry(settings, include_local=False)


def resolver(session: requests.Session, max_video_seconds: float = 3600.0) -> VideoPageResolver:
    return VideoPageResolver(session, POLICY, max_video_seconds=max_video_seconds)


# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------


class EchoFetcher:
    """A fetcher of a made-up kind, the way bot/ adds Feishu ones."""

    def fetch(self, source: VideoSource, dest_dir: Path, *, on_bytes: object, cancel: CancelToken) -> FetchedFile:
        path = dest_dir / "echo.bin"
        path.write_bytes(source.locator.encode())
        return FetchedFile(path=path, name=source.display_name, size_bytes=path.stat().st_size)


def test_registry_dispatches_by_kind(tmp_path: Path) -> None:
    registry = SourceRegistry()
    registry.register("echo", EchoFetcher())
    fetched = registry.fetch(VideoSource(kind="echo", locator="file-key-1"), tmp_path / "new", cancel=CancelToken())
    assert fetched.path.read_bytes() == b"file-key-1"
    assert registry.kinds() == frozenset({"echo"})
    with pytest.raises(ValueError, match="already registered"):
        registry.register("echo", EchoFetcher())
    with pytest.raises(UnsupportedSourceError):
        registry.fetch(VideoSource(kind="feishu_file", locator="x"), tmp_path, cancel=CancelToken())


def test_bot_registry_cannot_read_local_files(settings: PipelineSettings, speech_video: Path, tmp_path: Path) -> None:
    bot_registry = default_registry(settings, include_local=False)
    assert bot_registry.kinds() == frozenset({"url"})
    for source in (VideoSource.local(speech_video), VideoSource.local("/etc/passwd")):
        with pytest.raises(UnsupportedSourceError):
            bot_registry.fetch(source, tmp_path, cancel=CancelToken())
    assert default_registry(settings, include_local=True).kinds() == frozenset({"url", "local"})


def test_registry_honours_cancellation_before_fetching(registry: SourceRegistry, media_server: MediaServer) -> None:
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(JobCancelled):
        registry.fetch(VideoSource.url(media_server.url("/media/clip.mp4")), Path("/nonexistent"), cancel=cancel)
    assert media_server.requests == []


# --------------------------------------------------------------------------------------------------
# Local files
# --------------------------------------------------------------------------------------------------


def test_local_file_is_used_in_place(speech_video: Path, tmp_path: Path) -> None:
    progress: list[tuple[int, int | None]] = []
    fetched = LocalFetcher(max_bytes=10**9).fetch(
        VideoSource.local(speech_video),
        tmp_path,
        on_bytes=lambda d, t: progress.append((d, t)),
        cancel=CancelToken(),
    )
    size = speech_video.stat().st_size
    assert fetched.path == speech_video.absolute()
    assert (fetched.name, fetched.size_bytes) == (speech_video.name, size)
    assert progress == [(size, size)]
    assert list(tmp_path.iterdir()) == []  # no copy


def test_local_problems_are_explained(tmp_path: Path, speech_video: Path) -> None:
    fetcher = LocalFetcher(max_bytes=1000)
    cases: list[tuple[VideoSource, type[Exception]]] = [
        (VideoSource.local(tmp_path / "missing.mp4"), SourceError),
        (VideoSource.local(tmp_path), NotAVideoError),
        (VideoSource.local(_touch(tmp_path / "empty.mp4")), NotAVideoError),
        (VideoSource.local(speech_video), TooLargeError),
    ]
    for source, kind in cases:
        with pytest.raises(kind) as caught:
            fetcher.fetch(source, tmp_path / "dl", on_bytes=None, cancel=CancelToken())
        assert isinstance(caught.value, SourceError)
        assert caught.value.user_message.zh and caught.value.user_message.en


def _touch(path: Path) -> Path:
    path.write_bytes(b"")
    return path


# --------------------------------------------------------------------------------------------------
# Links
# --------------------------------------------------------------------------------------------------


def test_direct_link(registry: SourceRegistry, media_server: MediaServer, tmp_path: Path) -> None:
    fetched = registry.fetch(VideoSource.url(media_server.url("/media/clip.mp4")), tmp_path, cancel=CancelToken())
    assert fetched.path.read_bytes() == media_server.files["clip.mp4"].body
    assert fetched.path.parent == tmp_path


def test_guard_is_on_by_default(media_server: MediaServer, tmp_path: Path) -> None:
    plain = default_registry(PipelineSettings(_env_file=None), include_local=False)
    with pytest.raises(BlockedAddressError) as caught:
        plain.fetch(VideoSource.url(media_server.url("/html/video-page.html")), tmp_path, cancel=CancelToken())
    assert caught.value.address == "127.0.0.1"
    assert media_server.requests == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/v.mp4", "/etc/passwd"])
def test_non_http_links_are_unsupported(url: str, registry: SourceRegistry, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedSourceError):
        registry.fetch(VideoSource.url(url), tmp_path, cancel=CancelToken())


def test_video_in_a_web_page_is_found_and_downloaded(
    registry: SourceRegistry, media_server: MediaServer, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    progress: list[tuple[int, int | None]] = []
    fetched = registry.fetch(
        VideoSource.url(media_server.url("/html/video-page.html")),
        tmp_path,
        on_bytes=lambda d, t: progress.append((d, t)),
        cancel=CancelToken(),
    )
    body = media_server.files["clip.mp4"].body
    assert fetched.path.read_bytes() == body
    assert fetched.final_url == media_server.url("/media/clip.mp4")
    assert fetched.name.startswith("Planning meeting")  # the page's title
    assert progress[-1] == (len(body), len(body))
    # Our direct try, then yt-dlp reading the page, then the media file with the headers yt-dlp chose.
    assert media_server.hits("/html/video-page.html") == 2
    media_request = media_server.requests_for("/media/clip.mp4")[0]
    assert media_request.headers["User-Agent"].startswith("Mozilla/")
    assert media_request.headers["Referer"] == media_server.url("/html/video-page.html")
    assert capfd.readouterr() == ("", "")  # yt-dlp printed nothing


def test_page_without_video(registry: SourceRegistry, media_server: MediaServer, tmp_path: Path) -> None:
    with pytest.raises(NotAVideoError) as caught:
        registry.fetch(VideoSource.url(media_server.url("/html/page.html")), tmp_path, cancel=CancelToken())
    assert "没有机器人能读取的视频" in caught.value.user_message.zh
    assert "no video the bot can read" in caught.value.user_message.en
    assert list(tmp_path.iterdir()) == []


def _json_ld_page(server: MediaServer, *, duration: str, content_url: str) -> str:
    video = {
        "@context": "https://schema.org",
        "@type": "VideoObject",
        "name": "All-hands recording",
        "description": "The recording",
        "contentUrl": content_url,
        "duration": duration,
        "uploadDate": "2024-05-01",
        "thumbnailUrl": server.url("/thumb.jpg"),
    }
    return f'<html><head><script type="application/ld+json">{json.dumps(video)}</script></head><body></body></html>'


def test_video_over_the_duration_cap_fails_before_downloading(
    media_server: MediaServer, session: requests.Session, tmp_path: Path
) -> None:
    media_server.add_page(
        "long.html", _json_ld_page(media_server, duration="PT5H", content_url=media_server.url("/media/clip.mp4"))
    )
    fetcher = UrlFetcher(session, POLICY, pages=resolver(session, max_video_seconds=4 * 3600))
    with pytest.raises(TooLongError) as caught:
        fetcher.fetch(
            VideoSource.url(media_server.url("/html/long.html")), tmp_path, on_bytes=None, cancel=CancelToken()
        )
    assert (caught.value.duration_s, caught.value.limit_s) == (5 * 3600, 4 * 3600)
    # yt-dlp's generic extractor looks at the file's headers once; our download never starts.
    assert media_server.hits("/media/clip.mp4") <= 1
    assert list(tmp_path.iterdir()) == []


def test_page_media_pointing_inside_is_blocked(
    media_server: MediaServer, session: requests.Session, tmp_path: Path, connect_log: list[str]
) -> None:
    media_server.add_page(
        "sneaky.html",
        _json_ld_page(media_server, duration="PT1M", content_url="http://169.254.169.254/latest/meta-data/video.mp4"),
    )
    fetcher = UrlFetcher(session, POLICY, pages=resolver(session))
    with pytest.raises(BlockedAddressError) as caught:
        fetcher.fetch(
            VideoSource.url(media_server.url("/html/sneaky.html")), tmp_path, on_bytes=None, cancel=CancelToken()
        )
    assert caught.value.address == "169.254.169.254"
    assert set(connect_log) == {"127.0.0.1"}


# --------------------------------------------------------------------------------------------------
# yt-dlp's own requests
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data", "http://10.0.0.1/x"])
def test_yt_dlp_requests_are_guarded(target: str, session: requests.Session, connect_log: list[str]) -> None:
    with pytest.raises(BlockedAddressError) as caught:
        resolver(session).resolve(target)
    assert caught.value.address == target.split("/")[2]
    assert connect_log == []


def test_yt_dlp_redirect_hops_are_guarded(
    media_server: MediaServer, session: requests.Session, connect_log: list[str]
) -> None:
    target = f"http://127.0.0.2:{media_server.port}/html/video-page.html"
    with pytest.raises(BlockedAddressError) as caught:
        resolver(session).resolve(media_server.url(f"/redirect?to={quote(target, safe='')}"))
    assert caught.value.address == "127.0.0.2"
    assert "127.0.0.2" not in connect_log


def test_yt_dlp_with_the_default_guard_reaches_nothing_local(media_server: MediaServer) -> None:
    default_session = guarded_session(AddressGuard.from_settings(PipelineSettings(_env_file=None)))
    with pytest.raises(BlockedAddressError):
        resolver(default_session).resolve(media_server.url("/html/video-page.html"))
    assert media_server.requests == []


def test_yt_dlp_http_errors_become_download_errors(media_server: MediaServer, session: requests.Session) -> None:
    with pytest.raises(DownloadError) as caught:
        resolver(session).resolve(media_server.url("/status/404"))
    assert (caught.value.status, caught.value.retryable) == (404, False)


def test_site_links_are_claimed_by_site_extractors(session: requests.Session) -> None:
    pages = resolver(session)
    assert pages.claims("https://www.bilibili.com/video/BV1GJ411x7h7")
    assert pages.claims("https://www.youtube.com/watch?v=dQw4w9WgXcQ")
    assert pages.claims("https://www.douyin.com/video/7300000000000000000")
    assert not pages.claims("https://cdn.example.com/files/meeting.mp4")
    assert not pages.claims("http://127.0.0.1:8000/html/video-page.html")
