"""Streaming download over real loopback HTTP: retries, caps, content checks, names, cancellation."""

from __future__ import annotations

import dataclasses
import socket
import threading
from ipaddress import ip_network
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from pipeline.config import PipelineSettings
from pipeline.download import (
    DownloadPolicy,
    download,
    looks_like_web_page,
    name_from_response,
    safe_filename,
)
from pipeline.errors import (
    BlockedAddressError,
    DownloadError,
    JobCancelled,
    NotAVideoError,
    TooLargeError,
    UnsupportedSourceError,
)
from pipeline.models import CancelToken, FetchedFile
from pipeline.netguard import AddressGuard, guarded_session
from tests.support.media_server import MediaServer

# Short timeouts and near-zero backoff so failures are quick; the real values come from settings.
POLICY = DownloadPolicy(
    max_bytes=50 * 1024 * 1024,
    connect_timeout_s=5.0,
    read_timeout_s=5.0,
    retries=3,
    backoff_base_s=0.01,
    backoff_max_s=0.05,
    chunk_bytes=16 * 1024,
    progress_step_bytes=64 * 1024,
)


@pytest.fixture
def session() -> requests.Session:
    return guarded_session(AddressGuard(allowed_networks=(ip_network("127.0.0.1/32"),)))


def fetch(
    server: MediaServer,
    path: str,
    dest: Path,
    session: requests.Session,
    policy: DownloadPolicy = POLICY,
    **kwargs: object,
) -> FetchedFile:
    kwargs.setdefault("cancel", CancelToken())
    return download(server.url(path), dest, session=session, policy=policy, **kwargs)


def test_downloads_a_video(media_server: MediaServer, session: requests.Session, tmp_path: Path) -> None:
    fetched = fetch(media_server, "/media/clip.mp4", tmp_path, session)
    body = media_server.files["clip.mp4"].body
    assert fetched.path == tmp_path / "clip.mp4"
    assert fetched.path.read_bytes() == body
    assert (fetched.name, fetched.size_bytes, fetched.content_type) == ("clip.mp4", len(body), "video/mp4")
    assert fetched.final_url == media_server.url("/media/clip.mp4")


def test_policy_comes_from_settings() -> None:
    settings = PipelineSettings(
        _env_file=None,
        max_video_bytes=1234,
        download_connect_timeout_s=3,
        download_read_timeout_s=7,
        download_retries=1,
    )
    policy = DownloadPolicy.from_settings(settings, chunk_bytes=4096)
    assert (policy.max_bytes, policy.timeout, policy.retries, policy.chunk_bytes) == (1234, (3.0, 7.0), 1, 4096)


def test_backoff_grows_within_its_cap_and_honours_retry_after() -> None:
    policy = DownloadPolicy(max_bytes=1, backoff_base_s=1.0, backoff_max_s=8.0, retry_after_max_s=60.0)
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (6, 8.0)]:
        delay = policy.backoff_s(attempt, None)
        assert delay is not None
        assert ceiling / 2 <= delay <= ceiling
    assert policy.backoff_s(0, 12.0) == 12.0
    assert policy.backoff_s(0, 3600.0) is None


def test_not_found_is_final(media_server: MediaServer, session: requests.Session, tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as caught:
        fetch(media_server, "/status/404", tmp_path, session)
    assert (caught.value.status, caught.value.retryable) == (404, False)
    assert "404" in caught.value.user_message.zh
    assert media_server.hits("/status/404") == 1
    assert list(tmp_path.iterdir()) == []


def test_server_errors_are_retried_then_reported(
    media_server: MediaServer, session: requests.Session, tmp_path: Path
) -> None:
    with pytest.raises(DownloadError) as caught:
        fetch(media_server, "/status/500", tmp_path, session)
    assert (caught.value.status, caught.value.retryable) == (500, True)
    assert media_server.hits("/status/500") == POLICY.retries + 1


def test_two_failures_then_success(media_server: MediaServer, session: requests.Session, tmp_path: Path) -> None:
    fetched = fetch(media_server, "/flaky/a?fail=2", tmp_path, session)
    assert media_server.hits("/flaky/a") == 3
    assert fetched.path.read_bytes() == media_server.files["clip.mp4"].body


def test_rate_limit_honours_retry_after(media_server: MediaServer, session: requests.Session, tmp_path: Path) -> None:
    fetch(media_server, "/flaky/b?fail=1&code=429&retry_after=0", tmp_path, session)
    assert media_server.hits("/flaky/b") == 2


def test_too_long_retry_after_fails_at_once(
    media_server: MediaServer, session: requests.Session, tmp_path: Path
) -> None:
    with pytest.raises(DownloadError) as caught:
        fetch(media_server, "/flaky/c?fail=5&code=503&retry_after=3600", tmp_path, session)
    assert (caught.value.status, caught.value.retryable) == (503, True)
    assert media_server.hits("/flaky/c") == 1


@pytest.mark.timeout(60)
def test_slow_server_gives_a_timeout_error(
    media_server: MediaServer, session: requests.Session, tmp_path: Path
) -> None:
    policy = dataclasses.replace(POLICY, read_timeout_s=0.3, retries=1)
    with pytest.raises(DownloadError) as caught:
        fetch(media_server, "/slow?delay=30", tmp_path, session, policy)
    assert caught.value.retryable
    assert "read timeout" in caught.value.detail
    assert "超时" in caught.value.user_message.zh
    assert "timed out" in caught.value.user_message.en
    assert media_server.hits("/slow") == 2
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data", "http://10.0.0.1/x"])
def test_redirect_to_internal_address_is_blocked(
    target: str, media_server: MediaServer, session: requests.Session, tmp_path: Path, connect_log: list[str]
) -> None:
    with pytest.raises(BlockedAddressError):
        fetch(media_server, f"/redirect?to={quote(target, safe='')}", tmp_path, session)
    assert connect_log == ["127.0.0.1"]
    assert media_server.hits("/redirect") == 1  # a refusal is not retried
    assert list(tmp_path.iterdir()) == []


def test_redirect_to_other_loopback_address_is_blocked(
    media_server: MediaServer, session: requests.Session, tmp_path: Path, connect_log: list[str]
) -> None:
    target = f"http://127.0.0.2:{media_server.port}/media/clip.mp4"
    with pytest.raises(BlockedAddressError) as caught:
        fetch(media_server, f"/redirect?to={quote(target, safe='')}", tmp_path, session)
    assert caught.value.address == "127.0.0.2"
    assert "127.0.0.2" not in connect_log


def test_redirect_within_the_server_is_followed(
    media_server: MediaServer, session: requests.Session, tmp_path: Path
) -> None:
    fetched = fetch(media_server, "/redirect?to=/media/clip.mp4", tmp_path, session)
    assert fetched.final_url == media_server.url("/media/clip.mp4")
    assert fetched.path.read_bytes() == media_server.files["clip.mp4"].body


def test_guard_is_on_with_default_settings(media_server: MediaServer, tmp_path: Path) -> None:
    plain = guarded_session(AddressGuard.from_settings(PipelineSettings(_env_file=None)))
    with pytest.raises(BlockedAddressError):
        fetch(media_server, "/media/clip.mp4", tmp_path, plain)
    assert media_server.requests == []


def test_web_page_is_not_a_video(media_server: MediaServer, session: requests.Session, tmp_path: Path) -> None:
    with pytest.raises(NotAVideoError) as caught:
        fetch(media_server, "/html/page.html", tmp_path, session)
    assert "web page" in caught.value.detail
    assert "网页" in caught.value.user_message.zh
    assert list(tmp_path.iterdir()) == []


def test_html_body_is_sniffed_whatever_the_content_type(
    media_server: MediaServer, session: requests.Session, tmp_path: Path
) -> None:
    media_server.add_file("page.bin", b"\n  <!DOCTYPE html><html><body>login</body></html>", "application/octet-stream")
    with pytest.raises(NotAVideoError):
        fetch(media_server, "/media/page.bin", tmp_path, session)
    assert list(tmp_path.iterdir()) == []


def test_web_page_can_be_handed_on(media_server: MediaServer, session: requests.Session, tmp_path: Path) -> None:
    seen: list[str] = []

    def hand_on(page_url: str) -> FetchedFile:
        seen.append(page_url)
        return FetchedFile(path=tmp_path / "x", name="from the page", size_bytes=1)

    fetched = fetch(media_server, "/redirect?to=/html/page.html", tmp_path, session, on_web_page=hand_on)
    assert seen == [media_server.url("/html/page.html")]
    assert fetched.name == "from the page"


def test_empty_body_is_not_a_video(media_server: MediaServer, session: requests.Session, tmp_path: Path) -> None:
    with pytest.raises(NotAVideoError) as caught:
        fetch(media_server, "/empty", tmp_path, session)
    assert "empty" in caught.value.detail
    assert "0 字节" in caught.value.user_message.zh
    assert list(tmp_path.iterdir()) == []


def test_stream_playlist_is_not_a_video(media_server: MediaServer, session: requests.Session, tmp_path: Path) -> None:
    media_server.add_file("live.m3u8", b"#EXTM3U\n#EXT-X-VERSION:3\nseg0.ts\n", "application/vnd.apple.mpegurl")
    with pytest.raises(NotAVideoError) as caught:
        fetch(media_server, "/media/live.m3u8", tmp_path, session)
    assert "m3u8" in caught.value.user_message.en


def test_random_bytes_named_mp4_download_fine(
    media_server: MediaServer, session: requests.Session, tmp_path: Path
) -> None:
    fetched = fetch(media_server, "/media/random.mp4", tmp_path, session)
    assert fetched.path.read_bytes() == media_server.files["random.mp4"].body


@pytest.mark.parametrize("path", ["/media/clip.mp4", "/nolength/clip.mp4"])
def test_size_cap_holds_with_and_without_content_length(
    path: str, media_server: MediaServer, session: requests.Session, tmp_path: Path
) -> None:
    size = len(media_server.files["clip.mp4"].body)
    policy = dataclasses.replace(POLICY, max_bytes=size // 2)
    with pytest.raises(TooLargeError) as caught:
        fetch(media_server, path, tmp_path, session, policy)
    assert caught.value.limit_bytes == size // 2
    assert caught.value.size_bytes == (size if path.startswith("/media") else None)
    assert list(tmp_path.iterdir()) == []
    assert media_server.hits(path) == 1


def test_without_content_length_the_whole_body_arrives(
    media_server: MediaServer, session: requests.Session, tmp_path: Path
) -> None:
    progress: list[tuple[int, int | None]] = []
    fetched = fetch(
        media_server, "/nolength/clip.mp4", tmp_path, session, on_bytes=lambda d, t: progress.append((d, t))
    )
    assert fetched.path.read_bytes() == media_server.files["clip.mp4"].body
    assert progress[-1] == (fetched.size_bytes, None)


@pytest.mark.parametrize(
    ("disposition", "expected"),
    [
        ('attachment; filename="team meeting.mp4"', "team meeting.mp4"),
        ("attachment; filename*=UTF-8''%E5%AD%A3%E5%BA%A6%20%E4%BC%9A%E8%AE%AE.mp4", "季度 会议.mp4"),
        ("attachment; filename=\"fallback.mp4\"; filename*=UTF-8''%E4%BC%9A%E8%AE%AE.mp4", "会议.mp4"),
        ('attachment; filename="会议 记录.mp4"', "会议 记录.mp4"),  # raw UTF-8 in the header
        ('attachment; filename="../../etc/passwd"', "passwd.mp4"),  # named for its Content-Type
        ('attachment; filename="..\\..\\boot.ini"', "boot.ini"),
        ('attachment; filename=".."', "video.mp4"),
        ('attachment; filename="a\tb\x01c.mp4"', "a bc.mp4"),
    ],
)
def test_content_disposition_names_are_made_safe(
    disposition: str, expected: str, media_server: MediaServer, session: requests.Session, tmp_path: Path
) -> None:
    fetched = fetch(media_server, f"/named/clip.mp4?cd={quote(disposition, safe='')}", tmp_path, session)
    assert fetched.name == expected
    assert fetched.path == tmp_path / expected
    assert fetched.path.parent == tmp_path


def test_name_comes_from_the_url_when_the_server_gives_none(
    media_server: MediaServer, session: requests.Session, tmp_path: Path
) -> None:
    media_server.add_file("季度 会议", media_server.files["clip.mp4"].body, "video/mp4")
    fetched = fetch(media_server, "/media/" + quote("季度 会议"), tmp_path, session)
    assert fetched.name == "季度 会议.mp4"


def test_same_name_twice_gets_a_suffix(media_server: MediaServer, session: requests.Session, tmp_path: Path) -> None:
    first = fetch(media_server, "/media/clip.mp4", tmp_path, session)
    second = fetch(media_server, "/media/clip.mp4", tmp_path, session)
    third = fetch(media_server, "/media/clip.mp4", tmp_path, session)
    assert [f.path.name for f in (first, second, third)] == ["clip.mp4", "clip (1).mp4", "clip (2).mp4"]
    assert all(f.path.read_bytes() == media_server.files["clip.mp4"].body for f in (first, second, third))


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/video.mp4", "data:video/mp4;base64,AAAA"])
def test_other_schemes_are_unsupported(url: str, session: requests.Session, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedSourceError):
        download(url, tmp_path, session=session, policy=POLICY, cancel=CancelToken())


def test_unguarded_session_is_refused(media_server: MediaServer, tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        fetch(media_server, "/media/clip.mp4", tmp_path, requests.Session())
    assert media_server.requests == []


def test_progress_is_reported_in_steps(media_server: MediaServer, session: requests.Session, tmp_path: Path) -> None:
    progress: list[tuple[int, int | None]] = []
    fetched = fetch(media_server, "/media/clip.mp4", tmp_path, session, on_bytes=lambda d, t: progress.append((d, t)))
    size = fetched.size_bytes
    done = [d for d, _ in progress]
    assert progress[-1] == (size, size)
    assert all(total == size for _, total in progress)
    assert done == sorted(set(done))
    assert all(b - a >= POLICY.progress_step_bytes for a, b in zip([0, *done[:-2]], done[:-1], strict=True))
    chunks = -(-size // POLICY.chunk_bytes)
    assert 2 <= len(progress) < chunks  # throttled: fewer reports than chunks


@pytest.mark.timeout(60)
def test_cancel_mid_download_removes_the_partial_file(
    media_server: MediaServer, session: requests.Session, tmp_path: Path
) -> None:
    cancel = CancelToken()
    progress: list[int] = []

    def on_bytes(done: int, total: int | None) -> None:
        progress.append(done)
        cancel.cancel()  # the user presses "cancel" once the download is under way

    with pytest.raises(JobCancelled):
        fetch(
            media_server,
            "/trickle/clip.mp4?chunk=16384&pause=0.05",
            tmp_path,
            session,
            cancel=cancel,
            on_bytes=on_bytes,
        )
    assert len(progress) == 1
    assert 0 < progress[0] < len(media_server.files["clip.mp4"].body)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.timeout(60)
def test_cancel_during_backoff_is_prompt(media_server: MediaServer, session: requests.Session, tmp_path: Path) -> None:
    # With a 10-minute backoff the test would hit its timeout unless the sleep wakes on cancel.
    policy = dataclasses.replace(POLICY, backoff_base_s=600.0, backoff_max_s=600.0)
    cancel = CancelToken()
    threading.Thread(target=lambda: _cancel_after_first_hit(media_server, cancel), daemon=True).start()
    with pytest.raises(JobCancelled):
        fetch(media_server, "/status/503", tmp_path, session, policy, cancel=cancel)
    assert media_server.hits("/status/503") == 1


def _cancel_after_first_hit(server: MediaServer, cancel: CancelToken) -> None:
    while server.hits("/status/503") == 0:
        threading.Event().wait(0.01)
    cancel.cancel()


def test_cancelled_before_start_sends_nothing(
    media_server: MediaServer, session: requests.Session, tmp_path: Path
) -> None:
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(JobCancelled):
        fetch(media_server, "/media/clip.mp4", tmp_path, session, cancel=cancel)
    assert media_server.requests == []


# --------------------------------------------------------------------------------------------------
# Names and sniffing, as functions
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("季度 会议.mp4", "季度 会议.mp4"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\clip.mov", "clip.mov"),
        ("..", "video"),
        ("", "video"),
        ("  .hidden.mp4 ", "hidden.mp4"),
        ('a<b>:c"d|e?f*g.mp4', "a_b__c_d_e_f_g.mp4"),
        ("\u202egnp.exe", "gnp.exe"),  # right-to-left override removed
        ("line\nbreak.mp4", "line break.mp4"),
    ],
)
def test_safe_filename(raw: str, expected: str) -> None:
    assert safe_filename(raw) == expected


def test_long_names_are_capped_in_bytes_keeping_the_extension() -> None:
    name = safe_filename("会" * 200 + ".mp4", max_bytes=100)
    assert name.endswith(".mp4")
    assert len(name.encode("utf-8")) <= 100
    assert set(name.removesuffix(".mp4")) == {"会"}


def test_name_from_response_adds_an_extension_for_video_types() -> None:
    assert name_from_response(None, "https://cdn.example.com/v/abc123?sig=x", "video/mp4") == "abc123.mp4"
    assert name_from_response(None, "https://cdn.example.com/v/%E4%BC%9A.webm", "video/webm") == "会.webm"
    assert name_from_response(None, "https://cdn.example.com/v/blob", "application/octet-stream") == "blob"


@pytest.mark.parametrize(
    ("head", "is_page"),
    [
        (b"<!DOCTYPE html><html>", True),
        (b"\xef\xbb\xbf  <html lang='zh'>", True),
        (b"<HEAD><title>x</title>", True),
        (b"<!-- comment --><div>", True),
        (b"\x00\x00\x00\x18ftypmp42", False),
        (b"\x1aE\xdf\xa3", False),  # Matroska/WebM
        (b"<plist>", False),
    ],
)
def test_web_page_sniffing(head: bytes, is_page: bool) -> None:
    assert looks_like_web_page(head) is is_page


class FailingResolver:
    def __init__(self, errno: int) -> None:
        self.errno = errno
        self.calls = 0

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls += 1
        raise socket.gaierror(self.errno, "lookup failed")


def test_unknown_host_is_final(tmp_path: Path) -> None:
    resolver = FailingResolver(socket.EAI_NONAME)
    session = guarded_session(AddressGuard(resolver=resolver))
    with pytest.raises(DownloadError) as caught:
        download("https://no-such-site.test/v.mp4", tmp_path, session=session, policy=POLICY, cancel=CancelToken())
    assert not caught.value.retryable
    assert "找不到网站 no-such-site.test" in caught.value.user_message.zh
    assert resolver.calls == 1


def test_struggling_resolver_is_retried(tmp_path: Path) -> None:
    resolver = FailingResolver(socket.EAI_AGAIN)
    session = guarded_session(AddressGuard(resolver=resolver))
    with pytest.raises(DownloadError) as caught:
        download("https://video.test/v.mp4", tmp_path, session=session, policy=POLICY, cancel=CancelToken())
    assert caught.value.retryable
    assert resolver.calls == POLICY.retries + 1


def test_refused_connection_is_retried_and_keeps_tokens_out_of_the_message(
    session: requests.Session, tmp_path: Path
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DownloadError) as caught:
        download(
            f"http://127.0.0.1:{port}/v.mp4?token=s3cr3t",
            tmp_path,
            session=session,
            policy=POLICY,
            cancel=CancelToken(),
        )
    assert caught.value.retryable
    assert "Connection refused" in caught.value.detail
    assert "s3cr3t" not in caught.value.detail
    assert "s3cr3t" not in str(caught.value.user_message)
