"""`python -m matanyone2_core matte`: frames + first-frame mask -> alpha and foreground PNGs."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from .checkpoint import load_matting_model
from .engine.options import MattingOptions
from .engine.session import MattingSession
from .io import iter_frames, read_mask, save_alpha, save_foreground

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class ProgressBar:
    """A one-line text progress bar on stderr."""

    def __init__(self, total: int | None, label: str = "matting"):
        self.total, self.label, self.start = total, label, time.perf_counter()

    def update(self, done: int) -> None:
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        if self.total:
            filled = int(30 * done / self.total)
            bar = f"[{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total}"
        else:
            bar = f"{done} frames"
        sys.stderr.write(f"\r{self.label} {bar} {rate:.2f} fps")
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("matte", help="matte a clip from a first-frame mask")
    p.add_argument("--frames", required=True, help="folder of frames (sorted by name) or a video file")
    p.add_argument("--mask", required=True, help="first-frame mask image (non-zero = subject)")
    p.add_argument("--weights", required=True, help="matanyone2.pth / .safetensors (MatAnyone 1 works too)")
    p.add_argument("--out", required=True, help="output folder: pha/0000.png alphas, fgr/0000.png RGBA")
    p.add_argument("--keyframe", action="append", default=[], metavar="INDEX:MASK.png",
                   help="re-prompt with a mask at a later frame (repeatable)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--erode", type=int, default=10)
    p.add_argument("--dilate", type=int, default=10)
    p.add_argument("--max-internal-size", type=int, default=-1)
    p.add_argument("--long-term", action="store_true", help="long-term memory (for long clips)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", choices=sorted(DTYPES), default="fp32")
    p.add_argument("--no-foreground", action="store_true", help="write alphas only")
    p.set_defaults(func=run)


def _parse_keyframes(specs: list[str]) -> dict[int, torch.Tensor]:
    keyframes = {}
    for spec in specs:
        index, sep, path = spec.partition(":")
        if not sep or not index.isdigit():
            raise ValueError(f"--keyframe expects INDEX:MASK.png, got {spec!r}")
        keyframes[int(index)] = read_mask(path)
    return keyframes


def run(args: argparse.Namespace) -> int:
    options = MattingOptions(
        warmup=args.warmup, erode=args.erode, dilate=args.dilate,
        max_internal_size=args.max_internal_size, long_term=args.long_term,
    )
    keyframes = _parse_keyframes(args.keyframe)
    mask = read_mask(args.mask)
    model = load_matting_model(args.weights, device=args.device, dtype=DTYPES[args.precision])
    count, frames = iter_frames(args.frames)
    out = Path(args.out)
    (out / "pha").mkdir(parents=True, exist_ok=True)
    if not args.no_foreground:
        (out / "fgr").mkdir(parents=True, exist_ok=True)
    session = MattingSession(model, options)
    bar = ProgressBar(count)
    done = 0
    try:
        for index, frame in enumerate(frames):
            alpha = session.step(frame, mask if index == 0 else keyframes.get(index))
            save_alpha(alpha, out / "pha" / f"{index:04d}.png")
            if not args.no_foreground:
                save_foreground(frame, alpha, out / "fgr" / f"{index:04d}.png")
            done += 1
            bar.update(done)
    finally:
        bar.close()
        session.close()
    print(f"wrote {done} alpha frames to {out / 'pha'}")
    return 0
