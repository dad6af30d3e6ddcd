"""Speed of the analytic matte evaluator (and of fusion) per frame, at 720p and 1080p, on CPU or a GPU.

    python benchmarks/evaluator_speed.py [--device cuda] [--sizes 720x1280 1080x1920] [--frames 4] [--repeat 3]

Prints a Markdown table: milliseconds per frame for evaluate_matte (analytic) and fuse_mattes, and the peak
device memory on CUDA. The clip is a synthetic one (exact content does not change the cost).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from matanyone2_core.engine.validate import resolve_device  # noqa: E402
from matanyone2_core.quality import AnalyticEvaluator, evaluate_matte, fuse_mattes  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(height: int, width: int, frames: int, repeat: int, device: torch.device) -> dict[str, float]:
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(frames, height, width, 3, generator=gen)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
    alpha = ((0.6 - torch.sqrt(yy**2 + xx**2)) * 20).sigmoid()[None].repeat(frames, 1, 1)
    seg = (alpha > 0.5).float()
    evaluator = AnalyticEvaluator(device=str(device))
    evaluate_matte(images[:1], alpha[:1], seg[:1], evaluator=evaluator)  # warm-up (kernels, allocator)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    best_eval = best_fuse = float("inf")
    for _ in range(repeat):
        _sync(device)
        start = time.perf_counter()
        error = evaluate_matte(images, alpha, seg, evaluator=evaluator, chunk=1)
        _sync(device)
        best_eval = min(best_eval, (time.perf_counter() - start) / frames)
        start = time.perf_counter()
        fuse_mattes(alpha, alpha.flip(-1), error, error.flip(-1))
        best_fuse = min(best_fuse, (time.perf_counter() - start) / frames)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
    return {"evaluate_ms": 1000 * best_eval, "fuse_ms": 1000 * best_fuse, "peak_mib": peak}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", nargs="+", default=["720x1280", "1080x1920"], help="HxW sizes")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    device = resolve_device(args.device, name="--device")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"analytic evaluator on {name}, torch {torch.__version__}, best of {args.repeat}, {args.frames} frames\n")
    print("| size | evaluate_matte (ms/frame) | fuse_mattes (ms/frame, CPU) | peak device memory (MiB) |")
    print("|---|---|---|---|")
    for size in args.sizes:
        height, width = (int(v) for v in size.lower().split("x"))
        r = measure(height, width, args.frames, args.repeat, device)
        peak = "-" if r["peak_mib"] != r["peak_mib"] else f"{r['peak_mib']:.0f}"
        print(f"| {height}x{width} | {r['evaluate_ms']:.0f} | {r['fuse_ms']:.0f} | {peak} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
