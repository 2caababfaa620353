#!/usr/bin/env bash
# Rewrites constraints.txt from what .venv/ holds now (after adding a dependency to pyproject.toml and
# installing it with `-c constraints.txt`). torch stays pinned to the 2.13.0 CPU build.
set -euo pipefail
cd "$(dirname "$0")/.."
{
    head -n 3 constraints.txt
    # --all keeps setuptools (torch depends on it: unpinned, it would float); pip itself stays unpinned.
    .venv/bin/python -m pip freeze --all --exclude-editable | grep -v -E '^(video-insight-bot|-e |#|pip==)' \
        | sed 's/^torch==2.13.0+cpu$/torch==2.13.0/'
} > constraints.txt.new
mv constraints.txt.new constraints.txt
