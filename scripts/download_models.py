"""Download the FunASR models the bot uses in production into one directory (run at image build time).

    python scripts/download_models.py /opt/models            # download what is missing, write models.env
    python scripts/download_models.py /opt/models --dry-run  # print the plan; no network, writes nothing

Each model is a ModelScope snapshot stored where ModelScope itself looks for it when ``MODELSCOPE_CACHE``
points at the target (``<target>/models/<owner>/<name>``), so both a local directory and a hub name resolve
offline. The script prints every model directory and writes ``<target>/models.env`` with the
``FUNASR_*_MODEL_DIR`` variables the pipeline reads.

Idempotent: a model whose directory is complete (its marker names the same model id and revision and the
weights are there) is not fetched again. A download goes to a ``.partial`` directory first and replaces the
final one only when it is complete, so an interrupted build never leaves a half model behind.

Exit status: 0 done, 1 a download or check failed (the message says what to do), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO


@dataclass(frozen=True)
class ModelSpec:
    """One model: FunASR's short name, the ModelScope repository it maps to, and our variable for it."""

    name: str
    model_id: str
    revision: str
    env_var: str


# The ids are FunASR's own mapping of its short names (funasr/download/name_maps_from_hub.py, name_maps_ms),
# so these directories hold exactly what AutoModel(model="paraformer-zh", vad_model="fsmn-vad",
# punc_model="ct-punc") would download. FunASR pins no revision: it asks for "master" (auto_model.py,
# download_model_from_hub.py), and so do we.
MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="paraformer-zh",
        model_id="iic/speech_seaco_paraformer_large_asr_nat-zh-cn-16k-common-vocab8404-pytorch",
        revision="master",
        env_var="FUNASR_MODEL_DIR",
    ),
    ModelSpec(
        name="fsmn-vad",
        model_id="iic/speech_fsmn_vad_zh-cn-16k-common-pytorch",
        revision="master",
        env_var="FUNASR_VAD_MODEL_DIR",
    ),
    ModelSpec(
        name="ct-punc",
        model_id="iic/punc_ct-transformer_cn-en-common-vocab471067-large",
        revision="master",
        env_var="FUNASR_PUNC_MODEL_DIR",
    ),
)

MARKER_NAME = ".video-insight-model.json"
ENV_FILE_NAME = "models.env"
# The PyTorch runtime loads model.pt; ONNX exports are for funasr-onnx and only make the image bigger.
IGNORED_FILES = ("*.onnx",)

# Errors of the local disk, not of the network: reported as such, not as "could not download".
LOCAL_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EDQUOT})

# fetch(model_id, revision, local_dir, cache_dir): puts the snapshot's files into local_dir or raises.
Fetcher = Callable[[str, str, Path, Path], None]


class ModelDownloadError(Exception):
    """A model could not be fetched or is incomplete; the message says what to do next."""


def model_dir(target: Path, spec: ModelSpec) -> Path:
    """Where ModelScope's cache layout keeps the snapshot (dots in the name are stored as ``___``)."""
    owner, name = spec.model_id.split("/", 1)
    return target / "models" / owner / name.replace(".", "___")


def env_lines(target: Path, models: Sequence[ModelSpec] = MODELS) -> list[str]:
    """``NAME=value`` lines for the pipeline's settings and for ModelScope's own lookups."""
    lines = [f"MODELSCOPE_CACHE={target}"]
    lines += [f"{spec.env_var}={model_dir(target, spec)}" for spec in models]
    return lines


def missing_files(directory: Path) -> list[str]:
    """What FunASR needs to load a model from a directory and is not there (empty when loadable)."""
    if not directory.is_dir():
        return ["the directory itself"]
    missing = []
    if not (directory / "model.pt").is_file():
        missing.append("model.pt")
    if not ((directory / "config.yaml").is_file() or (directory / "configuration.json").is_file()):
        missing.append("config.yaml or configuration.json")
    return missing


def is_complete(directory: Path, spec: ModelSpec) -> bool:
    """True when the directory holds this exact model (id and revision) with its weights."""
    try:
        marker = json.loads((directory / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict):
        return False
    same_model = marker.get("model_id") == spec.model_id and marker.get("revision") == spec.revision
    return same_model and not missing_files(directory)


def modelscope_fetcher(endpoint: str | None = None) -> Fetcher:
    """The real fetcher: ``modelscope.snapshot_download`` (imported only when a download is needed)."""

    def fetch(model_id: str, revision: str, local_dir: Path, cache_dir: Path) -> None:
        try:
            from modelscope import snapshot_download
        except ImportError as exc:
            raise ModelDownloadError(
                "the modelscope package is not installed; run `pip install -c constraints.txt modelscope`"
            ) from exc
        snapshot_download(
            model_id,
            revision=revision,
            cache_dir=str(cache_dir),
            local_dir=str(local_dir),
            ignore_patterns=list(IGNORED_FILES),
            endpoint=endpoint,
        )

    return fetch


def ensure_model(target: Path, spec: ModelSpec, fetch: Fetcher, *, force: bool = False) -> tuple[Path, bool]:
    """Make ``model_dir(target, spec)`` complete; return it and whether anything was downloaded."""
    final = model_dir(target, spec)
    if not force and is_complete(final, spec):
        return final, False

    partial = final.with_name(final.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)  # left by a killed run: never resume into an unknown state
    partial.mkdir(parents=True)
    try:
        _fetch_checked(spec, fetch, partial, target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    marker = {"name": spec.name, "model_id": spec.model_id, "revision": spec.revision}
    (partial / MARKER_NAME).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    if final.exists():
        shutil.rmtree(final)
    partial.rename(final)
    return final, True


def _fetch_checked(spec: ModelSpec, fetch: Fetcher, into: Path, target: Path) -> None:
    try:
        # ModelScope's own bookkeeping goes to a scratch cache removed right after, so the target holds
        # nothing but the models.
        with tempfile.TemporaryDirectory(prefix=".modelscope-cache-", dir=target) as cache_dir:
            fetch(spec.model_id, spec.revision, into, Path(cache_dir))
    except ModelDownloadError:
        raise
    except Exception as exc:
        if isinstance(exc, OSError) and exc.errno in LOCAL_DISK_ERRNOS:
            raise
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        raise ModelDownloadError(
            f"could not download {spec.name} ({spec.model_id}@{spec.revision}) from ModelScope: "
            f"{type(exc).__name__}: {first_line}\n"
            "  Check that this machine reaches modelscope.cn (or pass --endpoint for a mirror), then run again;\n"
            "  or build without models (--build-arg WITH_MODELS=0) and mount them at run time."
        ) from exc

    missing = missing_files(into)
    if missing:
        raise ModelDownloadError(
            f"the download of {spec.name} ({spec.model_id}@{spec.revision}) is incomplete: "
            f"{', '.join(missing)} not found. Run again; if it persists, the repository's layout changed: "
            f"compare https://modelscope.cn/models/{spec.model_id}/files with what FunASR expects."
        )


def write_env_file(path: Path, lines: Sequence[str]) -> None:
    """Write atomically, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as tmp:
        tmp.write("".join(f"{line}\n" for line in lines))
    Path(tmp_name).chmod(0o644)  # mkstemp makes it private; paths are no secret, and other users read them
    Path(tmp_name).replace(path)


def run(
    target: Path,
    *,
    fetch: Fetcher,
    env_file: Path | None = None,
    dry_run: bool = False,
    force: bool = False,
    models: Sequence[ModelSpec] = MODELS,
    out: TextIO | None = None,
) -> int:
    """Download (or plan) every model, then print and write the environment lines; return an exit status."""
    out = out if out is not None else sys.stdout
    target = target.expanduser().absolute()
    env_path = env_file if env_file is not None else target / ENV_FILE_NAME
    if target.exists() and not target.is_dir():
        print(f"error: target {target} exists and is not a directory", file=sys.stderr)
        return 2

    if dry_run:
        print(f"plan (dry run, nothing is downloaded or written) for {target}:", file=out)
        for spec in models:
            directory = model_dir(target, spec)
            action = "keep (complete)" if not force and is_complete(directory, spec) else "download"
            print(f"  {action:<15} {spec.name:<14} {spec.model_id}@{spec.revision} -> {directory}", file=out)
        print(f"environment file that would be written: {env_path}", file=out)
    else:
        try:
            target.mkdir(parents=True, exist_ok=True)
            for spec in models:
                directory, downloaded = ensure_model(target, spec, fetch, force=force)
                state = "downloaded" if downloaded else "already complete"
                print(f"{spec.name:<14} {state:<16} {directory}", file=out, flush=True)
            write_env_file(env_path, env_lines(target, models))
        except ModelDownloadError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:
            where = exc.filename or target
            print(f"error: cannot write under {target}: {exc.strerror or exc} ({where})", file=sys.stderr)
            return 1
        print(f"environment written to {env_path}:", file=out)

    for line in env_lines(target, models):
        print(line, file=out)
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="download_models.py",
        description="Download the FunASR models (paraformer-zh, fsmn-vad, ct-punc) from ModelScope into TARGET.",
    )
    parser.add_argument("target", type=Path, help="directory to hold the models (e.g. /opt/models)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the variables; no network")
    parser.add_argument("--force", action="store_true", help="download again even when a model is complete")
    parser.add_argument(
        "--env-file",
        type=Path,
        default=None,
        help=f"where to write the FUNASR_*_MODEL_DIR lines (default: TARGET/{ENV_FILE_NAME})",
    )
    parser.add_argument(
        "--endpoint",
        default=None,
        help="ModelScope hub URL, for a mirror or the international site (default: ModelScope's own choice)",
    )
    args = parser.parse_args(argv)
    if args.endpoint is not None and not args.endpoint.startswith(("https://", "http://")):
        parser.error("--endpoint must be an http(s) URL")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run(
        args.target,
        fetch=modelscope_fetcher(args.endpoint),
        env_file=args.env_file,
        dry_run=args.dry_run,
        force=args.force,
    )


if __name__ == "__main__":
    sys.exit(main())
