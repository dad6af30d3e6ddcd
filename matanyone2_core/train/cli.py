"""`python -m matanyone2_core train-matting`: fine-tune the matting network on video-matting clips.

    python -m matanyone2_core train-matting --data DIR [--seg-data DIR] --init matanyone2.pth --out DIR
        [--steps N --lr LR --batch B --accum A --window 8 --refs 1 --dropout-ratio R --dropout-patch P --amp
         --clip-grad C --val DIR --val-every N --save-every N --resume] ...

Multi-GPU: `torchrun --nproc_per_node=G -m matanyone2_core train-matting ...` (one process per GPU, the
gradients averaged over them). docs/training.md describes the data layouts, every option and the recipe.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from .loop import AMP_DTYPES, VAL_PROTOCOLS, TrainMattingConfig, train_matting

_HELP = {
    "data": "matting clips: folders holding com/ (frames) and pha/ (alpha), as synthetic.write_dataset writes",
    "seg_data": "segmentation-only clips: JPEGImages/ + Annotations/ (DAVIS, YouTube-VOS) or images/ + masks/",
    "init": "the weights to start from (the official matanyone2.pth; any checkpoint load_matting_model reads)",
    "out": "the run folder: model.pth, train_state.pt, log.jsonl, validation/",
    "steps": "optimizer steps",
    "lr": "peak learning rate (AdamW)",
    "weight_decay": "AdamW weight decay of weight matrices and kernels (biases and norms: none)",
    "lr_warmup": "linear learning-rate warm-up steps before the cosine decay",
    "min_lr_ratio": "the cosine decay ends at this fraction of --lr",
    "batch": "windows per process and accumulation round",
    "accum": "gradient-accumulation rounds per step (windows per step = batch x accum x processes)",
    "clip_grad": "clip the gradient norm to this (0: no clipping)",
    "amp_dtype": "autocast dtype with --amp (fp16 adds a gradient scaler)",
    "window": "frames per training window",
    "refs": "reference frames per window: distant frames of the clip put into permanent memory",
    "dropout_ratio": "fraction of each reference frame's patches blanked (RGB and alpha)",
    "dropout_patch": "patch side of the reference dropout, in pixels of the crop",
    "size": "crop size HxW (or one number for a square)",
    "max_stride": "temporal stride of a window drawn in 1..this",
    "scale_min": "least zoom of the crop (1: the crop spans the frame's short side)",
    "scale_max": "largest zoom of the crop",
    "jitter": "colour jitter: brightness, contrast, saturation factors in 1 +- this",
    "seg_fraction": "fraction of windows drawn from --seg-data when both folders are given",
    "boundary": "half-width in pixels of the uncertain band of segmentation masks (trimap)",
    "evaluator": "learned evaluator file for L_eval (default: the analytic evaluator)",
    "warmup": "first-frame predictions before its alpha is kept, as matte's --warmup",
    "erode": "first-mask erosion kernel, as matte's --erode",
    "dilate": "first-mask dilation kernel, as matte's --dilate",
    "mem_every": "a memory frame every this many frames",
    "max_mem_frames": "working-memory frames (the permanent first frame included)",
    "top_k": "memory tokens read per query pixel",
    "w_l1": "weight of the L1 alpha loss",
    "w_laplacian": "weight of the Laplacian-pyramid loss",
    "w_gradient": "weight of the gradient loss",
    "w_temporal": "weight of the temporal-coherence loss",
    "w_seg": "weight of the segmentation loss (segmentation data, outside the band)",
    "w_eval": "weight of L_eval (segmentation data, in the band)",
    "seed": "seed of the data stream and the RNGs",
    "val": "held-out matting clips (layout of --data), matted and scored with MAD / Grad / dtSSD",
    "val_every": "validate every this many steps (and before the first and after the last; 0: only those)",
    "val_frames": "validate on the first this many frames of each held-out clip (default: all)",
    "val_protocol": "metric protocol: lr (Grad on min-max normalised alphas, Conn) or hr",
    "save_every": "write model.pth and train_state.pt every this many steps (and at the end)",
    "stop_after": "stop after this many steps of this launch (the schedule still spans --steps)",
    "workers": "data-loader worker processes",
    "device": "auto (cuda:LOCAL_RANK when there is a GPU, else cpu), cpu, cuda, cuda:N",
}


def _size(text: str) -> tuple[int, int]:
    """`480` or `480x640` -> (H, W)."""
    parts = text.lower().split("x")
    if len(parts) not in (1, 2) or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected H or HxW, got {text!r}")
    h = int(parts[0])
    return (h, int(parts[1]) if len(parts) == 2 else h)


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """The `train-matting` subcommand."""
    d = TrainMattingConfig()
    p = subparsers.add_parser("train-matting", help="fine-tune the MatAnyone 2 matting network",
                              description=__doc__.split("\n\n")[0])  # fmt: skip
    p.add_argument("--data", help=_HELP["data"])
    p.add_argument("--seg-data", help=_HELP["seg_data"])
    p.add_argument("--init", required=True, help=_HELP["init"])
    p.add_argument("--out", required=True, help=_HELP["out"])
    p.add_argument("--amp", action="store_true", help="mixed precision on CUDA (ignored on the CPU: fp32)")
    p.add_argument("--no-flip", dest="flip", action="store_false", help="no horizontal flips")
    p.add_argument("--resume", action="store_true", help="continue OUT/train_state.pt exactly")
    p.add_argument("--quiet", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("--size", type=_size, default=d.size, help=f"{_HELP['size']} (default {d.size[0]}x{d.size[1]})")
    p.add_argument("--amp-dtype", default=d.amp_dtype, choices=sorted(AMP_DTYPES), help=_HELP["amp_dtype"])
    p.add_argument("--val-protocol", default=d.val_protocol, choices=VAL_PROTOCOLS, help=_HELP["val_protocol"])
    done = {"data", "seg_data", "init", "out", "amp", "flip", "resume", "progress", "size", "amp_dtype",
            "val_protocol"}  # fmt: skip
    for f in dataclasses.fields(TrainMattingConfig):
        if f.name in done:
            continue
        kind = int if f.type in ("int", "int | None") else (float if f.type == "float" else str)
        p.add_argument(_flag(f.name), type=kind, default=getattr(d, f.name),
                       help=f"{_HELP.get(f.name, '')} (default {getattr(d, f.name)})")  # fmt: skip
    p.set_defaults(func=_run_cli)


def _flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def _run_cli(args: argparse.Namespace) -> int:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainMattingConfig)}
    result = train_matting(TrainMattingConfig(**values))
    last = result.validations[-1] if result.validations else None
    summary = {"steps": result.steps_done,
               "first_loss": result.history[0]["loss"] if result.history else None,
               "last_loss": result.history[-1]["loss"] if result.history else None,
               "validation": {k: round(v, 4) for k, v in last.items() if isinstance(v, float)} if last else None,
               "model": str(result.model_path) if result.model_path else None,
               "train_state": str(result.state_path) if result.state_path else None}  # fmt: skip
    print(json.dumps(summary, indent=2))
    return 0
