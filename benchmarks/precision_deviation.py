"""Deviation of the fast modes from the exact fp32 mode (max and mean |Δα|), same weights and clip: fp16, bf16,
and the full-softmax memory read (fp32, and with bf16).

    python benchmarks/precision_deviation.py --size 240x426 --frames 12 [--device cuda] [--weights FILE]
        [--modes fp16 bf16 full full-bf16]

Without --weights the seeded random test weights are used (their alphas are not a trained model's, so treat
the figures as an indication of numerical sensitivity, not of visual quality).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import ellipse_mask, random_frames  # noqa: E402
from weights import write_random_checkpoint  # noqa: E402

from matanyone2_core import MattingOptions, load_matting_model, matte_video  # noqa: E402

MODES = {  # name: (weights dtype, memory read)
    "fp32": (torch.float32, "topk"),
    "fp16": (torch.float16, "topk"),
    "bf16": (torch.bfloat16, "topk"),
    "full": (torch.float32, "full"),
    "full-bf16": (torch.bfloat16, "full"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="240x426")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--modes", nargs="+", default=list(MODES)[1:], choices=list(MODES)[1:])
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    weights = args.weights or write_random_checkpoint(Path("/tmp/ma2-random-weights.pth"), seed=0)
    clip, mask = random_frames(args.frames, height, width), ellipse_mask(height, width)
    results = {}
    for name in ["fp32", *args.modes]:
        dtype, read = MODES[name]
        model = load_matting_model(weights, device=args.device, dtype=dtype)
        start = time.perf_counter()
        options = MattingOptions(warmup=args.warmup, memory_read=read)
        results[name] = matte_video(model, clip, mask, options=options)
        print(f"{name}: {time.perf_counter() - start:.1f} s for {args.frames} frames", file=sys.stderr)
    print(f"| mode | max abs dev. from fp32 | mean abs dev. | ({args.size}, {args.frames} frames, {args.device}) |")
    print("|---|---|---|---|")
    for name in args.modes:
        diff = (results[name] - results["fp32"]).abs()
        print(f"| {name} | {diff.max().item():.2e} | {diff.mean().item():.2e} | |")


if __name__ == "__main__":
    main()
