"""The one place that talks to the model endpoint, through the official ``openai`` SDK.

``ModelClient.ask`` sends one chat completion in JSON mode and returns an answer validated by a
pydantic model. The SDK retries timeouts, 429 (honouring Retry-After) and 5xx ``LLM_MAX_RETRIES``
times; what still fails becomes an ``InsightError`` carrying words for the user that name the setting
to check (never the key). An answer that is not valid JSON for its schema gets one repair request;
after that ``InvalidAnswer`` keeps the raw text so nothing the model said is lost.

``openai`` is imported on first use: the server starts without it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from pipeline.config import PipelineSettings
from pipeline.insight.models import InsightProblem, Usage
from pipeline.models import UserText

if TYPE_CHECKING:
    from openai import OpenAI

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

_slots_lock = threading.Lock()
_slots: dict[int, threading.BoundedSemaphore] = {}


def _call_slots(count: int) -> threading.BoundedSemaphore:
    """Process-wide cap on model calls in flight (``LLM_CONCURRENCY``), shared by every job."""
    with _slots_lock:
        if count not in _slots:
            _slots[count] = threading.BoundedSemaphore(count)
        return _slots[count]


class InsightError(Exception):
    """A model call that gave nothing usable; ``problem`` says why in words for the user."""

    def __init__(self, problem: InsightProblem) -> None:
        super().__init__(problem.detail or problem.code)
        self.problem = problem


class InvalidAnswer(InsightError):
    """The answer never became valid JSON for its schema; ``raw_text`` is what the model said."""

    def __init__(self, problem: InsightProblem, raw_text: str) -> None:
        super().__init__(problem)
        self.raw_text = raw_text


class BudgetExceeded(InsightError):
    pass


def problem(code: str, zh: str, en: str, detail: str = "") -> InsightProblem:
    return InsightProblem(code, UserText(zh=zh, en=en), detail)


def estimate_tokens(text: str) -> int:
    """A cautious guess before a call: about one token per CJK character, one per 3 other characters."""
    cjk = sum(1 for ch in text if "\u3000" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af")
    return cjk + (len(text) - cjk) // 3 + 1


class TokenBudget:
    """Tokens a video or a job may still spend; shared between threads. A call is refused up front when
    its estimate would overrun, and charged what the endpoint reports afterwards."""

    def __init__(self, limit: int, parent: TokenBudget | None = None) -> None:
        self.limit = limit
        self.used = 0
        self._parent = parent
        self._lock = threading.Lock()

    @property
    def left(self) -> int:
        own = self.limit - self.used
        return min(own, self._parent.left) if self._parent else own

    def check(self, estimate: int) -> None:
        if estimate > self.left:
            raise BudgetExceeded(
                problem(
                    "token_budget",
                    "已达到 AI 分析的 token 预算（LLM_TOKENS_PER_VIDEO / LLM_TOKENS_PER_JOB），这部分没有生成。",
                    "The insight token budget (LLM_TOKENS_PER_VIDEO / LLM_TOKENS_PER_JOB) is used up; this "
                    "part was not generated.",
                    f"estimate {estimate} > left {self.left}",
                )
            )

    def charge(self, tokens: int) -> None:
        with self._lock:
            self.used += tokens
        if self._parent:
            self._parent.charge(tokens)


@dataclass(frozen=True)
class Answer:
    """A validated answer and what it cost."""

    data: BaseModel
    usage: Usage
    model: str


class ModelClient:
    """Chat completions against ``LLM_BASE_URL``; thread-safe (the SDK client is)."""

    def __init__(self, settings: PipelineSettings) -> None:
        self._settings = settings
        self._client: OpenAI | None = None
        self._lock = threading.Lock()
        self._slots = _call_slots(settings.llm_concurrency)

    def _sdk(self) -> OpenAI:
        with self._lock:
            if self._client is None:
                from openai import OpenAI

                s = self._settings
                self._client = OpenAI(
                    base_url=s.llm_base_url,
                    # Local servers (Ollama, vLLM) want no key, but the SDK insists on one.
                    api_key=s.llm_api_key.get_secret_value() or "not-set",
                    timeout=s.llm_timeout_s,
                    max_retries=s.llm_max_retries,
                )
            return self._client

    def close(self) -> None:
        """Release the SDK's connection pool (a client lives for one batch or one question)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def ask(
        self,
        schema: type[M],
        system: str,
        content: str | Sequence[dict[str, Any]],
        *,
        model: str | None = None,
        budget: TokenBudget | None = None,
    ) -> tuple[M, Usage]:
        """One question, answered as JSON fitting ``schema``. Raises ``InsightError``."""
        model = model or self._settings.llm_model
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": system},
            {"role": "user", "content": content if isinstance(content, str) else list(content)},
        ]
        usage = Usage()
        raw = self._complete(messages, model, usage, budget)
        try:
            return _parse(schema, raw), usage
        except ValueError as first_error:
            log.info("model %s answered invalid JSON (%s); asking once to repair it", model, first_error)
            messages += [
                {"role": "assistant", "content": raw},
                {
                    "role": "user",
                    "content": "That answer is not valid JSON for the requested shape "
                    f"({str(first_error)[:300]}). Answer again with only the JSON object.",
                },
            ]
            repaired = self._complete(messages, model, usage, budget)
            try:
                return _parse(schema, repaired), usage
            except ValueError as second_error:
                raise InvalidAnswer(
                    problem(
                        "invalid_json",
                        "模型两次都没有按要求返回 JSON，下面保留了它的原文。",
                        "The model twice answered something other than the requested JSON; its raw text is kept below.",
                        str(second_error)[:500],
                    ),
                    raw_text=repaired or raw,
                ) from None

    def _complete(self, messages: list[dict[str, Any]], model: str, usage: Usage, budget: TokenBudget | None) -> str:
        max_tokens = self._settings.llm_max_output_tokens
        if budget is not None:
            budget.check(estimate_tokens(json.dumps(messages, ensure_ascii=False)) + max_tokens)
        import openai

        try:
            with self._slots:
                response = self._sdk().chat.completions.create(  # type: ignore[call-overload]
                    model=model,
                    messages=messages,
                    response_format={"type": "json_object"},
                    max_tokens=max_tokens,
                    temperature=0.2,
                )
        except openai.APIError as exc:
            raise InsightError(describe_api_error(exc, model, self._settings)) from None
        spent = Usage(calls=1)
        if response.usage is not None:
            spent = Usage(response.usage.prompt_tokens, response.usage.completion_tokens, 1)
        usage.add(spent)
        if budget is not None:
            budget.charge(spent.total_tokens)
        if not response.choices:
            raise InsightError(problem("empty_answer", "模型返回了空回答。", "The model returned no answer."))
        choice = response.choices[0]
        refusal = getattr(choice.message, "refusal", None)
        if refusal or choice.finish_reason == "content_filter":
            raise InsightError(
                problem(
                    "refused",
                    "模型拒绝分析这段内容（可能触发了内容审核）。",
                    "The model declined to analyse this content (its content filter may have been triggered).",
                    str(refusal or choice.finish_reason)[:300],
                )
            )
        return choice.message.content or ""


def _parse(schema: type[M], raw: str) -> M:
    """``raw`` as ``schema``; a JSON object wrapped in a Markdown fence is accepted."""
    text = raw.strip()
    fenced = re.match(r"^```(?:json)?\s*(.*?)\s*```$", text, re.DOTALL)
    if fenced:
        text = fenced.group(1)
    try:
        return schema.model_validate_json(text)
    except ValidationError as exc:
        raise ValueError(str(exc).splitlines()[0] if str(exc) else "invalid") from None


def describe_api_error(exc: Exception, model: str, settings: PipelineSettings) -> InsightProblem:
    """Words for the user about a failed call. Names settings, never their values' secrets."""
    import openai

    status = getattr(exc, "status_code", None)
    detail = f"{type(exc).__name__}: status {status}" if status else type(exc).__name__
    if isinstance(exc, openai.APITimeoutError):
        return problem(
            "timeout",
            f"模型在 {settings.llm_timeout_s:g} 秒内没有回答（已重试 {settings.llm_max_retries} 次）。"
            "可稍后重试，或调大 LLM_TIMEOUT_S。",
            f"The model did not answer within {settings.llm_timeout_s:g} s (after {settings.llm_max_retries} "
            "retries). Try again later or raise LLM_TIMEOUT_S.",
            detail,
        )
    if isinstance(exc, openai.APIConnectionError):
        return problem(
            "unreachable",
            "连不上模型服务：请检查 LLM_BASE_URL 是否正确、网络是否可达。",
            "Could not reach the model service: check that LLM_BASE_URL is right and reachable.",
            f"{detail} ({settings.llm_base_url})",
        )
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return problem(
            "unauthorized",
            "模型服务拒绝了 API 密钥：请检查 LLM_API_KEY。",
            "The model service rejected the API key: check LLM_API_KEY.",
            detail,
        )
    if isinstance(exc, openai.RateLimitError):
        return problem(
            "rate_limited",
            "模型服务限流（429），重试后仍未成功。请稍后再试，或调低 LLM_CONCURRENCY。",
            "The model service is rate limiting (429) and retries did not get through. Try again later or "
            "lower LLM_CONCURRENCY.",
            detail,
        )
    message = str(getattr(exc, "message", "") or "")
    if isinstance(exc, openai.NotFoundError) or (
        isinstance(exc, openai.BadRequestError) and "model" in message.lower()
    ):
        return problem(
            "unknown_model",
            f"模型服务不认识模型“{model}”：请检查 LLM_MODEL / VLM_MODEL（以及 LLM_BASE_URL 的路径，如 /v1）。",
            f"The model service does not know the model “{model}”: check LLM_MODEL / VLM_MODEL (and the path "
            "in LLM_BASE_URL, such as /v1).",
            detail,
        )
    if isinstance(status, int) and status >= 500:
        return problem(
            "server_error",
            f"模型服务出错（HTTP {status}），重试后仍未成功。请稍后再试。",
            f"The model service failed (HTTP {status}) and retries did not get through. Try again later.",
            detail,
        )
    return problem(
        "model_error",
        f"模型服务拒绝了请求（{detail}）。",
        f"The model service refused the request ({detail}).",
        detail,
    )
