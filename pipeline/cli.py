"""``video-insight``: analyse videos on your own machine, with the same pipeline as the bot.

    video-insight analyze SOURCE [SOURCE ...] --out DIR [--asr funasr|whisper]
                          [--screenshots scenes|interval:N|times:T1,T2] [--language LANG]

SOURCE is an http(s) link (a media file or a video page) or a local file. Exit status: 0 when the
batch ran (a video that failed is reported in the results, not by the exit status), 2 for unusable
arguments or configuration (a speech model that cannot be loaded included: it is loaded before the
first video, so a missing model is reported once instead of failing every video).

On a terminal each video gets a progress bar; otherwise (a log, CI, a pipe) every stage change is one
line on stderr. The summary table goes to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import sys
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipeline.config import ConfigError, PipelineSettings
from pipeline.errors import InvalidOptionsError, ModelUnavailableError
from pipeline.logs import configure_logging
from pipeline.models import (
    WORK_STAGES,
    AnalysisOptions,
    BatchResult,
    CancelToken,
    ProgressEvent,
    ScreenshotPlan,
    SourceKind,
    Stage,
    VideoSource,
    VideoStatus,
    stage_label,
)
from pipeline.workspace import Workspace

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # Ctrl-C: what a shell reports for SIGINT


class UsageError(Exception):
    """An argument we cannot use; the message says which and why."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="video-insight", description="Analyse videos: transcript, screenshots, subtitles."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    analyze = commands.add_parser("analyze", help="analyse one or more videos")
    analyze.add_argument("sources", nargs="+", metavar="SOURCE", help="http(s) link or local file")
    analyze.add_argument("--out", required=True, type=Path, help="directory for the results")
    analyze.add_argument("--asr", choices=("funasr", "whisper"), help="speech engine (default: ASR_BACKEND)")
    analyze.add_argument(
        "--screenshots",
        default=None,
        metavar="PLAN",
        help="scenes (default), interval:N (every N seconds) or times:T1,T2,... (seconds)",
    )
    analyze.add_argument("--max-screenshots", type=int, default=None, metavar="N", help="cap per video")
    analyze.add_argument("--language", default=None, help="language hint for the speech engine, e.g. zh or en")
    analyze.add_argument("--name", default=None, help="a name for this batch (shown in results)")
    analyze.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    return parser


def parse_sources(values: Sequence[str]) -> list[VideoSource]:
    sources = []
    for value in values:
        if value.startswith(("http://", "https://")):
            sources.append(VideoSource.url(value))
        elif "://" in value:
            raise UsageError(f"{value}: only http(s) links and local files are supported")
        else:
            path = Path(value).expanduser()
            if not path.is_file():
                raise UsageError(f"{value}: no such file")
            sources.append(VideoSource.local(path.resolve()))
    return sources


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=True)
    try:
        overrides = {"asr_backend": args.asr} if args.asr else {}
        settings = PipelineSettings.load(**overrides)
        configure_logging("WARNING" if not args.quiet else "ERROR", settings.log_format)
        sources = parse_sources(args.sources)
        max_shots = settings.max_screenshots if args.max_screenshots is None else args.max_screenshots
        if max_shots < 1:
            raise UsageError("--max-screenshots must be at least 1")
        plan = ScreenshotPlan.parse(args.screenshots or settings.screenshot_mode, max_shots=max_shots)
    except (ConfigError, UsageError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return EXIT_USAGE
    except InvalidOptionsError as exc:
        console.print(f"[red]error:[/red] {exc.user_message.en}")
        return EXIT_USAGE

    try:
        load_speech_model(settings, console, quiet=args.quiet)
    except ModelUnavailableError as exc:
        console.print(f"[red]error:[/red] {exc.user_message.en}\n  {exc.detail}", highlight=False)
        if settings.asr_backend != "whisper":
            console.print("  To try without one, use --asr whisper (the bundled English tiny.en model).")
        return EXIT_USAGE

    options = AnalysisOptions(screenshots=plan, language=args.language, task_name=args.name)
    cancel = CancelToken()
    batch = run_batch(
        settings, sources, options, args.out.expanduser().resolve(), console, quiet=args.quiet, cancel=cancel
    )
    print_summary(batch, Console())
    return EXIT_INTERRUPTED if cancel.cancelled else EXIT_OK


def load_speech_model(settings: PipelineSettings, console: Console, *, quiet: bool = False) -> None:
    """Load the configured engine's model now; ``ModelUnavailableError`` when it cannot be."""
    from pipeline.asr import get_transcriber

    if not quiet:
        console.print(f"Loading the speech model ({settings.asr_backend})…", highlight=False)
    get_transcriber(settings).warm()


def run_batch(
    settings: PipelineSettings,
    sources: Sequence[VideoSource],
    options: AnalysisOptions,
    out_dir: Path,
    console: Console,
    *,
    quiet: bool = False,
    cancel: CancelToken | None = None,
) -> BatchResult:
    """Analyse the batch with a progress display. Ctrl-C cancels it: the videos not finished yet end as
    cancelled, and the results of the others are still written and returned."""
    # Imported here so `video-insight --help` stays instant.
    from pipeline.analyze import Analyzer
    from pipeline.sources import default_registry

    cancel = cancel or CancelToken()
    analyzer = Analyzer(settings, default_registry(settings, include_local=True))
    workspace = Workspace(settings.work_dir / f"cli-{secrets.token_hex(6)}").create()
    show = not quiet and console.is_terminal
    display = _ProgressDisplay(console, sources) if show else None
    reporter = None if quiet or show else _LineReporter(console, sources)
    on_progress = display.update if display else reporter.update if reporter else None
    try:
        with contextlib.ExitStack() as stack:
            if display is not None:
                stack.enter_context(display)
            # The batch runs on a thread so that this one stays free to take Ctrl-C and cancel it.
            batch_runner = stack.enter_context(ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch"))
            running = batch_runner.submit(
                analyzer.analyze_batch,
                sources,
                options,
                out_dir=out_dir,
                scratch_dir=workspace.root,
                on_progress=on_progress,
                cancel=cancel,
            )
            try:
                return _result_interruptibly(running)
            except KeyboardInterrupt:
                cancel.cancel()
                console.print("Cancelling: finishing the files of the videos already done…")
                return running.result()
    finally:
        workspace.remove()


def _result_interruptibly(running: Future[BatchResult]) -> BatchResult:
    """``running.result()``, in short waits: a wait with no timeout can miss Ctrl-C until the batch ends,
    because when the kernel hands SIGINT to one of the worker threads, nothing wakes this thread from
    its lock wait to raise KeyboardInterrupt. A timed wait returns every so often, and the interrupt is
    raised then."""
    while True:
        try:
            return running.result(timeout=0.2)
        except TimeoutError:
            continue


class _ProgressDisplay:
    """One bar per video on a terminal."""

    def __init__(self, console: Console, sources: Sequence[VideoSource]) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[stage]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self._tasks: list[TaskID] = [
            self._progress.add_task(_short(label(s)), total=1.0, stage="queued") for s in sources
        ]

    def __enter__(self) -> _ProgressDisplay:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, event: ProgressEvent) -> None:
        if event.video_index is None:
            return
        task = self._tasks[event.video_index]
        label = stage_label(event.stage).en
        if event.stage in (Stage.DONE, Stage.FAILED, Stage.CANCELLED):
            self._progress.update(task, completed=1.0, stage=label)
            return
        order = WORK_STAGES.index(event.stage) if event.stage in WORK_STAGES else 0
        within = event.fraction or 0.0
        self._progress.update(task, completed=min(0.99, (order + within) / len(WORK_STAGES)), stage=label)


class _LineReporter:
    """Stage changes as plain lines when the output is not a terminal (logs, CI, `make demo | tee`)."""

    def __init__(self, console: Console, sources: Sequence[VideoSource]) -> None:
        self._console = console
        self._names = [_short(label(s)) for s in sources]
        self._last: dict[int, Stage] = {}

    def update(self, event: ProgressEvent) -> None:
        index = event.video_index
        if index is None or self._last.get(index) is event.stage:
            return
        self._last[index] = event.stage
        label = stage_label(event.stage).en
        self._console.print(f"[{index + 1}/{event.video_count}] {self._names[index]}: {label}", highlight=False)


def print_summary(batch: BatchResult, console: Console) -> None:
    """The table of videos, then why each failed one failed and what else is worth knowing (as lines,
    readable at any width), then where the results are."""
    table = Table(title=f"{batch.ok_count} ok, {batch.failed_count} failed, {len(batch.videos)} in all")
    for column in ("#", "video", "status", "length", "language", "sentences", "shots", "time"):
        table.add_column(column, overflow="fold", no_wrap=column != "video")
    for video in batch.videos:
        media = video.media
        transcript = video.transcript
        table.add_row(
            str(video.index + 1),
            _short(label(video.source), 40),
            _STATUS_MARKUP.get(video.status, video.status.value),
            f"{media.duration_s:.1f}s" if media else "-",
            transcript.language if transcript else "-",
            str(len(transcript.segments)) if transcript else "-",
            str(len(video.screenshots)),
            f"{video.processing_s:.1f}s",
        )
    console.print(table)
    for video in batch.videos:
        lines = [f"failed at {video.failure.stage}: {video.failure.message.en}"] if video.failure else []
        lines += [note.en for note in video.notes]
        for line in lines:
            console.print(f"  #{video.index + 1} {_short(label(video.source), 40)}: {line}", highlight=False)

    console.print(f"Results: {batch.out_dir}")
    if batch.results_xlsx:
        console.print(f"  spreadsheet: {batch.results_xlsx}")
    if batch.results_json:
        console.print(f"  JSON:        {batch.results_json}")
    failed, total = batch.failed_count, len(batch.videos)
    if failed and failed == total:
        console.print(
            f"All {failed} videos failed: the reasons are above and in results.json."
            if failed > 1
            else "The video failed: the reason is above and in results.json."
        )
    elif failed:
        console.print(f"{failed} of {total} videos failed: the reasons are above and in results.json.")
    cancelled = sum(1 for v in batch.videos if v.status is VideoStatus.CANCELLED)
    if cancelled:
        console.print(f"{cancelled} of {total} videos were cancelled.")


_STATUS_MARKUP = {
    VideoStatus.OK: "[green]ok[/green]",
    VideoStatus.FAILED: "[red]failed[/red]",
    VideoStatus.CANCELLED: "[yellow]cancelled[/yellow]",
}


def label(source: VideoSource) -> str:
    """What a video is called on screen: its name, else a link's file name (a whole URL would not fit),
    else the link's host."""
    if source.name or source.kind != SourceKind.URL.value:
        return source.display_name
    parts = urlsplit(source.locator)
    return unquote(PurePosixPath(parts.path).name) or parts.hostname or source.locator


def _short(text: str, limit: int = 32) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


if __name__ == "__main__":
    sys.exit(main())
