"""scripts/install-torch.sh, the set-up's torch step, resolved by the real pip against local package indexes.

Two PEP 503 indexes in a temp dir stand in for PyPI (offering torch 2.13.0, as PyPI's CUDA build is named)
and for PyTorch's CPU index (offering 2.13.0+cpu); the wheels are tiny fakes, enough for pip to resolve.
``pip install --dry-run --report`` says what would be installed. This machine's pip configuration (which
offers the real CPU wheel from a local directory) is switched off, as on a machine outside this network.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "install-torch.sh"


def fake_wheel(folder: Path, version: str) -> Path:
    """A minimal valid wheel of a package named torch at ``version``."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"torch-{version}-py3-none-any.whl"
    info = f"torch-{version}.dist-info"
    files = {
        "torch/__init__.py": f"__version__ = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            data = text.encode()
            archive.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{name},sha256={digest},{len(data)}")
        archive.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")
    return wheel


def simple_index(root: Path, version: str) -> str:
    """A PEP 503 index at ``root`` with one project, torch, in one version; its file:// URL."""
    project = root / "torch"
    wheel = fake_wheel(project, version)
    (root / "index.html").write_text('<html><body><a href="torch/">torch</a></body></html>\n')
    (project / "index.html").write_text(f'<html><body><a href="{wheel.name}">{wheel.name}</a></body></html>\n')
    return root.as_uri()


@pytest.fixture
def indexes(tmp_path: Path) -> tuple[str, str]:
    return simple_index(tmp_path / "pypi", "2.13.0"), simple_index(tmp_path / "cpu", "2.13.0+cpu")


def resolve(tmp_path: Path, pypi: str, torch_index: str) -> tuple[str, str]:
    """(the torch version pip would install, the script's output) with TORCH_INDEX_URL=torch_index."""
    report = tmp_path / "report.json"
    report.unlink(missing_ok=True)
    env = {name: value for name, value in os.environ.items() if not name.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, TORCH_INDEX_URL=torch_index, PIP_DISABLE_PIP_VERSION_CHECK="1")
    done = subprocess.run(
        ["bash", str(SCRIPT), sys.executable, "--dry-run", "--report", str(report), "--ignore-installed",
         "--no-deps", "--index-url", pypi],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (item,) = json.loads(report.read_text())["install"]
    assert item["metadata"]["name"] == "torch"
    return item["metadata"]["version"], done.stdout + done.stderr


@pytest.mark.slow
def test_with_both_builds_offered_the_cpu_build_is_picked(tmp_path: Path, indexes: tuple[str, str]) -> None:
    pypi, cpu = indexes
    version, output = resolve(tmp_path, pypi, cpu)
    print(f"PyPI offers 2.13.0, the CPU index 2.13.0+cpu -> pip picks {version}")
    assert version == "2.13.0+cpu"
    assert "unreachable" not in output


@pytest.mark.slow
def test_without_the_cpu_index_pip_takes_pypis_build(tmp_path: Path, indexes: tuple[str, str]) -> None:
    """The control: what `make setup` installed before the CPU index was added (the CUDA build on PyPI)."""
    pypi, _ = indexes
    version, _ = resolve(tmp_path, pypi, "")
    print(f"PyPI alone -> pip picks {version}")
    assert version == "2.13.0"


@pytest.mark.slow
def test_an_unreachable_cpu_index_is_said_and_the_install_goes_on(tmp_path: Path, indexes: tuple[str, str]) -> None:
    pypi, _ = indexes
    missing = (tmp_path / "no-such-index").as_uri()
    version, output = resolve(tmp_path, pypi, missing)
    assert version == "2.13.0"
    assert f"the torch CPU index {missing} is unreachable" in output
