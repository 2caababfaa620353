"""Where videos come from: the source interface, its registry, and the pipeline's own fetchers.

    SourceRegistry      source kind -> Fetcher; ``bot/`` registers its Feishu fetchers on the same one
    UrlFetcher          "url": a direct link to a file, or a video page (Bilibili, YouTube, any page with
                        a <video>) resolved with yt-dlp and then downloaded by ``pipeline.download``
    LocalFetcher        "local": a file on this machine, for the CLI only (the bot never registers it)
    VideoPageResolver   yt-dlp in "tell me, do not download" mode, every request it makes guarded

Which links go to yt-dlp: those a site-specific yt-dlp extractor claims go there first; any other link is
downloaded directly, and if it turns out to be a web page, the page is handed to yt-dlp (whose generic
extractor finds <video> tags, embeds and players).

A page's video is one file with sound and picture where the site offers one. Many sites (Bilibili, most
YouTube qualities, DASH players) only offer the picture and the sound as separate files: then the best
video-only file up to 1080p (MP4 preferred) and the best audio-only file (M4A preferred) are both
downloaded through ``pipeline.download``, within the one size cap, and merged without re-encoding by
``pipeline.ffmpeg.merge_av``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import requests

from pipeline import ffmpeg
from pipeline.download import (
    ByteProgress,
    DownloadPolicy,
    download,
    reserve_path,
    safe_filename,
)
from pipeline.errors import (
    NotAVideoError,
    SourceError,
    TooLargeError,
    UnsupportedSourceError,
)
from pipeline.models import CancelToken, FetchedFile, SourceKind, UserText, VideoSource
from pipeline.netguard import AddressGuard, guarded_session, require_http_url
from pipeline.video_pages import PageMedia, PageStream, VideoPageResolver

if TYPE_CHECKING:
    from pipeline.config import PipelineSettings

__all__ = [
    "ByteProgress",
    "Fetcher",
    "LocalFetcher",
    "PageMedia",
    "PageStream",
    "SourceRegistry",
    "UrlFetcher",
    "VideoPageResolver",
    "default_registry",
]

log = logging.getLogger(__name__)


class Fetcher(Protocol):
    def fetch(
        self, source: VideoSource, dest_dir: Path, *, on_bytes: ByteProgress | None, cancel: CancelToken
    ) -> FetchedFile: ...


class SourceRegistry:
    """Fetchers by source kind. One registry serves a whole process; fetchers must be thread-safe."""

    def __init__(self) -> None:
        self._fetchers: dict[str, Fetcher] = {}

    def register(self, kind: str, fetcher: Fetcher) -> None:
        if kind in self._fetchers:
            raise ValueError(f"a fetcher for source kind {kind!r} is already registered")
        self._fetchers[kind] = fetcher

    def kinds(self) -> frozenset[str]:
        return frozenset(self._fetchers)

    def fetch(
        self,
        source: VideoSource,
        dest_dir: Path,
        *,
        on_bytes: ByteProgress | None = None,
        cancel: CancelToken,
    ) -> FetchedFile:
        fetcher = self._fetchers.get(source.kind)
        if fetcher is None:
            raise UnsupportedSourceError(f"source kind {source.kind!r}")
        cancel.raise_if_cancelled()
        dest_dir.mkdir(parents=True, exist_ok=True)
        return fetcher.fetch(source, dest_dir, on_bytes=on_bytes, cancel=cancel)


def default_registry(
    settings: PipelineSettings, *, include_local: bool, session: requests.Session | None = None
) -> SourceRegistry:
    """The pipeline's fetchers: "url" always, "local" only when ``include_local`` (the CLI; never the bot,
    so no message can make the server read its own files). ``session`` must come from
    ``netguard.guarded_session``; by default one is built from the settings' guard."""
    policy = DownloadPolicy.from_settings(settings)
    session = session or guarded_session(AddressGuard.from_settings(settings))
    pages = VideoPageResolver(session, policy, max_video_seconds=settings.max_video_seconds)
    registry = SourceRegistry()
    registry.register(SourceKind.URL.value, UrlFetcher(session, policy, pages=pages))
    if include_local:
        registry.register(SourceKind.LOCAL.value, LocalFetcher(max_bytes=settings.max_video_bytes))
    return registry


# --------------------------------------------------------------------------------------------------
# Local files (CLI)
# --------------------------------------------------------------------------------------------------


class LocalFetcher:
    """Returns the file where it is (no copy) once it is known to be a readable regular file."""

    def __init__(self, *, max_bytes: int) -> None:
        self._max_bytes = max_bytes

    def fetch(
        self, source: VideoSource, dest_dir: Path, *, on_bytes: ByteProgress | None, cancel: CancelToken
    ) -> FetchedFile:
        del dest_dir  # used in place
        cancel.raise_if_cancelled()
        path = Path(source.locator).expanduser().absolute()
        if not path.exists():
            raise SourceError(
                f"no such file: {path}",
                UserText(zh=f"找不到文件：{path}。请检查路径。", en=f"No such file: {path}. Check the path."),
            )
        if not path.is_file():
            raise NotAVideoError(
                f"{path} is not a regular file",
                UserText(
                    zh=f"{path} 不是普通文件（可能是文件夹）。请给出视频文件的路径。",
                    en=f"{path} is not a regular file (a folder?). Give the path of a video file.",
                ),
            )
        if not os.access(path, os.R_OK):
            raise SourceError(
                f"{path} is not readable",
                UserText(zh=f"没有权限读取 {path}。", en=f"No permission to read {path}."),
            )
        size = path.stat().st_size
        if size == 0:
            raise NotAVideoError(
                f"{path} is empty",
                UserText(zh=f"{path} 是空文件（0 字节）。", en=f"{path} is empty (0 bytes)."),
            )
        if size > self._max_bytes:
            raise TooLargeError(size, self._max_bytes)
        if on_bytes is not None:
            on_bytes(size, size)
        return FetchedFile(path=path, name=source.name or path.name, size_bytes=size)


# --------------------------------------------------------------------------------------------------
# Links
# --------------------------------------------------------------------------------------------------


class UrlFetcher:
    def __init__(
        self, session: requests.Session, policy: DownloadPolicy, *, pages: VideoPageResolver | None = None
    ) -> None:
        self._session = session
        self._policy = policy
        self._pages = pages

    def fetch(
        self, source: VideoSource, dest_dir: Path, *, on_bytes: ByteProgress | None, cancel: CancelToken
    ) -> FetchedFile:
        url = require_http_url(source.locator)
        pages = self._pages
        if pages is not None and pages.claims(url):
            return self._from_page(pages, url, dest_dir, on_bytes=on_bytes, cancel=cancel)
        return download(
            url,
            dest_dir,
            session=self._session,
            policy=self._policy,
            cancel=cancel,
            on_bytes=on_bytes,
            on_web_page=None
            if pages is None
            else functools.partial(self._from_page, pages, dest_dir=dest_dir, on_bytes=on_bytes, cancel=cancel),
        )

    def _from_page(
        self,
        pages: VideoPageResolver,
        page_url: str,
        dest_dir: Path,
        *,
        on_bytes: ByteProgress | None,
        cancel: CancelToken,
    ) -> FetchedFile:
        cancel.raise_if_cancelled()
        media = pages.resolve(page_url)
        cancel.raise_if_cancelled()
        if media.audio is not None:
            fetched = self._download_and_merge(media, media.audio, dest_dir, on_bytes=on_bytes, cancel=cancel)
        else:
            fetched = download(
                media.url,
                dest_dir,
                session=self._session,
                policy=self._policy,
                cancel=cancel,
                on_bytes=on_bytes,
                headers=media.headers,
                file_name=media.file_name,
            )
        return dataclasses.replace(fetched, name=media.title or fetched.name)

    def _download_and_merge(
        self,
        media: PageMedia,
        audio: PageStream,
        dest_dir: Path,
        *,
        on_bytes: ByteProgress | None,
        cancel: CancelToken,
    ) -> FetchedFile:
        """The video-only and the audio-only file, downloaded one after the other under one size cap
        (the audio gets what the video left of it), then merged into one file in ``dest_dir``."""
        parts = dest_dir / ".streams"
        total = media.size_bytes
        try:
            video_part = download(
                media.url,
                parts,
                session=self._session,
                policy=self._policy,
                cancel=cancel,
                on_bytes=_shifted(on_bytes, 0, total),
                headers=media.headers,
                file_name=f"video.{media.ext or 'mp4'}",
            )
            room = self._policy.max_bytes - video_part.size_bytes
            if room <= 0:
                raise TooLargeError(None, self._policy.max_bytes)
            audio_part = download(
                audio.url,
                parts,
                session=self._session,
                policy=dataclasses.replace(self._policy, max_bytes=room),
                cancel=cancel,
                on_bytes=_shifted(on_bytes, video_part.size_bytes, total),
                headers=audio.headers,
                file_name=f"audio.{audio.ext or 'm4a'}",
            )
            merged = reserve_path(dest_dir, safe_filename(media.file_name, max_bytes=self._policy.max_name_bytes))
            try:
                ffmpeg.merge_av(video_part.path, audio_part.path, merged, cancel=cancel)
            except BaseException:
                merged.unlink(missing_ok=True)
                raise
        except TooLargeError as exc:
            # Said of the whole video, not of the part that crossed the line.
            raise TooLargeError(None, self._policy.max_bytes) from exc
        finally:
            shutil.rmtree(parts, ignore_errors=True)
        return FetchedFile(
            path=merged,
            name=merged.name,
            size_bytes=merged.stat().st_size,
            content_type=None,
            final_url=video_part.final_url,
        )


def _shifted(on_bytes: ByteProgress | None, before: int, total: int | None) -> ByteProgress | None:
    """Progress of one part reported as progress of the whole (parts downloaded one after another)."""
    if on_bytes is None:
        return None
    report = on_bytes

    def shifted(done: int, part_total: int | None) -> None:
        del part_total  # the whole's total is what counts
        report(before + done, total)

    return shifted
