#!/usr/bin/env bash
# Installs the system tools the project runs (ffmpeg, espeak-ng) when they are missing.
# Idempotent: does nothing when both are on PATH.
set -euo pipefail

missing=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing system packages: ${missing[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: ${missing[*]} not found and apt-get is unavailable; install them with your package manager." >&2
    exit 1
fi
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
