"""Benchmark runner: the public video-matting benchmarks (and a synthetic one) scored the official way.

``python -m matanyone2_core benchmark --dataset {videomatte,youtubematte,crgnn,synthetic} --root DIR
--weights FILE`` reads the benchmark's folder layout (see ``docs/benchmark.md``), mattes every clip from
its first-frame segmentation mask with the official protocol's settings at native resolution, rounds
each alpha to 8 bits as the official pipeline's PNGs do, scores it with :mod:`matanyone2_core.metrics`
and writes ``results.md``/``.csv``/``.json`` plus a per-frame plot per clip. Per-clip results are saved
as they finish, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol as TypingProtocol

import numpy as np
import torch
from PIL import Image

from . import metrics as M
from ._plot import plot_series
from .engine.validate import resolve_device
from .io import read_rgb, to_uint8

DATASETS = ("videomatte", "youtubematte", "crgnn", "synthetic")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
# Official batch-script settings per protocol: (warmup, erode, dilate).
PROTOCOL_SETTINGS = {"lr": (1, 4, 4), "hr": (10, 15, 15), "crgnn": (10, 10, 10)}
RESOLUTION_FOLDERS = {"lr": "512x288", "hr": "1920x1080"}
METRIC_CHUNK = 32  # frames scored at once (bounds memory at 1920x1080)


class LayoutError(ValueError):
    """A benchmark folder that is missing or not laid out as expected (message: the path and why)."""


class Session(TypingProtocol):
    def step(self, frame: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor: ...

    def close(self) -> None: ...


SessionFactory = Callable[[int, int, int], Session]  # (warmup, erode, dilate) -> a fresh session


@dataclass(frozen=True)
class ClipSpec:
    """One clip of a benchmark: input frames, ground-truth alphas and the first-frame mask."""

    name: str  # unique, e.g. "videomatte_motion/0000"
    frames: tuple[Path, ...]
    gt: tuple[Path, ...]
    mask: Path


@dataclass
class BenchmarkConfig:
    dataset: str
    root: Path
    out: Path
    weights: Path | None = None
    resolution: str = "lr"
    masks: Path | None = None  # first-frame mask folder, when not where the official layout puts it
    max_clips: int | None = None
    device: str = "cpu"
    precision: str = "fp32"
    warmup: int | None = None  # None: the protocol's official value
    erode: int | None = None
    dilate: int | None = None
    save_alpha: bool = False
    overwrite: bool = False
    synthetic_clips: int = 4
    synthetic_height: int = 288
    synthetic_width: int = 512
    synthetic_frames: int = 30
    seed: int = 0


# --------------------------------------------------------------------------------------------- layouts


def _images(folder: Path, what: str) -> tuple[Path, ...]:
    if not folder.is_dir():
        raise LayoutError(f"{folder}: missing folder; expected {what}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise LayoutError(f"{folder}: no .png/.jpg images; expected {what}")
    return tuple(files)


def _subdirs(folder: Path, what: str) -> list[Path]:
    if not folder.is_dir():
        raise LayoutError(f"{folder}: missing folder; expected {what}")
    dirs = sorted(p for p in folder.iterdir() if p.is_dir())
    if not dirs:
        raise LayoutError(f"{folder}: no sub-folders; expected {what}")
    return dirs


def _mask(path: Path) -> Path:
    if not path.is_file():
        raise LayoutError(f"{path}: missing first-frame segmentation mask (a greyscale PNG, non-zero = subject)")
    return path


def _same_count(clip: ClipSpec) -> ClipSpec:
    if len(clip.frames) != len(clip.gt):
        raise LayoutError(
            f"{clip.frames[0].parent.parent}: {len(clip.frames)} input frames but {len(clip.gt)} "
            "ground-truth alphas; expected one alpha per frame"
        )
    return clip


def _synthetic_clips(root: Path) -> list[ClipSpec]:
    from .synthetic import MASK_FILENAME

    clips = []
    for d in _subdirs(root, "synthetic clip folders clip_XXXX/ with com/, pha/ and the first-frame mask"):
        if not d.name.startswith("clip_"):
            continue
        clips.append(
            _same_count(
                ClipSpec(
                    d.name,
                    _images(d / "com", "composited frames com/0000.png ..."),
                    _images(d / "pha", "ground-truth alphas pha/0000.png ..."),
                    _mask(d / MASK_FILENAME),
                )
            )
        )
    if not clips:
        raise LayoutError(f"{root}: no clip_XXXX folders; expected synthetic clips")
    return clips


def discover_clips(config: BenchmarkConfig) -> tuple[str, list[ClipSpec]]:
    """The evaluation protocol and the clips of ``config.dataset`` under ``config.root``.

    Layouts (``R`` = ``512x288`` for ``--resolution lr``, ``1920x1080`` for ``hr``):

    * videomatte: ``root/VideoMatte/videomatte_R/<subset>/<clip>/com/`` (input) and ``.../pha/`` (GT);
      masks ``root/VideoMatte_first_frame_seg_mask/videomatte_R/<subset>/<clip>.png``.
    * youtubematte: ``root/YouTubeMatte/youtubematte_R/<subset>/<clip>/har/`` and ``.../pha/``; masks
      ``root/YouTubeMatte_first_frame_seg_mask/youtubematte_R/<clip>.png``.
    * crgnn: ``root/crgnn/image_allframe/<video>/`` (every frame), ``root/crgnn/alpha/<video>/`` (GT of
      every 10th frame), masks ``root/crgnn/mask/<video>.png``.
    * synthetic: ``root/clip_XXXX/{com,pha}/`` and ``root/clip_XXXX/first_frame_seg_mask.png``.
    """
    root = Path(config.root)
    if not root.is_dir():
        raise LayoutError(f"{root}: the --root folder does not exist")
    ds = config.dataset
    if ds not in DATASETS:
        raise ValueError(f"unknown dataset {ds!r}; expected one of {DATASETS}")
    if ds in ("videomatte", "youtubematte", "synthetic") and config.resolution not in RESOLUTION_FOLDERS:
        raise ValueError(f"--resolution must be 'lr' or 'hr' for {ds}, got {config.resolution!r}")
    clips: list[ClipSpec] = []
    if ds == "synthetic":
        return config.resolution, _synthetic_clips(root)
    if ds == "crgnn":
        base = root / "crgnn"
        masks = Path(config.masks) if config.masks else base / "mask"
        for video in _subdirs(base / "image_allframe", "one folder of frames per video"):
            gt = _images(base / "alpha" / video.name, f"ground-truth alphas of video {video.name} (every 10th frame)")
            frames = _images(video, "the video's frames")
            clips.append(ClipSpec(video.name, frames, gt, _mask(masks / f"{video.name}.png")))
        return "crgnn", clips
    res = RESOLUTION_FOLDERS[config.resolution]
    top, prefix, input_dir = {
        "videomatte": ("VideoMatte", "videomatte", "com"),
        "youtubematte": ("YouTubeMatte", "youtubematte", "har"),
    }[ds]
    base = root / top / f"{prefix}_{res}"
    masks = Path(config.masks) if config.masks else root / f"{top}_first_frame_seg_mask" / f"{prefix}_{res}"
    for subset in _subdirs(base, f"subset folders such as {prefix}_motion/ and {prefix}_static/"):
        for clip_dir in _subdirs(subset, "one folder per clip"):
            # The official masks: per subset for VideoMatte, one flat folder for YouTubeMatte.
            mask = (
                masks / subset.name / f"{clip_dir.name}.png" if ds == "videomatte" else masks / f"{clip_dir.name}.png"
            )
            clips.append(
                _same_count(
                    ClipSpec(
                        f"{subset.name}/{clip_dir.name}",
                        _images(clip_dir / input_dir, f"input frames {input_dir}/0000.png|jpg ..."),
                        _images(clip_dir / "pha", "ground-truth alphas pha/0000.png|jpg ..."),
                        _mask(mask),
                    )
                )
            )
    return config.resolution, clips


# ------------------------------------------------------------------------------------------- matting


def read_gray_u8(path: Path) -> torch.Tensor:
    """An 8-bit greyscale image as ``[H,W]`` uint8."""
    with Image.open(path) as im:
        return torch.from_numpy(np.asarray(im.convert("L"), dtype=np.uint8).copy())


def alpha_to_u8(alpha: torch.Tensor) -> torch.Tensor:
    """``round(clip(alpha * 255))`` (halves to even), as the official script writes its PNGs."""
    return torch.from_numpy(to_uint8(alpha))


def _u8_to_float(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float32) / 255.0  # as the evaluators read PNGs: uint8 -> float32 / 255


def matte_clip(
    clip: ClipSpec,
    session: Session,
    keep: Callable[[int], bool],
    progress: Callable[[int, int], None] | None = None,
    save_dir: Path | None = None,
) -> tuple[dict[int, torch.Tensor], tuple[int, int]]:
    """Stream the clip's frames through ``session``; the 8-bit alphas of the frames ``keep`` selects.

    With ``save_dir`` every 8-bit alpha is also written there as ``0000.png`` ... (the official naming).
    """
    if save_dir is not None:
        save_dir.mkdir(parents=True, exist_ok=True)
    mask_u8 = read_gray_u8(clip.mask)
    kept: dict[int, torch.Tensor] = {}
    size: tuple[int, int] | None = None
    try:
        for i, path in enumerate(clip.frames):
            frame = read_rgb(path)
            if size is None:
                size = (frame.shape[0], frame.shape[1])
                if tuple(mask_u8.shape) != size:
                    raise LayoutError(f"{clip.mask}: mask is {tuple(mask_u8.shape)} (H, W) but the frames are {size}")
                if not bool((mask_u8 > 0).any()):
                    raise LayoutError(f"{clip.mask}: the first-frame mask is empty")
            elif (frame.shape[0], frame.shape[1]) != size:
                raise LayoutError(f"{path}: frame size {tuple(frame.shape[:2])} differs from the clip's {size}")
            alpha_u8 = alpha_to_u8(session.step(frame, _u8_to_float(mask_u8) if i == 0 else None).detach().cpu())
            if keep(i):
                kept[i] = alpha_u8
            if save_dir is not None:
                Image.fromarray(alpha_u8.numpy()).save(save_dir / f"{i:04d}.png")
            if progress is not None:
                progress(i + 1, len(clip.frames))
    finally:
        session.close()
    assert size is not None
    return kept, size


def score_clip(
    pred_u8: Sequence[torch.Tensor], gt_paths: Sequence[Path], protocol: str, device: str = "cpu"
) -> dict[str, list[float]]:
    """Per-frame metrics of already paired 8-bit predictions and GT files, in chunks of frames."""
    proto = dataclasses.replace(M.get_protocol(protocol), gt_stride=1)  # frames are paired already
    out: dict[str, list[float]] = {m: [] for m in proto.metrics}
    n = len(pred_u8)
    for start in range(0, n, METRIC_CHUNK):
        lo = max(start - 1, 0)  # one frame of overlap for dtSSD
        idx = range(lo, min(start + METRIC_CHUNK, n))
        gts = []
        for i in idx:
            g = read_gray_u8(gt_paths[i])
            if g.shape != pred_u8[i].shape:
                raise LayoutError(
                    f"{gt_paths[i]}: ground truth is {tuple(g.shape)} (H, W) but the frame is {tuple(pred_u8[i].shape)}"
                )
            gts.append(g)
        p = _u8_to_float(torch.stack([pred_u8[i] for i in idx])).to(device)
        g = _u8_to_float(torch.stack(gts)).to(device)
        values = M.per_frame_metrics(p, g, protocol=proto)
        skip = start - lo
        for m in out:
            out[m].extend(values[m][skip:])
    return out


# ------------------------------------------------------------------------------------------- running


def _settings(config: BenchmarkConfig, protocol: str) -> dict[str, int]:
    w, e, d = PROTOCOL_SETTINGS[protocol]
    return {
        "warmup": w if config.warmup is None else config.warmup,
        "erode": e if config.erode is None else config.erode,
        "dilate": d if config.dilate is None else config.dilate,
    }


def _clip_file(out: Path, name: str) -> Path:
    return out / "clips" / (name.replace("/", "__") + ".json")


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)  # atomic: an interrupted write never leaves a half file behind


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _default_session_factory(config: BenchmarkConfig) -> SessionFactory:
    model = None

    def factory(warmup: int, erode: int, dilate: int) -> Session:
        nonlocal model
        from . import load_matting_model
        from .engine.options import MattingOptions
        from .engine.session import MattingSession

        if model is None:  # loaded on first use, so a fully resumed run needs no weights in memory
            dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
            model = load_matting_model(config.weights, device=config.device, dtype=dtypes[config.precision])
        return MattingSession(model, MattingOptions(warmup=warmup, erode=erode, dilate=dilate))

    return factory


def _prepare_synthetic(config: BenchmarkConfig) -> None:
    from .synthetic import write_dataset

    root = Path(config.root)
    spec = root / "synthetic.json"
    if not spec.exists() and root.exists() and any(root.iterdir()):
        raise LayoutError(f"{root}: not empty and has no synthetic.json; give an empty or new folder for --root")
    _log(
        f"synthetic clips in {root} ({config.synthetic_clips} x {config.synthetic_frames} frames, "
        f"{config.synthetic_height}x{config.synthetic_width}, seed {config.seed})"
    )
    write_dataset(
        root,
        clips=config.synthetic_clips,
        height=config.synthetic_height,
        width=config.synthetic_width,
        frames=config.synthetic_frames,
        seed=config.seed,
    )


def run_benchmark(config: BenchmarkConfig, *, session_factory: SessionFactory | None = None) -> dict:
    """Run (or resume) a benchmark; returns the summary that ``results.json`` holds."""
    if config.dataset == "synthetic":
        _prepare_synthetic(config)
    protocol, clips = discover_clips(config)
    if config.max_clips is not None:
        if config.max_clips < 1:
            raise ValueError(f"--max-clips must be >= 1, got {config.max_clips}")
        clips = clips[: config.max_clips]
    settings = _settings(config, protocol)
    if session_factory is None:
        if config.weights is None or not Path(config.weights).is_file():
            raise FileNotFoundError(f"{config.weights}: weights file not found (--weights)")
        session_factory = _default_session_factory(config)
    out = Path(config.out)
    run_info = {
        "dataset": config.dataset,
        "protocol": protocol,
        "resolution": config.resolution if config.dataset != "crgnn" else "native",
        "settings": settings,
        "weights": Path(config.weights).name if config.weights else None,
        "precision": config.precision,
    }
    run_file = out / "run.json"
    if run_file.exists() and not config.overwrite:
        old = json.loads(run_file.read_text())
        if old != run_info:
            raise ValueError(f"{out} holds results of a different run ({old}); use another --out or pass --overwrite")
    if config.overwrite and (out / "clips").is_dir():
        for f in (out / "clips").glob("*.json"):
            f.unlink()
    _write_json(run_file, run_info)

    stride = M.get_protocol(protocol).gt_stride
    results = []
    for k, clip in enumerate(clips, 1):
        clip_file = _clip_file(out, clip.name)
        if clip_file.exists():
            _log(f"[{k}/{len(clips)}] {clip.name}: done before, skipped")
            results.append(json.loads(clip_file.read_text()))
            continue
        n_eval = min(len(clip.gt), (len(clip.frames) + stride - 1) // stride)
        if n_eval < len(clip.gt):
            _log(f"{clip.name}: only {n_eval} of {len(clip.gt)} ground-truth frames have a frame to pair with")
        label = f"[{k}/{len(clips)}] {clip.name}"

        def progress(done: int, total: int, label: str = label) -> None:
            if done == total or done % 10 == 0:
                sys.stderr.write(f"\r{label}: matting {done}/{total}")
                sys.stderr.flush()

        start = time.perf_counter()
        kept, size = matte_clip(
            clip,
            session_factory(**settings),
            lambda i, n=n_eval: i % stride == 0 and i // stride < n,
            progress,
            save_dir=out / "pred" / clip.name / "pha" if config.save_alpha else None,
        )
        seconds = time.perf_counter() - start
        sys.stderr.write("\n")
        pred = [kept[i * stride] for i in range(n_eval)]
        per_frame = score_clip(pred, clip.gt[:n_eval], protocol, config.device)
        record = {
            "clip": clip.name,
            "frames": len(clip.frames),
            "evaluated_frames": n_eval,
            "height": size[0],
            "width": size[1],
            "seconds": round(seconds, 3),
            "fps": round(len(clip.frames) / max(seconds, 1e-9), 3),
            "mean": {m: float(np.mean(v)) for m, v in per_frame.items()},
            "per_frame": per_frame,
        }
        plot_series(
            per_frame,
            f"{config.dataset} / {clip.name} ({protocol}): per-frame error",
            out / "plots" / (clip.name.replace("/", "__") + ".png"),
        )
        _write_json(clip_file, record)
        _log(f"{label}: " + ", ".join(f"{m} {v:.2f}" for m, v in record["mean"].items()))
        results.append(record)
    return write_reports(out, run_info, results)


def write_reports(out: Path, run_info: dict, results: list[dict]) -> dict:
    """``results.md``, ``results.csv`` and ``results.json`` from the per-clip records."""
    metrics = [m for m in M.METRIC_NAMES if all(m in r["mean"] for r in results)]
    overall = M.aggregate_clips([r["per_frame"] for r in results])
    summary = {
        **run_info,
        "clips": len(results),
        "metrics": metrics,
        "overall": overall,
        "mean_of_clip_means": {m: float(np.mean([r["mean"][m] for r in results])) for m in metrics},
        "per_clip": [{k: v for k, v in r.items() if k != "per_frame"} for r in results],
    }
    _write_json(out / "results.json", summary)
    with (out / "results.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["clip", "frames", "evaluated_frames", *metrics, "fps"])
        for r in results:
            w.writerow([r["clip"], r["frames"], r["evaluated_frames"], *(r["mean"][m] for m in metrics), r["fps"]])
        w.writerow(
            [
                "overall",
                sum(r["frames"] for r in results),
                sum(r["evaluated_frames"] for r in results),
                *(overall[m] for m in metrics),
                "",
            ]
        )
    s = run_info["settings"]
    lines = [
        f"# {run_info['dataset']} benchmark ({run_info['protocol']} protocol)",
        "",
        f"Weights `{run_info['weights']}`, {run_info['precision']}; warmup {s['warmup']}, erode {s['erode']}, "
        f"dilate {s['dilate']}. MAD and MSE x1e3, Grad and Conn /1e3, dtSSD x1e2; lower is better.",
        "",
        "| clip | frames | " + " | ".join(metrics) + " | fps |",
        "|---|---:|" + "---:|" * len(metrics) + "---:|",
    ]
    for r in results:
        vals = " | ".join(f"{r['mean'][m]:.2f}" for m in metrics)
        lines.append(f"| {r['clip']} | {r['frames']} | {vals} | {r['fps']:.2f} |")
    vals = " | ".join(f"**{overall[m]:.2f}**" for m in metrics)
    lines.append(f"| **overall** | {sum(r['frames'] for r in results)} | {vals} | |")
    lines += [
        "",
        "Overall = mean over clips for each frame index, then mean over frame indices (frames from 700 on "
        "ignored), as the official evaluation spreadsheets compute the published numbers.",
    ]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    _log(f"wrote {out / 'results.md'}, results.csv, results.json and plots/")
    return summary


# ----------------------------------------------------------------------------------------------- CLI


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``benchmark`` sub-command."""
    p = subparsers.add_parser(
        "benchmark",
        help="score the model on VideoMatte, YouTubeMatte, CRGNN or synthetic clips",
        description=(__doc__ or "").strip().splitlines()[0],
    )
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument(
        "--root",
        required=True,
        type=Path,
        help="data folder arranged as the official evaluation docs (synthetic: where clips are written)",
    )
    p.add_argument("--weights", required=True, type=Path, help="matanyone2.pth or .safetensors")
    p.add_argument("--out", type=Path, help="results folder (default: output/benchmark/<dataset>_<resolution>)")
    p.add_argument(
        "--resolution",
        choices=("lr", "hr"),
        default="lr",
        help="videomatte/youtubematte/synthetic: lr = 512x288 protocol, hr = 1920x1080 protocol",
    )
    p.add_argument("--masks", type=Path, help="first-frame mask folder, if not where the official layout has it")
    p.add_argument("--max-clips", type=int, help="only the first N clips (sorted by name)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32")
    p.add_argument("--warmup", type=int, help="override the protocol's warmup")
    p.add_argument("--erode", type=int, help="override the protocol's erosion kernel")
    p.add_argument("--dilate", type=int, help="override the protocol's dilation kernel")
    p.add_argument("--save-alpha", action="store_true", help="also write the 8-bit predictions, pred/<clip>/pha/")
    p.add_argument("--overwrite", action="store_true", help="discard earlier results in --out instead of resuming")
    g = p.add_argument_group("synthetic clips")
    g.add_argument("--clips", type=int, default=4, help="number of synthetic clips")
    g.add_argument("--size", default="288x512", help="synthetic frame size HxW")
    g.add_argument("--frames", type=int, default=30, help="frames per synthetic clip")
    g.add_argument("--seed", type=int, default=0, help="seed of the first synthetic clip")
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    try:
        h, w = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size must be HxW, e.g. 288x512, got {args.size!r}") from None
    res = "native" if args.dataset == "crgnn" else args.resolution
    config = BenchmarkConfig(
        dataset=args.dataset,
        root=args.root,
        weights=args.weights,
        out=args.out or Path("output") / "benchmark" / f"{args.dataset}_{res}",
        resolution=args.resolution,
        masks=args.masks,
        max_clips=args.max_clips,
        device=str(resolve_device(args.device, name="--device")),  # a bad device fails before any clip is read
        precision=args.precision,
        warmup=args.warmup,
        erode=args.erode,
        dilate=args.dilate,
        save_alpha=args.save_alpha,
        overwrite=args.overwrite,
        synthetic_clips=args.clips,
        synthetic_height=h,
        synthetic_width=w,
        synthetic_frames=args.frames,
        seed=args.seed,
    )
    run_benchmark(config)
    return 0
