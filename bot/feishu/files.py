"""Files in and out: message resources and Drive media downloaded with a size cap, media uploaded for Base cells."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from bot.feishu.errors import NotFound, TooLarge
from bot.feishu.transport import Transport

MB = 1024 * 1024
UPLOAD_ALL_MAX_BYTES = 20 * MB  # drive/v1/medias/upload_all; larger files need the chunked upload


class Files(Transport):
    def download_message_resource(
        self, message_id: str, file_key: str, dest: Path, *, max_bytes: int, resource_type: str = "file"
    ) -> Path:
        """Save a file attached to a message (video and file messages both use ``type=file``).

        Memory bound: lark-oapi reads a body whole (``requests`` ``response.content``) before it
        returns, so a download holds the file in memory once; Feishu caps these at 100 MB (234037)."""
        from lark_oapi.api.im.v1 import GetMessageResourceRequest

        def call() -> Any:
            request = (
                GetMessageResourceRequest.builder()
                .message_id(message_id)
                .file_key(file_key)
                .type(resource_type)
                .build()
            )
            return self._sdk.im.v1.message_resource.get(request)

        resp = self._run("im.message_resource.get", call)
        return self._save(resp, dest, max_bytes, "im.message_resource.get")

    def download_drive_media(
        self,
        file_token: str,
        dest: Path,
        *,
        max_bytes: int,
        expected_size: int | None = None,
        extra: str | None = None,
    ) -> Path:
        """Save a Drive media file (a Bitable attachment). Same memory bound as above, without Feishu's
        cap: pass the attachment's ``size`` as ``expected_size`` so oversized files are refused before
        any byte is fetched."""
        from lark_oapi.api.drive.v1 import DownloadMediaRequest

        operation = "drive.media.download"
        if expected_size is not None and expected_size > max_bytes:
            raise TooLarge(
                -1,
                f"file is {expected_size} bytes, over the {max_bytes}-byte cap",
                operation=operation,
                size_bytes=expected_size,
                limit_bytes=max_bytes,
            )

        def call() -> Any:
            builder = DownloadMediaRequest.builder().file_token(file_token)
            if extra:
                builder = builder.extra(extra)  # noqa: S610 - the SDK builder, not Django
            return self._sdk.drive.v1.media.download(builder.build())

        resp = self._run(operation, call)
        return self._save(resp, dest, max_bytes, operation)

    def tmp_download_url(self, file_token: str, *, extra: str | None = None) -> str:
        """A temporary (24 h) URL for a Drive media file (a Bitable attachment), so the caller can
        stream it to disk instead of holding it in memory as the SDK's download does."""
        from lark_oapi.api.drive.v1 import BatchGetTmpDownloadUrlMediaRequest

        operation = "drive.media.batch_get_tmp_download_url"

        def call() -> Any:
            builder = BatchGetTmpDownloadUrlMediaRequest.builder().file_tokens([file_token])
            if extra:
                builder = builder.extra(extra)  # noqa: S610 - the SDK builder, not Django
            return self._sdk.drive.v1.media.batch_get_tmp_download_url(builder.build())

        resp = self._run(operation, call)
        for item in getattr(resp.data, "tmp_download_urls", None) or ():
            if item.file_token == file_token and item.tmp_download_url:
                return str(item.tmp_download_url)
        raise NotFound(1061003, f"no download URL for file {file_token}", operation=operation)

    @staticmethod
    def _save(resp: Any, dest: Path, max_bytes: int, operation: str) -> Path:
        data: bytes = resp.raw.content or b""
        if len(data) > max_bytes:
            raise TooLarge(
                -1,
                f"file is {len(data)} bytes, over the {max_bytes}-byte cap",
                operation=operation,
                size_bytes=len(data),
                limit_bytes=max_bytes,
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".part")
        try:
            with partial.open("wb") as fh:
                view = memoryview(data)
                for start in range(0, len(view), MB):
                    fh.write(view[start : start + MB])
            partial.replace(dest)
        except BaseException:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise
        return dest

    def upload_media(
        self,
        path: Path,
        *,
        parent_type: str,
        parent_node: str,
        file_name: str | None = None,
        extra: str | None = None,
    ) -> str:
        """Upload a file for a Bitable cell (``parent_type`` bitable_image|bitable_file, ``parent_node``
        the Base's app_token); returns the file_token. Streams from disk; at most 20 MB."""
        from lark_oapi.api.drive.v1 import UploadAllMediaRequest, UploadAllMediaRequestBody

        operation = "drive.media.upload_all"
        size = path.stat().st_size
        if size > UPLOAD_ALL_MAX_BYTES:
            raise TooLarge(
                -1,
                f"{path.name} is {size} bytes; upload_all takes at most {UPLOAD_ALL_MAX_BYTES}",
                operation=operation,
                size_bytes=size,
                limit_bytes=UPLOAD_ALL_MAX_BYTES,
            )

        def call() -> Any:
            with path.open("rb") as fh:
                builder = (
                    UploadAllMediaRequestBody.builder()
                    .file_name(file_name or path.name)
                    .parent_type(parent_type)
                    .parent_node(parent_node)
                    .size(size)
                    .file(fh)
                )
                if extra:
                    builder = builder.extra(extra)  # noqa: S610 - the SDK builder, not Django
                request = UploadAllMediaRequest.builder().request_body(builder.build()).build()
                return self._sdk.drive.v1.media.upload_all(request)

        return str(self._run(operation, call).data.file_token)
