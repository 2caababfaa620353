"""The bot's settings: the pipeline's plus Feishu, the HTTP server and the job runner.

One object, read once at start (``Settings.load()``), passed down explicitly. Secrets are
``SecretStr``: they print as ``**********`` and reach the SDK only through ``get_secret_value()``.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator

from pipeline.config import PipelineSettings

MIN_JOB_SECRET_CHARS = 32


class Settings(PipelineSettings):
    # --- Feishu app --------------------------------------------------------------------------------
    feishu_app_id: str = Field(default="", description="App ID (cli_...) from the Feishu developer console.")
    feishu_app_secret: SecretStr = Field(default=SecretStr(""), description="App Secret.")
    feishu_verification_token: SecretStr = Field(
        default=SecretStr(""),
        description="Verification Token (Events & Callbacks > Encryption Strategy). Webhook mode only: not "
        "needed with EVENT_MODE=websocket; without it (and FEISHU_ENCRYPT_KEY) POST /webhook/event refuses "
        "every event.",
    )
    feishu_encrypt_key: SecretStr = Field(
        default=SecretStr(""),
        description="Encrypt Key (Events & Callbacks > Encryption Strategy). Webhook mode only: not needed "
        "with EVENT_MODE=websocket; without it (and FEISHU_VERIFICATION_TOKEN) POST /webhook/event refuses "
        "every event.",
    )
    feishu_domain: str = Field(
        default="https://open.feishu.cn",
        description="Open Platform base URL (https://open.larksuite.com for Lark; tests use a local fake).",
    )
    feishu_folder_token: str = Field(
        default="",
        description="Drive folder for result Bases; empty = the app's own space (ownership is still transferred).",
    )
    feishu_upload_daily_limit: int = Field(
        default=10_000,
        ge=0,
        description="Drive uploads (screenshots, files into Base cells) this app may make a day: Feishu allows "
        "10,000 per app (UTC+8 days). Counted in the state database; when a job would go over, the contact "
        "sheet and subtitles go first, then screenshots, and the card and row say what was left out.",
    )

    # --- how events arrive -------------------------------------------------------------------------
    event_mode: Literal["websocket", "webhook"] = Field(
        default="websocket",
        description="websocket: the bot connects out to Feishu (long connection; no public URL, no Encrypt Key "
        "or Verification Token). webhook: Feishu POSTs events to /webhook/event (needs a public HTTPS URL; "
        "what Function Compute uses, since a frozen instance cannot hold a connection).",
    )
    long_connection_retry_min_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Websocket mode: the first wait before connecting again after the long connection failed "
        "or dropped; doubled after each failure in a row.",
    )
    long_connection_retry_max_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Websocket mode: the longest wait between attempts to connect.",
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
    http_header_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="Seconds a client has to send a request's headers (from connecting, or from its first byte) "
        "before it gets a 408 and the connection is closed.",
    )
    http_body_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="Seconds a client has to send a request's whole body after its headers (a Content-Length "
        "that promises more than arrives) before it gets a 408 and the connection is closed.",
    )
    replay_window_s: int = Field(
        default=300, ge=30, le=3600, description="Signed requests older or newer than this are replays."
    )
    dedupe_ttl_hours: float = Field(
        default=24.0,
        ge=8.0,
        description="How long delivered event and message ids are remembered (Feishu redelivers for ~7 h).",
    )
    dedupe_claim_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="A message claimed by a handler that never finished it (the process died before its job "
        "existed) is handled again when Feishu redelivers it after this many seconds.",
    )
    max_links_per_message: int = Field(default=20, ge=1, le=200, description="Videos accepted from one message.")

    # --- job runner --------------------------------------------------------------------------------
    job_runner: Literal["local", "fc-async"] = Field(
        default="local",
        description="local: in-process workers. fc-async: re-invoke the FC function asynchronously per job.",
    )
    job_function: str = Field(
        default="",
        description="Advanced: the job function as module:function (for example a custom results sink); "
        "empty = the bot's own (bot.job.delivery).",
    )
    shutdown_grace_s: float = Field(
        default=25.0,
        ge=0,
        le=600,
        description="On SIGTERM, how long running jobs get to finish before they are left to resume at the next "
        "start; keep it below the platform's grace period (compose stop_grace_period, Kubernetes "
        "terminationGracePeriodSeconds).",
    )

    # --- Function Compute (JOB_RUNNER=fc-async) ----------------------------------------------------
    server_role: Literal["all", "webhook"] = Field(
        default="all",
        description="all: this server answers Feishu and runs the jobs (FC's POST /initialize loads the speech "
        "model). webhook: the light function of a two-function FC deployment: it answers Feishu and invokes the "
        "worker function at JOB_INVOKE_URL for each job; /initialize loads no model and job invocations are "
        "refused (needs JOB_RUNNER=fc-async).",
    )
    job_function_name: str = Field(
        default="",
        description="The FC function whose async tasks run the jobs, stopped with StopAsyncTask when a user "
        "cancels; empty = this function (FC_FUNCTION_NAME). Set it on the webhook function of a two-function "
        "deployment.",
    )
    # FC reserves environment variable names starting with FC_ for its own (FC_REGION, FC_FUNCTION_NAME
    # are set by FC itself), so the trigger URL is also read from JOB_INVOKE_URL, the name s.yaml uses.
    fc_invoke_url: str = Field(
        default="",
        validation_alias=AliasChoices("JOB_INVOKE_URL", "FC_INVOKE_URL"),
        description="The function's HTTP trigger URL (`s info`); jobs are invoked at <url>/jobs/run. "
        "Required with JOB_RUNNER=fc-async.",
    )
    job_secret: SecretStr = Field(
        default=SecretStr(""),
        description="Shared secret that signs job invocations (at least 32 characters: openssl rand -hex 32). "
        "Required with JOB_RUNNER=fc-async.",
    )
    job_signature_max_age_s: int = Field(
        default=300,
        ge=30,
        le=3600,
        description="Job invocations signed longer ago (or further ahead) than this are refused.",
    )
    fc_region: str = Field(default="", description="Region of the function (FC sets FC_REGION itself).")
    fc_function_name: str = Field(default="", description="Name of the function (FC sets FC_FUNCTION_NAME).")
    fc_api_endpoint: str = Field(
        default="",
        description="Function Compute OpenAPI endpoint for stopping cancelled jobs; empty = the region's public "
        "endpoint (fcv3.<region>.aliyuncs.com).",
    )
    alibaba_cloud_access_key_id: SecretStr = Field(
        default=SecretStr(""),
        description="Fallback credentials for StopAsyncTask when FC passes none with the request (FC sets these "
        "from the function's role).",
    )
    alibaba_cloud_access_key_secret: SecretStr = Field(default=SecretStr(""), description="See above.")
    alibaba_cloud_security_token: SecretStr = Field(
        default=SecretStr(""), description="See above (temporary credentials only)."
    )

    @field_validator("feishu_domain", mode="after")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ValueError("must be an https:// URL (http:// only for a local test server)")
        return value

    @field_validator("fc_invoke_url", "fc_api_endpoint", mode="after")
    @classmethod
    def _service_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("job_function", mode="after")
    @classmethod
    def _import_path(cls, value: str) -> str:
        value = value.strip()
        module, _, name = value.partition(":")
        if value and not (module and name.isidentifier()):
            raise ValueError("must look like package.module:function")
        return value

    @model_validator(mode="after")
    def _fc_async_needs(self) -> Self:
        if self.job_runner != "fc-async":
            if self.server_role == "webhook":
                raise ValueError("SERVER_ROLE=webhook hands every job to a worker function: set JOB_RUNNER=fc-async")
            return self
        problems = []
        if not self.fc_invoke_url:
            problems.append("JOB_INVOKE_URL (or FC_INVOKE_URL) is not set: use the function's HTTP trigger URL")
        secret = self.job_secret.get_secret_value()
        if not secret:
            problems.append("JOB_SECRET is not set (generate one: openssl rand -hex 32)")
        elif len(secret) < MIN_JOB_SECRET_CHARS:
            problems.append(
                f"JOB_SECRET is too short: it needs at least {MIN_JOB_SECRET_CHARS} characters "
                "(generate one: openssl rand -hex 32)"
            )
        if problems:
            raise ValueError("JOB_RUNNER=fc-async needs: " + "; ".join(problems))
        return self

    @model_validator(mode="after")
    def _retry_range(self) -> Self:
        if self.long_connection_retry_max_s < self.long_connection_retry_min_s:
            raise ValueError("LONG_CONNECTION_RETRY_MAX_S must not be below LONG_CONNECTION_RETRY_MIN_S")
        return self

    def missing_for_events(self) -> list[str]:
        """Variables the chosen EVENT_MODE cannot work without (reported together at start)."""
        missing = []
        if not self.feishu_app_id:
            missing.append("FEISHU_APP_ID")
        if not self.feishu_app_secret.get_secret_value():
            missing.append("FEISHU_APP_SECRET")
        if self.event_mode == "webhook":
            if not self.feishu_verification_token.get_secret_value():
                missing.append("FEISHU_VERIFICATION_TOKEN")
            if not self.feishu_encrypt_key.get_secret_value():
                missing.append("FEISHU_ENCRYPT_KEY")
        return missing
