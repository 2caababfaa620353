#!/usr/bin/env bash
# Creates .venv/ and installs the project with its dev tools, once: later runs return at once
# unless pyproject.toml or constraints.txt changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
stamp=.venv/.installed

if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt constraints.txt ]; then
    exit 0
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first and alone: funasr does not declare it. The CPU build, from PyTorch's CPU index
# (TORCH_INDEX_URL, for mirrors): on PyPI alone torch==2.13.0 is the CUDA build.
bash scripts/install-torch.sh .venv/bin/python
.venv/bin/python -m pip install -q -c constraints.txt -e '.[dev]'
touch "$stamp"
