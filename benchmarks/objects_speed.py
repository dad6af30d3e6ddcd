"""Several objects in one pass: `matte_objects` against one `matte_video` run per object, same clip and weights.

Prints a Markdown table: for each object count N, the wall time of one `matte_objects` call and of N
separate `matte_video` calls (best of `--repeat` interleaved runs), the speed-up, and the largest alpha
difference between the two (a sanity check: it should stay below 1e-5 in fp32). Seeded random weights in
the official layout, written to a temporary file as the tests do; a random clip with one elliptical
subject per object.

    python benchmarks/objects_speed.py [--objects 1 2 4] [--size 240x426] [--frames 12] [--warmup 10] \
        [--repeat 3] [--device cuda]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from weights import write_random_checkpoint  # noqa: E402

from matanyone2_core import load_matting_model, matte_objects, matte_video, resolve_device  # noqa: E402


def random_clip(frames: int, height: int, width: int, seed: int = 1) -> torch.Tensor:
    """A random image drifting a pixel per frame plus noise, `[T,H,W,3]` (as the tests' `random_frames`; not
    imported from there, since the tests' conftest pins torch to two threads)."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(height + frames, width + frames, 3, generator=gen)
    clip = torch.stack([base[t : t + height, t : t + width] for t in range(frames)])
    return (0.8 * clip + 0.2 * torch.rand(clip.shape, generator=gen)).clamp(0, 1)


def object_masks(count: int, height: int, width: int) -> torch.Tensor:
    """`count` elliptical subjects side by side, `[N,H,W]`."""
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    masks = []
    for i in range(count):
        cx = width * (i + 0.5) / count
        ry, rx = height / 3, width / (2.5 * count)
        masks.append(((((yy - height / 2) / ry) ** 2 + ((xx - cx) / rx) ** 2) < 1).float())
    return torch.stack(masks)


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--size", default="240x426", help="HxW")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the best one counts")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    height, width = (int(s) for s in args.size.split("x"))
    clip = random_clip(args.frames, height, width)

    with tempfile.TemporaryDirectory() as tmp:
        model = load_matting_model(write_random_checkpoint(Path(tmp) / "matanyone2.pth", seed=0), device=device)
    options = dict(warmup=args.warmup)
    matte_video(model, clip[:2], object_masks(1, height, width)[0], warmup=0)  # first-call overheads out of the way

    rows = []
    for count in args.objects:
        masks = object_masks(count, height, width)
        t_together = t_alone = float("inf")
        for _ in range(args.repeat):  # interleaved, best of each: load from other processes only ever slows a run
            together, seconds = _timed(lambda masks=masks: matte_objects(model, clip, masks, **options))
            t_together = min(t_together, seconds)
            alone, seconds = _timed(lambda masks=masks: [matte_video(model, clip, m, **options) for m in masks])
            t_alone = min(t_alone, seconds)
        diff = (together - torch.stack(alone)).abs().max().item()
        rows.append((count, t_together, t_alone, diff))

    threads = f", {torch.get_num_threads()} CPU threads" if device.type == "cpu" else ""
    print(f"{args.size}, {args.frames} frames, warm-up {args.warmup}, {device}{threads}, fp32, best of {args.repeat}\n")
    print("| objects | matte_objects (s) | N x matte_video (s) | speed-up | max \\|Δα\\| |")
    print("|---|---|---|---|---|")
    for count, t_together, t_alone, diff in rows:
        print(f"| {count} | {t_together:.2f} | {t_alone:.2f} | {t_alone / t_together:.2f}x | {diff:.2g} |")


if __name__ == "__main__":
    main()
