"""Bitable (Base): apps, tables, fields and records."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.feishu.transport import Transport, _marshal

RECORDS_PER_BATCH = 1000  # bitable batch_create


@dataclass(frozen=True)
class BitableApp:
    app_token: str
    url: str
    default_table_id: str


@dataclass(frozen=True)
class BitableTable:
    table_id: str
    name: str


@dataclass(frozen=True)
class BitableField:
    field_id: str
    field_name: str
    type: int
    ui_type: str = ""
    is_primary: bool = False
    property: dict[str, Any] | None = field(default=None, hash=False, compare=False)


class Bitable(Transport):
    def create_bitable_app(self, name: str, folder_token: str = "", *, time_zone: str | None = None) -> BitableApp:
        """Create a Base (in ``folder_token``, or the app's own space when empty)."""
        from lark_oapi.api.bitable.v1 import CreateAppRequest, ReqApp

        def call() -> Any:
            builder = ReqApp.builder().name(name)
            if folder_token:
                builder = builder.folder_token(folder_token)
            if time_zone:
                builder = builder.time_zone(time_zone)
            return self._sdk.bitable.v1.app.create(CreateAppRequest.builder().request_body(builder.build()).build())

        app = self._run("bitable.app.create", call, idempotent=False).data.app
        return BitableApp(app_token=app.app_token, url=app.url or "", default_table_id=app.default_table_id or "")

    def create_table(
        self,
        app_token: str,
        name: str,
        fields: Sequence[Mapping[str, Any]],
        *,
        default_view_name: str | None = None,
    ) -> str:
        """Create a table; ``fields`` as the API takes them (``{"field_name", "type", "property"?}``,
        the first is the primary field). Returns the table_id."""
        from lark_oapi.api.bitable.v1 import (
            AppTableCreateHeader,
            CreateAppTableRequest,
            CreateAppTableRequestBody,
            ReqTable,
        )

        def call() -> Any:
            table = ReqTable.builder().name(name).fields([AppTableCreateHeader(dict(f)) for f in fields])
            if default_view_name:
                table = table.default_view_name(default_view_name)
            body = CreateAppTableRequestBody.builder().table(table.build()).build()
            request = CreateAppTableRequest.builder().app_token(app_token).request_body(body).build()
            return self._sdk.bitable.v1.app_table.create(request)

        return str(self._run("bitable.app_table.create", call, idempotent=False).data.table_id)

    def delete_table(self, app_token: str, table_id: str) -> None:
        from lark_oapi.api.bitable.v1 import DeleteAppTableRequest

        def call() -> Any:
            request = DeleteAppTableRequest.builder().app_token(app_token).table_id(table_id).build()
            return self._sdk.bitable.v1.app_table.delete(request)

        self._run("bitable.app_table.delete", call)

    def list_tables(self, app_token: str) -> list[BitableTable]:
        from lark_oapi.api.bitable.v1 import ListAppTableRequest

        tables: list[BitableTable] = []
        page_token: str | None = None
        while True:

            def call(page_token: str | None = page_token) -> Any:
                builder = ListAppTableRequest.builder().app_token(app_token).page_size(100)
                if page_token:
                    builder = builder.page_token(page_token)
                return self._sdk.bitable.v1.app_table.list(builder.build())

            data = self._run("bitable.app_table.list", call).data
            tables.extend(BitableTable(table_id=t.table_id, name=t.name or "") for t in data.items or [])
            if not data.has_more or not data.page_token:
                return tables
            page_token = data.page_token

    def list_fields(self, app_token: str, table_id: str) -> list[BitableField]:
        from lark_oapi.api.bitable.v1 import ListAppTableFieldRequest

        fields: list[BitableField] = []
        page_token: str | None = None
        while True:

            def call(page_token: str | None = page_token) -> Any:
                builder = ListAppTableFieldRequest.builder().app_token(app_token).table_id(table_id).page_size(100)
                if page_token:
                    builder = builder.page_token(page_token)
                return self._sdk.bitable.v1.app_table_field.list(builder.build())

            data = self._run("bitable.app_table_field.list", call).data
            for item in data.items or []:
                prop = json.loads(_marshal(item.property)) if item.property is not None else None
                fields.append(
                    BitableField(
                        field_id=item.field_id,
                        field_name=item.field_name,
                        type=int(item.type),
                        ui_type=item.ui_type or "",
                        is_primary=bool(item.is_primary),
                        property=prop,
                    )
                )
            if not data.has_more or not data.page_token:
                return fields
            page_token = data.page_token

    def iter_records(
        self,
        app_token: str,
        table_id: str,
        *,
        page_size: int = 500,
        view_id: str | None = None,
        field_names: Sequence[str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every record as ``{"record_id", "fields"}``, page by page (``page_size`` <= 500)."""
        from lark_oapi.api.bitable.v1 import ListAppTableRecordRequest

        if not 1 <= page_size <= 500:
            raise ValueError("page_size must be 1..500")
        page_token: str | None = None
        while True:

            def call(page_token: str | None = page_token) -> Any:
                builder = (
                    ListAppTableRecordRequest.builder().app_token(app_token).table_id(table_id).page_size(page_size)
                )
                if page_token:
                    builder = builder.page_token(page_token)
                if view_id:
                    builder = builder.view_id(view_id)
                if field_names:
                    builder = builder.field_names(json.dumps(list(field_names), ensure_ascii=False))
                return self._sdk.bitable.v1.app_table_record.list(builder.build())

            data = self._run("bitable.app_table_record.list", call).data
            for item in data.items or []:
                yield {"record_id": item.record_id, "fields": dict(item.fields or {})}
            if not data.has_more or not data.page_token:
                return
            page_token = data.page_token

    def batch_create_records(
        self,
        app_token: str,
        table_id: str,
        records: Sequence[Mapping[str, Any]],
        *,
        client_token: str,
    ) -> list[str]:
        """Add rows (field name -> value) in one all-or-nothing call; returns their record_ids.

        ``client_token`` (UUID-shaped, see ``stable_uuid``) makes a resend return the same records."""
        from lark_oapi.api.bitable.v1 import (
            AppTableRecord,
            BatchCreateAppTableRecordRequest,
            BatchCreateAppTableRecordRequestBody,
        )

        if not records:
            return []
        if len(records) > RECORDS_PER_BATCH:
            raise ValueError(f"at most {RECORDS_PER_BATCH} records per batch_create, got {len(records)}")

        def call() -> Any:
            rows = [AppTableRecord.builder().fields(dict(r)).build() for r in records]
            body = BatchCreateAppTableRecordRequestBody.builder().records(rows).build()
            request = (
                BatchCreateAppTableRecordRequest.builder()
                .app_token(app_token)
                .table_id(table_id)
                .client_token(client_token)
                .request_body(body)
                .build()
            )
            return self._sdk.bitable.v1.app_table_record.batch_create(request)

        data = self._run("bitable.app_table_record.batch_create", call).data
        return [str(r.record_id) for r in data.records or []]
