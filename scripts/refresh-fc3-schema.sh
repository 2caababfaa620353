#!/usr/bin/env bash
# Replaces schemas/fc3-schema.json with the fc3 component's current schema (see schemas/README.md).
# Needs the internet; on any failure the copy in the repository is left as it was.
set -euo pipefail
cd "$(dirname "$0")/.."

URL=${FC3_SCHEMA_URL:-https://raw.githubusercontent.com/devsapp/fc3/master/src/schema.json}
target=schemas/fc3-schema.json
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

if ! curl --fail --silent --show-error --location --max-time 60 "$URL" -o "$tmp"; then
    echo "error: could not download $URL (offline, or the file moved?); $target is unchanged" >&2
    exit 1
fi
if ! python3 -c 'import json, sys; s = json.load(open(sys.argv[1])); assert "definitions" in s' "$tmp" 2>/dev/null; then
    echo "error: $URL did not return the fc3 JSON schema; $target is unchanged" >&2
    exit 1
fi
chmod 644 "$tmp"  # mktemp makes it private
mv "$tmp" "$target"
trap - EXIT
if git diff --quiet -- "$target"; then
    echo "$target is up to date"
else
    echo "$target changed: run the deploy tests, review 'git diff $target', note the commit in schemas/README.md"
fi
