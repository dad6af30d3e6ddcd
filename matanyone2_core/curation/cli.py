"""`python -m matanyone2_core curate`: a folder of clips through the dual-branch annotation pipeline, resumable,
locally or on Ray. The driver (`curate`) checks everything, decides what is left to do, runs an executor and
appends each clip's record to the manifest as it arrives."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import sha256_of
from ..engine.options import MattingOptions
from ..engine.validate import resolve_device
from ..segmentation.sam2_backend import check_image_size
from .clip import DTYPES, ClipRunner, CurationConfig, temp_dir
from .executors import run_local, run_ray
from .layout import discover_clips
from .manifest import (
    MANIFEST_NAME,
    append_record,
    check_run,
    output_complete,
    read_manifest,
    repair_manifest,
    summary_table,
)

EXECUTORS = ("local", "ray")
FUSIONS = ("binary", "soft")


@dataclass
class CurationResult:
    """What a run did: the latest record of every clip (input order), the clips found done before, the time."""

    records: list[dict[str, Any]]
    resumed: set[str]
    seconds: float

    def table(self) -> str:
        return summary_table(self.records, resumed=self.resumed, seconds=self.seconds)


def _check_config(config: CurationConfig, input_dir: Path) -> None:
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    if out.resolve() == input_dir.resolve() or out.resolve().parent == input_dir.resolve():
        raise ValueError(f"--out {out} must not be --input {input_dir} or one of its clip folders")
    if not 0.0 <= config.min_quality <= 1.0:
        raise ValueError(f"--min-quality must be in 0..1, got {config.min_quality}")
    if config.threads is not None and config.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {config.threads}")
    check_image_size(config.sam2_image_size)
    MattingOptions(warmup=config.warmup, erode=config.erode, dilate=config.dilate,
                   max_internal_size=config.max_internal_size)  # fmt: skip
    if config.fusion not in FUSIONS:
        raise ValueError(f"--fusion must be one of {FUSIONS}, got {config.fusion!r}")
    if config.precision not in DTYPES:
        raise ValueError(f"--precision must be one of {sorted(DTYPES)}, got {config.precision!r}")
    for key, flag in (("image_alphas", "--image-alphas"), ("video_alphas", "--video-alphas"),
                      ("segmentation", "--segmentation")):  # fmt: skip
        folder = getattr(config, key)
        if folder is not None and not Path(folder).is_dir():
            raise FileNotFoundError(f"{flag} {folder}: no such folder")
    for path, flag in ((config.weights, "--weights"), (config.sam2, "--sam2"),
                       (None if config.evaluator == "analytic" else config.evaluator, "--evaluator")):  # fmt: skip
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{flag} {path}: no such file")
    if config.weights is None and not (config.image_alphas and config.video_alphas):
        raise ValueError("--weights is required unless both branches are supplied (--video-alphas and --image-alphas)")


def with_checksums(config: CurationConfig) -> CurationConfig:
    """`config` with the sha256 of its weights, evaluator and SAM 2 files (read once, by the driver)."""
    digest = {}
    for key in ("weights", "evaluator", "sam2"):
        path = getattr(config, key)
        if path is not None and path != "analytic":
            digest[f"{key}_sha256"] = sha256_of(path)
    return replace(config, **digest)


def curate(
    input_dir: str | Path,
    config: CurationConfig,
    *,
    executor: str = "local",
    ray_options: dict[str, Any] | None = None,
    show_progress: bool = True,
) -> CurationResult:
    """Curate every clip of `input_dir` into `config.out` (see docs/curation.md), resuming an earlier run.

    A clip whose latest manifest record is "done" and whose output folder is complete is kept; every other
    clip (new, failed, skipped, or half written) is curated from scratch. Everything is checked (layout,
    settings against `run.json`, the weights, evaluator and SAM 2 files by loading them) before anything is
    written. Returns every clip's latest record.
    """
    threads = torch.get_num_threads()
    try:
        return _curate(Path(input_dir), config, executor, ray_options, show_progress)
    finally:
        torch.set_num_threads(threads)  # --threads is for the run, not for the caller afterwards


def _curate(
    input_dir: Path, config: CurationConfig, executor: str, ray_options: dict[str, Any] | None, show_progress: bool
) -> CurationResult:
    if executor not in EXECUTORS:
        raise ValueError(f"--executor must be one of {EXECUTORS}, got {executor!r}")
    _check_config(config, input_dir)
    clips = discover_clips(input_dir)
    config = with_checksums(config)
    out = Path(config.out)
    manifest_path = out / MANIFEST_NAME
    check_run(out, config.settings(), write=False)
    before = read_manifest(manifest_path)
    resumed = {c.clip_id for c in clips if before.get(c.clip_id, {}).get("status") == "done"
               and output_complete(out / c.clip_id, before[c.clip_id])}  # fmt: skip
    todo = [c for c in clips if c.clip_id not in resumed]

    # The models are loaded (and so checked) before the first file is written: by the runner that curates the
    # clips here, or, for Ray, by a CPU runner that only checks them.
    runner = None
    if todo:
        runner = ClipRunner(config if executor == "local" else replace(config, device="cpu"))
        if config.weights is not None and not (config.image_alphas and config.video_alphas):
            runner.model  # noqa: B018 (loads and verifies)
        runner.evaluator  # noqa: B018
        if config.sam2 is not None:
            runner.sam2  # noqa: B018

    out.mkdir(parents=True, exist_ok=True)
    check_run(out, config.settings())
    repair_manifest(manifest_path)
    for clip in todo:  # half-written outputs of an interrupted run are redone from scratch
        for stale in (temp_dir(out, clip.clip_id), out / clip.clip_id):
            if stale.exists():
                shutil.rmtree(stale)

    latest = {c.clip_id: before[c.clip_id] for c in clips if c.clip_id in resumed}
    finished = 0

    def on_result(record: dict[str, Any]) -> None:
        nonlocal finished
        append_record(manifest_path, record)
        latest[record["clip"]] = record
        finished += 1
        if show_progress:
            extra = (f"quality {record['quality']:.3f}, {'accepted' if record['accepted'] else 'rejected'}"
                     if record["status"] == "done" else record["reason"])  # fmt: skip
            print(f"[{finished}/{len(todo)}] {record['clip']}: {record['status']} ({extra})", file=sys.stderr)

    if show_progress and resumed:
        print(f"{len(resumed)} clip(s) done in an earlier run are kept: {', '.join(sorted(resumed)[:5])}"
              + (", ..." if len(resumed) > 5 else ""), file=sys.stderr)  # fmt: skip
    started = time.perf_counter()
    if executor == "local":
        if todo:
            run_local(todo, config, on_result, show_progress=show_progress, runner=runner)
    else:
        del runner
        if todo:
            run_ray(todo, config, on_result, **(ray_options or {}))
    seconds = time.perf_counter() - started
    return CurationResult([latest[c.clip_id] for c in clips], resumed, seconds)


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add the `curate` sub-command."""
    p = subparsers.add_parser(
        "curate",
        help="annotate a folder of clips with the dual-branch pipeline (video + image branch, fused)",
        description=(__doc__ or "").strip().splitlines()[0],
        epilog="Layout, outputs and scores: docs/curation.md",
    )
    p.add_argument(
        "--input",
        required=True,
        type=Path,
        help="folder of clips: <clip_id>/frames/ (or a video) + mask.png (or prompts.json with --sam2)",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder: <clip_id>/com/, pha/ ... + manifest.jsonl")
    p.add_argument("--weights", help="matanyone2.pth / .safetensors")
    p.add_argument("--evaluator", default="analytic", help="'analytic' (default) or a learned evaluator .safetensors")
    p.add_argument(
        "--sam2",
        help="SAM 2 checkpoint: per-frame segmentation by tracking the first mask, and first "
        "masks from prompts.json (default: the video branch's alpha above 0.5)",
    )
    p.add_argument("--sam2-image-size", type=int, help="SAM 2 input size (default the model's 1024)")
    p.add_argument(
        "--min-quality", type=float, default=0.8, help="accept a clip whose quality is at least this (docs/curation.md)"
    )
    p.add_argument("--save-branches", action="store_true", help="also write alpha_video/ and alpha_image/")
    p.add_argument("--save-errors", action="store_true", help="also write the error maps err_video/, err_image/")
    p.add_argument("--image-alphas", help="DIR/<clip_id>/: image-branch alphas made elsewhere (one per frame)")
    p.add_argument("--video-alphas", help="DIR/<clip_id>/: video-branch alphas made elsewhere (one per frame)")
    p.add_argument("--segmentation", help="DIR/<clip_id>/: per-frame segmentation masks made elsewhere")
    p.add_argument("--fusion", choices=FUSIONS, default="binary",
                   help="binary: the image branch wherever it is judged reliable and the video branch is not (the "
                        "paper's rule, default); soft: weighted by (1 - err_image) * err_video")  # fmt: skip
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--erode", type=int, default=10)
    p.add_argument("--dilate", type=int, default=10)
    p.add_argument("--max-internal-size", type=int, default=-1)
    p.add_argument("--device", default="auto", help="auto (CUDA when there is a GPU), cpu, cuda, cuda:N")
    p.add_argument("--precision", choices=sorted(DTYPES), default="fp32")
    p.add_argument("--threads", type=int, help="torch CPU threads per process (each Ray worker too)")
    p.add_argument("--executor", choices=EXECUTORS, default="local")
    g = p.add_argument_group("Ray (--executor ray)")
    g.add_argument("--ray-address", help="cluster to join ('auto': the running one; default: start a local one)")
    g.add_argument("--workers", type=int, help="actors (default: as many as the cluster's GPUs, else CPUs, allow)")
    g.add_argument("--gpus-per-worker", type=float, default=1.0, help="GPUs per actor when the cluster has GPUs")
    g.add_argument("--cpus-per-worker", type=float, default=1.0)
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.gpus_per_worker < 0 or args.cpus_per_worker <= 0:
        raise ValueError("--gpus-per-worker must be >= 0 and --cpus-per-worker > 0")
    if args.device != "auto":
        resolve_device(args.device, name="--device")  # at once, before the weights are read
    config = CurationConfig(
        out=str(args.out), weights=args.weights, evaluator=args.evaluator, sam2=args.sam2,
        sam2_image_size=args.sam2_image_size, image_alphas=args.image_alphas, video_alphas=args.video_alphas,
        segmentation=args.segmentation, device=args.device, precision=args.precision, warmup=args.warmup,
        erode=args.erode, dilate=args.dilate, max_internal_size=args.max_internal_size,
        fusion=args.fusion, min_quality=args.min_quality, save_branches=args.save_branches,
        save_errors=args.save_errors, threads=args.threads,
    )  # fmt: skip
    ray_options = {"address": args.ray_address, "workers": args.workers, "gpus_per_worker": args.gpus_per_worker,
                   "cpus_per_worker": args.cpus_per_worker}  # fmt: skip
    result = curate(args.input, config, executor=args.executor, ray_options=ray_options)
    print(result.table(), end="")
    print(f"manifest: {Path(args.out) / MANIFEST_NAME}")
    return 0
