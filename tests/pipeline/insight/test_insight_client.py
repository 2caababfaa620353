"""The model client against the fake OpenAI-compatible server: JSON mode, validation, the repair
attempt, and every failure turned into words that name the setting to check."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from pipeline.config import ConfigError
from pipeline.insight.client import InsightError, InvalidAnswer, ModelClient, TokenBudget
from pipeline.insight.schemas import TextAnswer
from tests.support.fake_openai import FakeOpenAI, Fault
from tests.support.insight_support import insight_settings

TRANSCRIPT = "[00:01] Welcome to the planning meeting.\n[00:04] We review the budget."


def ask(client: ModelClient) -> TextAnswer:
    answer, _usage = client.ask(TextAnswer, "Summarise the video.", f"Transcript:\n{TRANSCRIPT}")
    return answer


def test_json_mode_answer_is_validated_and_usage_counted(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    client = ModelClient(insight_settings(tmp_path, fake_model.base_url))
    answer, usage = client.ask(TextAnswer, "Summarise the video.", f"Transcript:\n{TRANSCRIPT}")
    assert answer.summary.startswith("FAKE-SUMMARY of 2 lines")
    assert [c.start for c in answer.chapters] == ["00:01", "00:04"]
    assert usage.calls == 1 and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    (request,) = fake_model.requests
    assert request.body["response_format"] == {"type": "json_object"}
    assert request.body["model"] == "text-model"
    assert request.headers["authorization"] == "Bearer test-key"


def test_a_429_with_retry_after_is_waited_out_and_retried(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    fake_model.faults.append(Fault.status_code(429, retry_after=1))
    client = ModelClient(insight_settings(tmp_path, fake_model.base_url, llm_max_retries=2))
    assert ask(client).summary.startswith("FAKE-SUMMARY")
    first, second = fake_model.requests
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.finished_at >= 0.9  # the SDK honoured Retry-After


def test_rate_limited_beyond_the_retries_says_so(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    fake_model.always = Fault.status_code(429, retry_after=0)
    client = ModelClient(insight_settings(tmp_path, fake_model.base_url, llm_max_retries=1))
    with pytest.raises(InsightError) as caught:
        ask(client)
    assert caught.value.problem.code == "rate_limited"
    assert "429" in caught.value.problem.message.en and "限流" in caught.value.problem.message.zh
    assert len(fake_model.requests) == 2


def test_a_server_error_is_retried_then_reported(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    fake_model.faults.append(Fault.status_code(500))
    client = ModelClient(insight_settings(tmp_path, fake_model.base_url, llm_max_retries=1))
    assert ask(client).summary.startswith("FAKE-SUMMARY")
    fake_model.always = Fault.status_code(503)
    with pytest.raises(InsightError) as caught:
        ask(client)
    assert caught.value.problem.code == "server_error"
    assert "503" in caught.value.problem.message.en


def test_a_slow_answer_times_out(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    fake_model.faults.append(Fault.slow(3.0))
    client = ModelClient(insight_settings(tmp_path, fake_model.base_url, llm_timeout_s=0.5))
    with pytest.raises(InsightError) as caught:
        ask(client)
    assert caught.value.problem.code == "timeout"
    assert "LLM_TIMEOUT_S" in caught.value.problem.message.en


def test_an_unreachable_base_url_names_the_setting(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = ModelClient(insight_settings(tmp_path, f"http://127.0.0.1:{port}/v1"))
    with pytest.raises(InsightError) as caught:
        ask(client)
    assert caught.value.problem.code == "unreachable"
    assert "LLM_BASE_URL" in caught.value.problem.message.en and "LLM_BASE_URL" in caught.value.problem.message.zh


def test_a_wrong_key_names_the_setting_never_the_key(
    tmp_path: Path, fake_model: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-wrong-secret-123456"
    caplog.set_level(logging.DEBUG)
    client = ModelClient(insight_settings(tmp_path, fake_model.base_url, llm_api_key=secret))
    with pytest.raises(InsightError) as caught:
        ask(client)
    problem = caught.value.problem
    assert problem.code == "unauthorized"
    assert "LLM_API_KEY" in problem.message.en and "LLM_API_KEY" in problem.message.zh
    assert secret not in str(problem.to_dict())
    assert secret not in caplog.text


def test_an_unknown_model_is_named(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    client = ModelClient(insight_settings(tmp_path, fake_model.base_url, llm_model="no-such-model"))
    with pytest.raises(InsightError) as caught:
        ask(client)
    assert caught.value.problem.code == "unknown_model"
    assert "no-such-model" in caught.value.problem.message.en and "LLM_MODEL" in caught.value.problem.message.en


def test_invalid_json_is_repaired_once(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    fake_model.faults.append(Fault("invalid_json"))
    client = ModelClient(insight_settings(tmp_path, fake_model.base_url))
    assert ask(client).summary.startswith("FAKE-SUMMARY")
    repair = fake_model.requests[1].body["messages"]
    assert [m["role"] for m in repair] == ["system", "user", "assistant", "user"]
    assert "not valid JSON" in repair[-1]["content"]


def test_invalid_json_twice_keeps_the_raw_text(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    fake_model.faults += [Fault("invalid_json"), Fault("invalid_json")]
    client = ModelClient(insight_settings(tmp_path, fake_model.base_url))
    with pytest.raises(InvalidAnswer) as caught:
        ask(client)
    assert caught.value.problem.code == "invalid_json"
    assert "it is about a meeting" in caught.value.raw_text
    assert len(fake_model.requests) == 2


def test_a_refusal_is_reported(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    fake_model.faults.append(Fault("refusal"))
    client = ModelClient(insight_settings(tmp_path, fake_model.base_url))
    with pytest.raises(InsightError) as caught:
        ask(client)
    assert caught.value.problem.code == "refused"


def test_a_call_over_the_budget_is_not_sent(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    client = ModelClient(insight_settings(tmp_path, fake_model.base_url))
    with pytest.raises(InsightError) as caught:
        client.ask(TextAnswer, "Summarise.", TRANSCRIPT, budget=TokenBudget(500))
    assert caught.value.problem.code == "token_budget"
    assert fake_model.requests == []


def test_a_base_url_without_a_scheme_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        insight_settings(tmp_path, "dashscope.aliyuncs.com/compatible-mode/v1")
    assert "LLM_BASE_URL" in str(caught.value)


def test_insight_is_on_only_with_both_the_endpoint_and_the_model(tmp_path: Path) -> None:
    assert insight_settings(tmp_path, "http://127.0.0.1:9/v1").insight_enabled
    assert not insight_settings(tmp_path, "http://127.0.0.1:9/v1", llm_model=" ").insight_enabled
    assert not insight_settings(tmp_path, "").insight_enabled
    shown = repr(insight_settings(tmp_path, "", llm_api_key="sk-secret"))
    assert "**********" in shown and "sk-secret" not in shown
