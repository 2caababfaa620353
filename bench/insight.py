"""What insight adds to a batch's wall time when the model is slow.

    .venv/bin/python bench/insight.py                 # 3 videos, a model answering in 2 s, one run each
    .venv/bin/python bench/insight.py --delay 2 --videos 3 --runs 2

Three short videos (espeak-ng speech over test patterns, made once in ``bench/.cache/``) go through
``Analyzer.analyze_batch`` with Whisper tiny.en, in one process, the model loaded before the clock starts:

  off  insight off (LLM_BASE_URL empty): the baseline;
  on   insight on, against the fake OpenAI-compatible server from the tests answering every call after
       ``--delay`` seconds, with VLM_MODEL set (text and visual read per video, then the batch overview).

Printed: the wall time of each, the difference, the number of model calls, and what those calls would
cost one after another (calls x delay). The design goal: the extra is close to one or two calls' latency
(the last video's calls, then the overview), not one per call, because model calls run outside the CPU
slot while the next video transcribes, and a video's text and visual calls run at the same time.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402

from pipeline.analyze import Analyzer  # noqa: E402
from pipeline.asr import get_transcriber  # noqa: E402
from pipeline.config import PipelineSettings  # noqa: E402
from pipeline.models import AnalysisOptions, VideoSource  # noqa: E402
from pipeline.sources import default_registry  # noqa: E402
from tests.support import media  # noqa: E402
from tests.support.fake_openai import FakeOpenAI  # noqa: E402

CACHE = ROOT / "bench" / ".cache" / "insight"
SENTENCES = (
    ("Welcome to the product review.", "We compare three designs today.", "The second one is cheaper."),
    ("This lecture covers sorting.", "Quick sort splits the list in two.", "Merge sort is stable."),
    ("Our new phone has a bigger battery.", "It charges in twenty minutes.", "Order yours today."),
)


def make_videos(count: int) -> list[Path]:
    CACHE.mkdir(parents=True, exist_ok=True)
    videos = []
    for i in range(count):
        path = CACHE / f"video-{i + 1}.mp4"
        if not path.exists():
            wav = media.speech_wav(CACHE / f"speech-{i + 1}.wav", SENTENCES[i % len(SENTENCES)])
            media.video(path, duration_s=8.0, scenes=("testsrc2", "navy"), audio=wav)
        videos.append(path)
    return videos


def run_once(settings: PipelineSettings, videos: Sequence[Path], work: Path) -> float:
    analyzer = Analyzer(settings, default_registry(settings, include_local=True))
    out = Path(tempfile.mkdtemp(dir=work))
    started = time.perf_counter()
    analyzer.analyze_batch(
        [VideoSource.local(v) for v in videos], AnalysisOptions(), out_dir=out / "out", scratch_dir=out / "scratch"
    )
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delay", type=float, default=2.0, help="seconds the fake model takes per call")
    parser.add_argument("--videos", type=int, default=3)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args(argv)
    videos = make_videos(args.videos)
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI(delay_s=args.delay) as fake:
        work = Path(tmp)
        common: dict[str, object] = {"asr_backend": "whisper", "work_dir": work / "w", "data_dir": work / "d"}
        off = PipelineSettings.load(_env_file=None, **common)
        on = PipelineSettings.load(
            _env_file=None,
            **common,
            llm_base_url=fake.base_url,
            llm_api_key=fake.api_key,
            llm_model="text-model",
            vlm_model="vision-model",
        )
        get_transcriber(off).warm()  # the model load is not what is measured
        print(f"load average: {os.getloadavg()[0]:.2f}; {args.videos} videos of 8 s; model delay {args.delay:g} s")
        offs, ons, calls = [], [], []
        for _ in range(args.runs):
            offs.append(run_once(off, videos, work))
            before = len(fake.requests)
            ons.append(run_once(on, videos, work))
            calls.append(len(fake.requests) - before)
        off_s, on_s, n = statistics.median(offs), statistics.median(ons), int(statistics.median(calls))
        print(f"{'variant':<34}{'wall (s)':>10}")
        print(f"{'insight off (baseline)':<34}{off_s:>10.2f}")
        print(f"{'insight on':<34}{on_s:>10.2f}")
        print(f"{'extra':<34}{on_s - off_s:>10.2f}")
        print(f"model calls per batch: {n}; one after another they would take {n * args.delay:.1f} s")
        print(f"extra / one call's latency: {(on_s - off_s) / args.delay:.2f}")
        if args.runs > 1:
            print("runs off:", ", ".join(f"{x:.2f}" for x in offs), "| on:", ", ".join(f"{x:.2f}" for x in ons))
    return 0


if __name__ == "__main__":
    sys.exit(main())
