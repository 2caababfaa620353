"""The bot's settings: the pipeline's plus Feishu, the HTTP server and the job runner.

One object, read once at start (``Settings.load()``), passed down explicitly. Secrets are
``SecretStr``: they print as ``**********`` and reach the SDK only through ``get_secret_value()``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator

from pipeline.config import PipelineSettings


class Settings(PipelineSettings):
    # --- Feishu app --------------------------------------------------------------------------------
    feishu_app_id: str = Field(default="", description="App ID (cli_...) from the Feishu developer console.")
    feishu_app_secret: SecretStr = Field(default=SecretStr(""), description="App Secret.")
    feishu_verification_token: SecretStr = Field(
        default=SecretStr(""),
        description="Verification Token (Events & Callbacks > Encryption Strategy).",
    )
    feishu_encrypt_key: SecretStr = Field(
        default=SecretStr(""),
        description="Encrypt Key. Strongly recommended: without it events are neither encrypted nor signed.",
    )
    feishu_domain: str = Field(
        default="https://open.feishu.cn",
        description="Open Platform base URL (https://open.larksuite.com for Lark; tests use a local fake).",
    )
    feishu_folder_token: str = Field(
        default="",
        description="Drive folder for result Bases; empty = the app's own space (ownership is still transferred).",
    )

    # --- HTTP server -------------------------------------------------------------------------------
    host: str = Field(default="0.0.0.0", description="Address to listen on.")  # noqa: S104 - a server
    port: int = Field(
        default=9000,
        ge=1,
        le=65535,
        validation_alias=AliasChoices("PORT", "FC_CUSTOM_LISTEN_PORT", "FC_SERVER_PORT"),
        description="Listen port; FC_CUSTOM_LISTEN_PORT / FC_SERVER_PORT are used when PORT is unset.",
    )
    max_request_bytes: int = Field(default=1024 * 1024, ge=1024, description="Largest webhook body accepted.")
    replay_window_s: int = Field(
        default=300, ge=30, le=3600, description="Signed requests older or newer than this are replays."
    )
    dedupe_ttl_hours: float = Field(
        default=24.0,
        ge=8.0,
        description="How long delivered event and message ids are remembered (Feishu redelivers for ~7 h).",
    )
    max_links_per_message: int = Field(default=20, ge=1, le=200, description="Videos accepted from one message.")

    # --- job runner --------------------------------------------------------------------------------
    job_runner: Literal["local", "fc-async"] = Field(
        default="local",
        description="local: in-process workers. fc-async: re-invoke the FC function asynchronously per job.",
    )

    @field_validator("feishu_domain", mode="after")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ValueError("must be an https:// URL (http:// only for a local test server)")
        return value

    def missing_for_webhook(self) -> list[str]:
        """Variables the webhook cannot work without (reported together at start)."""
        missing = []
        if not self.feishu_app_id:
            missing.append("FEISHU_APP_ID")
        if not self.feishu_app_secret.get_secret_value():
            missing.append("FEISHU_APP_SECRET")
        if not self.feishu_verification_token.get_secret_value():
            missing.append("FEISHU_VERIFICATION_TOKEN")
        return missing
