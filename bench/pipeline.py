"""The whole analysis of one long video, next to the speech engine alone and a naive pipeline.

    .venv/bin/python bench/pipeline.py                      # 10 min of 720p, Whisper tiny.en, one run
    .venv/bin/python bench/pipeline.py --minutes 3 --runs 3
    .venv/bin/python bench/pipeline.py --asr funasr         # FUNASR_*_MODEL_DIR, else tiny random models

The video (made once, cached in ``bench/.cache/``): espeak-ng reading a long, varied English text, over
slides with hard cuts every 20-40 s and a running clock, 1280x720 at 25 fps, H.264 with a 250-frame GOP,
AAC. It is served by a threaded ``http.server`` on 127.0.0.1 inside this process, and each variant runs
in a fresh child process, so imports, model loading and memory are counted the same way for all three:

  (a) pipeline   ``Analyzer.analyze_batch`` on the link: download, probe, audio, ASR (scene scan beside
                 it), screenshots (scenes + speech anchors, at most 20), every output file;
  (b) asr-alone  the same ``get_transcriber(settings)`` engine on the same 16 kHz mono WAV (made before
                 the clock starts): the floor of any pipeline that transcribes;
  (c) naive      one ``requests.get`` into memory then to disk, ``ffmpeg`` audio extraction, the same
                 ASR, then OpenCV reading every frame in order and keeping one every N seconds (N puts
                 20 frames over the video, as many as the pipeline's cap), one step after the other.

Per variant: wall time, CPU time (user + system of the child and the processes it waited for, from
``wait4``), peak RSS (the largest single process, from ``wait4``; and the whole process tree, sampled
from ``/proc`` every 50 ms), and the ratios to (b). Targets: (a) within 1.3x of (b) in wall time, under
1.5 GB peak RSS with Whisper tiny, faster than (c). The machine's load average is printed before each
run: other work on the machine skews every figure.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would shadow the ``pipeline``
# package: put the repository root there instead.
ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402 - after the path set-up above
import functools  # noqa: E402
import http.server  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

CACHE = ROOT / "bench" / ".cache"
WIDTH, HEIGHT, FPS, GOP = 1280, 720, 25, 250
NAIVE_FRAMES = 20
VARIANTS = ("pipeline", "asr-alone", "naive")
LABELS = {
    "pipeline": "(a) pipeline end to end",
    "asr-alone": "(b) ASR engine alone",
    "naive": "(c) naive sequential",
}
TARGET_WALL_RATIO = 1.3
TARGET_RSS_BYTES = 1.5 * 1024**3

# --------------------------------------------------------------------------------------------------
# The video
# --------------------------------------------------------------------------------------------------

_TOPICS = (
    "the budget",
    "the product roadmap",
    "cloud spending",
    "the hiring plan",
    "customer support",
    "the mobile app",
    "the web editor",
    "security reviews",
    "the data platform",
    "the marketing launch",
    "office moves",
    "quarterly targets",
)
_TEMPLATES = (
    "Next we look at {topic}, which changed by {n} percent since {month}.",
    "The team working on {topic} shipped {n} improvements in {month}.",
    "Our plan for {topic} is to finish the first phase before {month}.",
    "Several customers asked about {topic}, and we answered {n} questions last week.",
    "The main risk for {topic} is the schedule, so we added {n} engineers.",
    "We will review {topic} again in {month} with the whole group.",
    "Costs for {topic} went down by {n} thousand dollars this quarter.",
    "Please read the notes on {topic} before the meeting in {month}.",
    "A new dashboard shows {topic} every morning with {n} charts.",
    "The feedback on {topic} was mostly positive, with {n} open issues.",
)
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October")
_COLOURS = ("navy", "darkgreen", "maroon", "darkslategray", "indigo", "saddlebrown", "teal", "olive", "black")


def speech_text(words: int, seed: int = 7) -> str:
    """Varied meeting talk, about ``words`` words long (a repeated text would let Whisper loop)."""
    rng = random.Random(seed)
    sentences: list[str] = []
    count = 0
    while count < words:
        sentence = rng.choice(_TEMPLATES).format(
            topic=rng.choice(_TOPICS), n=rng.randint(2, 90), month=rng.choice(_MONTHS)
        )
        sentences.append(sentence)
        count += len(sentence.split())
    return "\n".join(sentences) + "\n"


def slide_plan(duration_s: float, seed: int = 11) -> list[tuple[float, str, str]]:
    """(length, colour, title) of each slide: hard cuts every 20-40 s."""
    rng = random.Random(seed)
    slides: list[tuple[float, str, str]] = []
    left = duration_s
    while left > 0.01:
        length = min(left, rng.uniform(20.0, 40.0))
        if left - length < 5.0:  # no sliver of a slide at the end
            length = left
        number = len(slides) + 1
        slides.append((length, _COLOURS[number % len(_COLOURS)], f"{number}. {rng.choice(_TOPICS).capitalize()}"))
        left -= length
    return slides


def run_quietly(argv: Sequence[str]) -> None:
    subprocess.run(list(argv), check=True, stdin=subprocess.DEVNULL, capture_output=True)


def media_duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(out.strip())


def make_video(minutes: float) -> Path:
    """The benchmark video for ``minutes``, made once and cached."""
    duration = minutes * 60.0
    tag = f"talk-{minutes:g}min-{HEIGHT}p"
    video = CACHE / f"{tag}.mp4"
    if video.is_file():
        return video
    CACHE.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    text = CACHE / f"{tag}.txt"
    speech = CACHE / f"{tag}-speech.wav"
    # espeak-ng at 150 words a minute, plus pauses between sentences: ask for a little more than needed.
    text.write_text(speech_text(int(minutes * 150 * 1.1)), encoding="utf-8")
    run_quietly(["espeak-ng", "-v", "en-us", "-s", "150", "-f", str(text), "-w", str(speech)])
    spoken = media_duration(speech)

    slides = slide_plan(duration)
    inputs: list[str] = []
    chains: list[str] = []
    for i, (length, colour, title) in enumerate(slides):
        inputs += ["-f", "lavfi", "-t", f"{length:.3f}", "-i", f"color=c={colour}:size={WIDTH}x{HEIGHT}:rate={FPS}"]
        label = title.replace(":", r"\:").replace("'", "")
        chains.append(
            f"[{i}:v]drawtext=text='{label}':x=80:y=120:fontsize=64:fontcolor=white,"
            f"drawbox=x=80:y=260:w={WIDTH - 160}:h=6:color=white@0.8:t=fill,"
            f"drawtext=text='Quarterly review - slide {i + 1} of {len(slides)}':x=80:y=300:fontsize=36:"
            f"fontcolor=white@0.85[s{i}]"
        )
    n = len(slides)
    graph = ";".join(chains) + ";" + "".join(f"[s{i}]" for i in range(n))
    graph += f"concat=n={n}:v=1:a=0,drawtext=text='%{{pts\\:hms}}':x=w-tw-40:y=h-th-40:fontsize=28:"
    graph += "fontcolor=white:box=1:boxcolor=black@0.5,format=yuv420p[v];"
    graph += f"[{n}:a]apad,atrim=0:{duration:.3f}[a]"
    partial = video.with_name(video.name + ".part.mp4")
    run_quietly(
        [
            "ffmpeg",
            "-y",
            "-v",
            "error",
            *inputs,
            "-i",
            str(speech),
            "-filter_complex",
            graph,
            "-map",
            "[v]",
            "-map",
            "[a]",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            str(GOP),
            "-c:a",
            "aac",
            "-b:a",
            "96k",
            "-ar",
            "44100",
            "-t",
            f"{duration:.3f}",
            "-movflags",
            "+faststart",
            str(partial),
        ]
    )
    partial.replace(video)
    speech.unlink()
    print(
        f"made {video.relative_to(ROOT)} in {time.monotonic() - started:.0f} s: {n} slides, "
        f"{min(spoken, duration):.0f} s of speech",
        flush=True,
    )
    return video


def make_wav(video: Path) -> Path:
    """The 16 kHz mono WAV that (b) transcribes: what the pipeline's audio stage makes."""
    wav = video.with_suffix(".16k.wav")
    if not wav.is_file():
        partial = wav.with_name(wav.name + ".part")
        extract = ["ffmpeg", "-y", "-v", "error", "-i", str(video), "-vn", "-ac", "1", "-ar", "16000", "-f", "wav"]
        run_quietly([*extract, str(partial)])
        partial.replace(wav)
    return wav


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietFiles, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="bench-http", daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


# --------------------------------------------------------------------------------------------------
# The variants (each runs in its own child process: ``--child NAME``)
# --------------------------------------------------------------------------------------------------


def asr_settings_overrides(asr: str) -> dict[str, Any]:
    """The ASR settings every variant shares: the backend, and for FunASR the model directories (from
    the environment, else the tiny random models of the tests: the text is then noise)."""
    overrides: dict[str, Any] = {"asr_backend": asr}
    if asr == "funasr" and not os.environ.get("FUNASR_MODEL_DIR"):
        from tests.support.asr_models import build_tiny_funasr_models

        root = CACHE / "funasr-tiny"
        if not (root / "tiny-paraformer-zh" / "model.pt").is_file():
            build_tiny_funasr_models(root)
        overrides |= {
            "funasr_model_dir": str(root / "tiny-paraformer-zh"),
            "funasr_vad_model_dir": str(root / "tiny-fsmn-vad"),
            "funasr_punc_model_dir": str(root / "tiny-ct-punc"),
        }
    return overrides


def child_pipeline(url: str, work: Path, asr: str) -> dict[str, Any]:
    from pipeline.analyze import Analyzer
    from pipeline.config import PipelineSettings
    from pipeline.models import AnalysisOptions, VideoSource
    from pipeline.sources import default_registry

    settings = PipelineSettings.load(
        _env_file=None, allow_private_urls=True, work_dir=work / "work", **asr_settings_overrides(asr)
    )
    analyzer = Analyzer(settings, default_registry(settings, include_local=False))
    started = time.perf_counter()
    batch = analyzer.analyze_batch(
        [VideoSource.url(url)], AnalysisOptions(), out_dir=work / "out", scratch_dir=work / "scratch"
    )
    video = batch.videos[0]
    return {
        "work_s": time.perf_counter() - started,
        "status": video.status.value,
        "failure": video.failure.detail if video.failure else None,
        "stages": video.stage_seconds,
        "segments": len(video.transcript.segments) if video.transcript else 0,
        "words": len(video.transcript.text.split()) if video.transcript else 0,
        "frames": len(video.screenshots),
    }


def child_asr_alone(wav: Path, asr: str) -> dict[str, Any]:
    from pipeline.asr import get_transcriber
    from pipeline.config import PipelineSettings

    settings = PipelineSettings.load(_env_file=None, **asr_settings_overrides(asr))
    started = time.perf_counter()
    engine = get_transcriber(settings)
    engine.warm()
    loaded = time.perf_counter()
    transcript = engine.transcribe(wav)
    done = time.perf_counter()
    return {
        "work_s": done - started,
        "stages": {"load": loaded - started, "transcribe": done - loaded},
        "segments": len(transcript.segments),
        "words": len(transcript.text.split()),
    }


def child_naive(url: str, work: Path, asr: str) -> dict[str, Any]:
    import cv2
    import requests

    from pipeline.asr import get_transcriber
    from pipeline.config import PipelineSettings

    settings = PipelineSettings.load(_env_file=None, **asr_settings_overrides(asr))
    stages: dict[str, float] = {}
    clock = time.perf_counter()
    started = clock

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        stages[name] = now - clock
        clock = now

    video = work / "video.mp4"
    body = requests.get(url, timeout=60).content
    video.write_bytes(body)
    del body
    lap("download")
    wav = work / "audio.wav"
    run_quietly(["ffmpeg", "-y", "-v", "error", "-i", str(video), "-vn", "-ac", "1", "-ar", "16000", str(wav)])
    lap("audio")
    transcript = get_transcriber(settings).transcribe(wav)
    lap("transcribe")
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS) or FPS
    frame_count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    every = max(1, round(frame_count / NAIVE_FRAMES))
    index = kept = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % every == every // 2:
            cv2.imwrite(str(work / f"frame-{kept:03d}.jpg"), frame)
            kept += 1
        index += 1
    capture.release()
    lap("frames")
    return {
        "work_s": time.perf_counter() - started,
        "stages": stages,
        "segments": len(transcript.segments),
        "words": len(transcript.text.split()),
        "frames": kept,
        "frames_read": index,
        "every_s": every / fps,
    }


def run_child(args: argparse.Namespace) -> int:
    work = Path(args.work)
    if args.child == "pipeline":
        report = child_pipeline(args.url, work, args.asr)
    elif args.child == "asr-alone":
        report = child_asr_alone(Path(args.wav), args.asr)
    else:
        report = child_naive(args.url, work, args.asr)
    print("RESULT " + json.dumps(report), flush=True)
    return 0


# --------------------------------------------------------------------------------------------------
# Measuring a child
# --------------------------------------------------------------------------------------------------


@dataclass
class Measure:
    variant: str
    wall_s: float
    cpu_s: float
    largest_rss: int  # bytes, the largest single process (wait4)
    tree_rss: int  # bytes, the whole tree at its sampled peak
    report: dict[str, Any] = field(default_factory=dict)
    load_before: float = 0.0


def _tree_rss(root_pid: int) -> int:
    """Resident bytes of ``root_pid`` and every process below it."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
            with open(f"/proc/{entry}/statm", "rb") as statm:
                resident = int(statm.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        pid, parent = int(entry), int(fields[1])
        children.setdefault(parent, []).append(pid)
        rss[pid] = resident
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def measure(variant: str, argv: Sequence[str], env: dict[str, str]) -> Measure:
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    process = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(process.pid))
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    # Read the pipes on threads so a chatty child never blocks; wait4 reaps it with its own usage.
    output: dict[str, bytes] = {}
    readers = [
        threading.Thread(target=lambda name=name, stream=stream: output.__setitem__(name, stream.read()))
        for name, stream in (("out", process.stdout), ("err", process.stderr))
    ]
    for reader in readers:
        reader.start()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stop.set()
    sampler.join()
    for reader in readers:
        reader.join()
    stdout = output.get("out", b"").decode(errors="replace")
    result_line = next((line for line in stdout.splitlines() if line.startswith("RESULT ")), None)
    if process.returncode != 0 or result_line is None:
        sys.stderr.write(output.get("err", b"").decode(errors="replace")[-4000:])
        raise SystemExit(f"{variant} failed with exit status {process.returncode}")
    return Measure(
        variant=variant,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        largest_rss=usage.ru_maxrss * 1024,
        tree_rss=peak,
        report=json.loads(result_line.removeprefix("RESULT ")),
        load_before=load_before,
    )


# --------------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------------


def _mb(value: float) -> str:
    return f"{value / 1024**2:,.0f} MB"


def print_table(title: str, measures: dict[str, Measure]) -> None:
    base = measures["asr-alone"]
    print(f"\n{title}")
    header = f"{'variant':<26}{'wall':>9}{'CPU':>9}{'peak RSS tree':>15}{'largest proc':>14}"
    header += f"{'wall/(b)':>10}{'CPU/(b)':>9}{'RSS/(b)':>9}{'load':>7}"
    print(header)
    print("-" * len(header))
    for variant in VARIANTS:
        m = measures[variant]
        print(
            f"{LABELS[variant]:<26}{m.wall_s:>8.1f}s{m.cpu_s:>8.1f}s{_mb(m.tree_rss):>15}{_mb(m.largest_rss):>14}"
            f"{m.wall_s / base.wall_s:>9.2f}x{m.cpu_s / base.cpu_s:>8.2f}x{m.tree_rss / base.tree_rss:>8.2f}x"
            f"{m.load_before:>7.2f}"
        )


def print_details(measures: dict[str, Measure]) -> None:
    for variant in VARIANTS:
        report = measures[variant].report
        stages = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in report.get("stages", {}).items())
        extra = f", {report['frames']} frames" if "frames" in report else ""
        work = report.get("work_s", 0.0)
        print(f"  {LABELS[variant]}: {work:.1f}s of work ({stages}); {report.get('words', 0)} words{extra}")


def median_of(runs: list[dict[str, Measure]]) -> dict[str, Measure]:
    def mid(variant: str, get: Callable[[Measure], float]) -> float:
        return statistics.median(get(run[variant]) for run in runs)

    return {
        variant: Measure(
            variant=variant,
            wall_s=mid(variant, lambda m: m.wall_s),
            cpu_s=mid(variant, lambda m: m.cpu_s),
            largest_rss=int(mid(variant, lambda m: m.largest_rss)),
            tree_rss=int(mid(variant, lambda m: m.tree_rss)),
            load_before=mid(variant, lambda m: m.load_before),
        )
        for variant in VARIANTS
    }


def print_verdict(measures: dict[str, Measure], asr: str) -> None:
    a, b, c = measures["pipeline"], measures["asr-alone"], measures["naive"]
    ratio = a.wall_s / b.wall_s
    print(
        f"\n  end to end / ASR alone: {ratio:.2f}x (target <= {TARGET_WALL_RATIO}x): {_ok(ratio <= TARGET_WALL_RATIO)}"
    )
    rss_note = "" if asr == "whisper" else " (the target is for Whisper tiny)"
    rss_ok = _ok(a.tree_rss < TARGET_RSS_BYTES)
    print(f"  peak RSS of the pipeline: {_mb(a.tree_rss)} (target < 1.5 GB{rss_note}): {rss_ok}")
    speedup = c.wall_s / a.wall_s
    print(f"  pipeline vs naive: {a.wall_s:.1f}s vs {c.wall_s:.1f}s ({speedup:.2f}x faster): {_ok(speedup > 1)}")


def _ok(passed: bool) -> str:
    return "met" if passed else "MISSED"


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the video (default 10)")
    parser.add_argument("--asr", choices=("whisper", "funasr"), default="whisper", help="speech engine")
    parser.add_argument("--runs", type=int, default=1, help="runs of all three variants (median shown)")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--wav", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.runs < 1:
        parser.error("--minutes must be above 0 and --runs at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return run_child(args)

    video = make_video(args.minutes)
    wav = make_wav(video)
    if args.asr == "funasr":
        asr_settings_overrides("funasr")  # build the tiny models (if used) before any clock starts
    size = video.stat().st_size
    print(
        f"video: {video.relative_to(ROOT)}, {media_duration(video):.0f} s, {WIDTH}x{HEIGHT} {FPS} fps, "
        f"GOP {GOP}, {size / 1024**2:.1f} MB; ASR: {args.asr}; cores: {os.cpu_count()}"
    )
    server, base_url = serve(video.parent)
    url = f"{base_url}/{video.name}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASR_", "WHISPER_"))}
    runs: list[dict[str, Measure]] = []
    try:
        for run in range(args.runs):
            measures: dict[str, Measure] = {}
            for variant in VARIANTS:
                with tempfile.TemporaryDirectory(prefix=f"bench-{variant}-") as work:
                    argv = [sys.executable, str(Path(__file__).resolve()), "--child", variant, "--asr", args.asr]
                    argv += ["--url", url, "--wav", str(wav), "--work", work]
                    measures[variant] = measure(variant, argv, env)
                    shutil.rmtree(work, ignore_errors=True)
            runs.append(measures)
            print_table(f"run {run + 1} of {args.runs} (load average before each variant in the last column)", measures)
            print_details(measures)
    finally:
        server.shutdown()
    final = median_of(runs) if len(runs) > 1 else runs[0]
    if len(runs) > 1:
        print_table(f"median of {len(runs)} runs", final)
    print_verdict(final, args.asr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
