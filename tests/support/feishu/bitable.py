"""The fake Feishu's bitable/v1: Bases, tables, fields, records.

Mixed into ``FakeFeishu``, whose state and helpers it uses."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from tests.support.feishu.records import (
    ATTACHMENT,
    CHECKBOX,
    DATE,
    MAX_PAGE_SIZE,
    MULTI_SELECT,
    NUMBER,
    PERSON,
    PHONE,
    RECORDS_PER_BATCH,
    SINGLE_SELECT,
    TEXT,
    UI_TYPES,
    URL,
    UUID_RE,
    FakeApp,
    FakeTable,
    FeishuApiError,
    RecordedRequest,
    _random_token,
    _Reply,
)


class BitableApi:
    # Set by FakeFeishu.
    _lock: Any

    @staticmethod
    def _record_id() -> str:
        return _random_token("rec", 10)

    @staticmethod
    def _make_fields(specs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        fields: list[dict[str, Any]] = []
        names: set[str] = set()
        for index, spec in enumerate(specs):
            name = spec.get("field_name")
            ftype = spec.get("type")
            if not isinstance(name, str) or not name or not isinstance(ftype, int) or ftype not in UI_TYPES:
                raise FeishuApiError(400, 1254001, f"WrongRequestBody: bad field {spec!r}")
            if name in names:
                raise FeishuApiError(400, 1254014, f"FieldNameDuplicated: {name}")
            names.add(name)
            prop = copy.deepcopy(spec.get("property"))
            if ftype in (SINGLE_SELECT, MULTI_SELECT):
                prop = dict(prop or {})
                prop["options"] = [
                    {
                        "id": opt.get("id") or _random_token("opt", 7),
                        "name": opt["name"],
                        "color": opt.get("color", i % 10),
                    }
                    for i, opt in enumerate(prop.get("options") or [])
                ]
            fields.append(
                {
                    "field_id": _random_token("fld", 7),
                    "field_name": name,
                    "type": ftype,
                    "ui_type": spec.get("ui_type") or UI_TYPES[ftype],
                    "is_primary": index == 0,
                    "property": prop,
                }
            )
        return fields

    def _app_for(self, app_token: str, *, read: bool = True) -> FakeApp:
        app = self.apps.get(app_token)
        if app is None:
            raise FeishuApiError(400, 1254040, "BaseTokenNotFound")
        if read and not app.readable:
            raise FeishuApiError(403, 91403, "Forbidden")
        return app

    def _table_for(self, app_token: str, table_id: str) -> FakeTable:
        table = self._app_for(app_token).tables.get(table_id)
        if table is None:
            raise FeishuApiError(400, 1254041, "TableIdNotFound")
        return table

    def _create_app(self, rec: RecordedRequest) -> _Reply:
        body = self._body(rec)
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise FeishuApiError(400, 1254001, "WrongRequestBody: name is required")
        folder = str(body.get("folder_token") or "")
        if folder:
            self.check_folder_writable(folder)
        app_token = _random_token("", 27)
        app = FakeApp(
            app_token=app_token,
            name=name,
            folder_token=str(body.get("folder_token") or ""),
            url=f"https://example.feishu.cn/base/{app_token}",
            time_zone=str(body.get("time_zone") or ""),
            owner={"member_type": "app", "member_id": self.app_id},
        )
        # A new Base comes with one table holding Feishu's default fields.
        default = FakeTable(
            table_id=_random_token("tbl", 13),
            name="数据表",
            fields=self._make_fields(
                [
                    {"field_name": "多行文本", "type": TEXT},
                    {"field_name": "单选", "type": SINGLE_SELECT},
                    {"field_name": "日期", "type": DATE},
                    {"field_name": "附件", "type": ATTACHMENT},
                ]
            ),
            default_view_id=_random_token("vew", 7),
        )
        app.tables[default.table_id] = default
        app.default_table_id = default.table_id
        self.apps[app_token] = app
        return self._ok(
            {
                "app": {
                    "app_token": app_token,
                    "default_table_id": default.table_id,
                    "folder_token": app.folder_token,
                    "name": name,
                    "url": app.url,
                    "time_zone": app.time_zone,
                }
            }
        )

    def _list_tables(self, rec: RecordedRequest, app_token: str) -> _Reply:
        app = self._app_for(app_token)
        items = [{"table_id": t.table_id, "name": t.name, "revision": 1} for t in app.tables.values()]
        return self._ok({"has_more": False, "total": len(items), "items": items})

    def _create_table(self, rec: RecordedRequest, app_token: str) -> _Reply:
        app = self._app_for(app_token)
        spec = self._body(rec).get("table")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"].strip():
            raise FeishuApiError(400, 1254001, "WrongRequestBody: table.name is required")
        if any(t.name == spec["name"] for t in app.tables.values()):
            raise FeishuApiError(400, 1254013, "TableNameDuplicated")
        field_specs = spec.get("fields") or [{"field_name": "多行文本", "type": TEXT}]
        if not isinstance(field_specs, list):
            raise FeishuApiError(400, 1254001, "WrongRequestBody: table.fields must be a list")
        table = FakeTable(
            table_id=_random_token("tbl", 13),
            name=spec["name"],
            fields=self._make_fields(field_specs),
            default_view_id=_random_token("vew", 7),
        )
        app.tables[table.table_id] = table
        return self._ok(
            {
                "table_id": table.table_id,
                "default_view_id": table.default_view_id,
                "field_id_list": [f["field_id"] for f in table.fields],
            }
        )

    def _delete_table(self, rec: RecordedRequest, app_token: str, table_id: str) -> _Reply:
        app = self._app_for(app_token)
        self._table_for(app_token, table_id)
        if len(app.tables) == 1:
            raise FeishuApiError(400, 1254002, "Fail: a Base keeps at least one table")
        del app.tables[table_id]
        if app.default_table_id == table_id:
            app.default_table_id = next(iter(app.tables))
        return self._ok({})

    @staticmethod
    def _page(rec: RecordedRequest, default_size: int, max_size: int) -> tuple[int, int]:
        try:
            size = int(rec.query.get("page_size", default_size))
        except ValueError:
            raise FeishuApiError(400, 99992402, "field validation failed: page_size") from None
        if not 1 <= size <= max_size:
            raise FeishuApiError(400, 99992402, f"field validation failed: page_size must be 1..{max_size}")
        token = rec.query.get("page_token")
        if not token:
            return 0, size
        try:
            offset = int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("offset:"))
        except (ValueError, UnicodeDecodeError):
            raise FeishuApiError(400, 1254002, "Fail: invalid page_token") from None
        return offset, size

    @staticmethod
    def _page_data(items: list[Any], offset: int, size: int, total: int) -> dict[str, Any]:
        data: dict[str, Any] = {"items": items, "has_more": offset + size < total, "total": total}
        if items:  # Feishu sends a page_token with the last page too (see bitable_fields_list sample)
            data["page_token"] = base64.urlsafe_b64encode(f"offset:{offset + size}".encode()).decode()
        return data

    def _list_fields(self, rec: RecordedRequest, app_token: str, table_id: str) -> _Reply:
        table = self._table_for(app_token, table_id)
        offset, size = self._page(rec, 20, 100)
        items = copy.deepcopy(table.fields[offset : offset + size])
        return self._ok(self._page_data(items, offset, size, len(table.fields)))

    def _list_records(self, rec: RecordedRequest, app_token: str, table_id: str) -> _Reply:
        table = self._table_for(app_token, table_id)
        offset, size = self._page(rec, 20, MAX_PAGE_SIZE)
        wanted: list[str] | None = None
        if rec.query.get("field_names"):
            try:
                wanted = json.loads(rec.query["field_names"])
            except json.JSONDecodeError:
                raise FeishuApiError(400, 1254000, "WrongRequestJson: field_names") from None
        items = []
        for record in table.records[offset : offset + size]:
            values = {
                name: self._render_value(table, name, value)
                for name, value in record["fields"].items()
                if value not in (None, "", []) and (wanted is None or name in wanted)
            }
            items.append({"fields": values, "id": record["record_id"], "record_id": record["record_id"]})
        return self._ok(self._page_data(items, offset, size, len(table.records)))

    def _render_value(self, table: FakeTable, name: str, value: Any) -> Any:
        spec = table.field_named(name)
        if spec is None or spec["type"] != ATTACHMENT or not isinstance(value, list):
            return copy.deepcopy(value)
        rendered = []
        for item in value:
            token = item.get("file_token", "")
            media = self.media.get(token)
            rendered.append(
                {
                    "file_token": token,
                    "name": item.get("name") or (media.name if media else token),
                    "size": item.get("size") or (len(media.data) if media else 0),
                    "type": item.get("type") or (media.content_type if media else "application/octet-stream"),
                    # A Base with advanced permissions gives each attachment a url carrying ``extra``.
                    "url": item.get("url") or f"{self.url}/open-apis/drive/v1/medias/{token}/download",
                    "tmp_url": f"{self.url}/open-apis/drive/v1/medias/batch_get_tmp_download_url"
                    f"?file_tokens={quote(token)}",
                }
            )
        return rendered

    def _check_value(self, app_token: str, table: FakeTable, name: str, value: Any) -> Any:
        spec = table.field_named(name)
        if spec is None:
            raise FeishuApiError(200, 1254045, f"FieldNameNotFound: {name}")
        if value is None:
            return None
        ftype = spec["type"]
        if ftype in (TEXT, PHONE):
            if not isinstance(value, str):
                raise FeishuApiError(200, 1254060 if ftype == TEXT else 1254072, f"TextFieldConvFail: {name}")
            limit = self.text_cell_limit_bytes
            if limit is not None and len(json.dumps(value, ensure_ascii=False).encode("utf-8")) > limit:
                raise FeishuApiError(200, 1254130, f"TooLargeCell: {name}")
        elif ftype == NUMBER:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise FeishuApiError(200, 1254061, f"NumberFieldConvFail: {name}")
        elif ftype == SINGLE_SELECT:
            if not isinstance(value, str):
                raise FeishuApiError(200, 1254062, f"SingleSelectFieldConvFail: {name}")
            self._ensure_options(spec, [value])
        elif ftype == MULTI_SELECT:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise FeishuApiError(200, 1254063, f"MultiSelectFieldConvFail: {name}")
            self._ensure_options(spec, value)
        elif ftype == DATE:
            if isinstance(value, bool) or not isinstance(value, int):
                raise FeishuApiError(200, 1254064, f"DatetimeFieldConvFail: {name} needs a millisecond timestamp")
        elif ftype == CHECKBOX:
            if not isinstance(value, bool):
                raise FeishuApiError(200, 1254065, f"CheckboxFieldConvFail: {name}")
        elif ftype == PERSON:
            if not isinstance(value, list) or not all(
                isinstance(v, dict) and isinstance(v.get("id"), str) for v in value
            ):
                raise FeishuApiError(200, 1254066, f"UserFieldConvFail: {name}")
        elif ftype == URL:
            if not isinstance(value, dict) or not isinstance(value.get("link"), str) or not value["link"]:
                raise FeishuApiError(200, 1254068, f"URLFieldConvFail: {name} needs {{text, link}}")
            if "text" in value and not isinstance(value["text"], str):
                raise FeishuApiError(200, 1254068, f"URLFieldConvFail: {name}")
        elif ftype == ATTACHMENT:
            if not isinstance(value, list) or not all(
                isinstance(v, dict) and isinstance(v.get("file_token"), str) for v in value
            ):
                raise FeishuApiError(200, 1254069, f"AttachFieldConvFail: {name} needs [{{file_token}}]")
            stored = []
            for item in value:
                media = self.media.get(item["file_token"])
                if media is None or media.parent_node != app_token:
                    raise FeishuApiError(
                        200, 1254303, f"AttachPermNotAllow: {item['file_token']} was not uploaded to this Base"
                    )
                stored.append(
                    {
                        "file_token": media.file_token,
                        "name": media.name,
                        "size": len(media.data),
                        "type": media.content_type,
                    }
                )
            return stored
        return copy.deepcopy(value)

    @staticmethod
    def _ensure_options(spec: dict[str, Any], names: list[str]) -> None:
        # Unknown option names create new options, as the API documents.
        prop = spec.setdefault("property", None) or {}
        options = prop.setdefault("options", [])
        known = {o["name"] for o in options}
        for name in names:
            if name not in known:
                options.append({"id": _random_token("opt", 7), "name": name, "color": len(options) % 10})
                known.add(name)
        spec["property"] = prop

    def _batch_create_records(self, rec: RecordedRequest, app_token: str, table_id: str) -> _Reply:
        table = self._table_for(app_token, table_id)
        records = self._body(rec).get("records")
        if not isinstance(records, list) or not records:
            raise FeishuApiError(400, 1254001, "WrongRequestBody: records is required")
        if len(records) > RECORDS_PER_BATCH:
            raise FeishuApiError(200, 1254104, "RecordAddOnceExceedLimit")
        client_token = rec.query.get("client_token")
        fingerprint = hashlib.sha256(rec.body).hexdigest()
        if client_token:
            if not UUID_RE.match(client_token):
                raise FeishuApiError(
                    400, 1254037, "Invalid client token, make sure that it complies with the specification."
                )
            seen = table.client_tokens.get(client_token)
            if seen is not None:
                if seen[0] != fingerprint:
                    raise FeishuApiError(
                        400, 1255006, "Client token conflict, please generate a new client token and try again."
                    )
                by_id = {r["record_id"]: r for r in table.records}
                return self._ok({"records": [self._record_out(by_id[rid]) for rid in seen[1] if rid in by_id]})
        # Validate everything first: the call is all-or-nothing.
        new_records: list[dict[str, Any]] = []
        for item in records:
            values = item.get("fields") if isinstance(item, dict) else None
            if not isinstance(values, dict):
                raise FeishuApiError(400, 1254001, "WrongRequestBody: every record needs fields")
            checked = {name: self._check_value(app_token, table, name, value) for name, value in values.items()}
            new_records.append({"record_id": self._record_id(), "fields": checked})
        table.records.extend(new_records)
        if client_token:
            table.client_tokens[client_token] = (fingerprint, [r["record_id"] for r in new_records])
        return self._ok({"records": [self._record_out(r) for r in new_records]})

    @staticmethod
    def _record_out(record: dict[str, Any]) -> dict[str, Any]:
        return {"fields": copy.deepcopy(record["fields"]), "id": record["record_id"], "record_id": record["record_id"]}
