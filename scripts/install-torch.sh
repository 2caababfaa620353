#!/usr/bin/env bash
# Installs the CPU build of torch 2.13.0 into a Python environment, on any machine:
#
#   bash scripts/install-torch.sh .venv/bin/python [extra pip arguments]
#
# On PyPI, Linux torch==2.13.0 is the CUDA build, with about 17 nvidia-* packages (several GB). PyTorch's CPU
# index also offers 2.13.0+cpu: given both, pip takes 2.13.0+cpu (a local version sorts above the plain one,
# and it satisfies the ==2.13.0 pin in constraints.txt, so later installs keep it). TORCH_INDEX_URL points
# at that index or a mirror of it; empty, or unreachable, pip resolves from its usual sources alone (a wheel
# directory such as this network's keeps working) and this says which build that gave.
# Called by scripts/bootstrap.sh; tests/test_install_torch.py runs it against a local index.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${1:?usage: install-torch.sh PYTHON [pip arguments]}
shift
TORCH_INDEX_URL=${TORCH_INDEX_URL-https://download.pytorch.org/whl/cpu}

index_args=()
if [ -n "$TORCH_INDEX_URL" ]; then
    # A quick look first: pip itself would retry an unreachable index for a minute before going on.
    if "$python" - "$TORCH_INDEX_URL" <<'PY'; then
import os, sys, urllib.parse, urllib.request
page = sys.argv[1].rstrip("/") + "/torch/"
try:
    if page.startswith("file:"):
        path = urllib.request.url2pathname(urllib.parse.urlsplit(page).path)
        if not os.path.isdir(path):
            raise FileNotFoundError(path)
    else:
        urllib.request.urlopen(page, timeout=10).close()
except Exception as exc:
    print(f"note: the torch CPU index {sys.argv[1]} is unreachable ({type(exc).__name__}): "
          "resolving torch from pip's usual sources only")
    sys.exit(1)
PY
        index_args=(--extra-index-url "$TORCH_INDEX_URL")
    fi
fi

"$python" -m pip install -q -c constraints.txt "${index_args[@]}" torch==2.13.0 "$@"

case " $* " in *" --dry-run "*) exit 0 ;; esac
# -W ignore: torch warns that numpy is missing, which it is until the next install step.
"$python" -W ignore - <<'PY'
import torch
if torch.version.cuda:
    print(f"warning: installed torch {torch.__version__}, the CUDA build (several GB of nvidia-* packages). "
          "For the CPU build set TORCH_INDEX_URL to a reachable copy of https://download.pytorch.org/whl/cpu "
          "and run `make setup` again.")
else:
    print(f"torch {torch.__version__}: the CPU build")
PY
