"""The README tells the truth about what it documents: the two commands at its top, and every setting."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

from bot.config import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _config_table_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("config_table", ROOT / "scripts" / "config_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_two_commands_come_first_and_exist_in_the_makefile() -> None:
    first_block = re.search(r"```sh\n(.*?)```", README, re.DOTALL)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^demo: setup$", makefile, re.MULTILINE)
    assert re.search(r"^test: setup$", makefile, re.MULTILINE)


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^make test$", ci, re.MULTILINE)


def test_the_configuration_table_is_the_generated_one() -> None:
    config_table = _config_table_module()
    assert config_table.replace_in(README) == README, "run: .venv/bin/python scripts/config_table.py --write"


def test_every_setting_is_described_and_listed() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name.upper()} has no description"
        assert f"`{name.upper()}`" in README, f"{name.upper()} is not in README.md"


def test_env_example_names_only_real_settings() -> None:
    known = {name.upper() for name in Settings.model_fields} | {"PORT", "FC_INVOKE_URL"}
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            assert line.split("=", 1)[0] in known, line
