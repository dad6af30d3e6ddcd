"""What the memory savers cost against full resolution, on synthetic clips with exact alpha: a reduced internal
size (what `max_internal_size=0` picks when a clip does not fit) and the subject crop.

    python benchmarks/internal_size_cost.py [--clips 4] [--frames 8] [--height 720] [--width 1280]
        [--sizes 540 360 240] [--network-size 288x512]

No trained weights can be had here, so the cost is measured two ways:
* the resolution floor, exact: the ground-truth alpha brought to the internal size (area average: the best
  alpha a network working there can give) and back to full size the way the engine does (bilinear), against
  the ground truth itself (MAD x1e3 and Grad x1e3, the official scales); for the crop, the ground truth cut to
  the box `subject_box` would find from a perfect scouting pass (the union of the alpha over the clip, at the
  scouting size, with the margin), i.e. the alpha lost outside the box, and the share of the frame matted;
* the engine's own deviation with seeded random weights at `--network-size` (max / mean |Δα| against its
  full-resolution alpha): numerical, not visual, but it is the same code path.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from matanyone2_core import MattingOptions, load_matting_model, matte_video  # noqa: E402
from matanyone2_core.engine.preprocess import internal_size  # noqa: E402
from matanyone2_core.io import to_uint8  # noqa: E402
from matanyone2_core.metrics import evaluate_sequence  # noqa: E402
from matanyone2_core.streaming import TensorSource, stream_mattes  # noqa: E402
from matanyone2_core.streaming.matte import CROP_MARGIN, CROP_THRESHOLD, MIN_MARGIN, SCOUT_SIZE  # noqa: E402
from matanyone2_core.synthetic import make_clip  # noqa: E402


def through_internal(alpha: torch.Tensor, side: int) -> torch.Tensor:
    """`[T,H,W]` at the internal size (area) and back (bilinear, as the engine upsamples)."""
    height, width = alpha.shape[-2:]
    reduced = internal_size(height, width, side)
    if reduced is None:
        return alpha
    small = F.interpolate(alpha[:, None], size=reduced, mode="area")
    return F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)[:, 0].clamp(0, 1)


def perfect_box(alpha: torch.Tensor) -> tuple[int, int, int, int]:
    """The box a scouting pass returning the true alpha at SCOUT_SIZE would give (same rule as subject_box)."""
    height, width = alpha.shape[-2:]
    seen = through_internal(alpha, SCOUT_SIZE) > CROP_THRESHOLD
    rows, cols = seen.any(0).any(1), seen.any(0).any(0)
    ys, xs = rows.nonzero().flatten(), cols.nonzero().flatten()
    top, bottom, left, right = int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1
    gy, gx = max(MIN_MARGIN, int(CROP_MARGIN * (bottom - top))), max(MIN_MARGIN, int(CROP_MARGIN * (right - left)))
    return max(0, top - gy), min(height, bottom + gy), max(0, left - gx), min(width, right + gx)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--sizes", type=int, nargs="+", default=[540, 360, 240])
    parser.add_argument("--network-size", default="288x512")
    args = parser.parse_args()

    rows: dict[str, list[dict]] = {}
    area = []
    for c in range(args.clips):
        gt = make_clip(args.height, args.width, args.frames, seed=c).alpha
        for side in args.sizes:
            rows.setdefault(f"internal short side {side}", []).append(evaluate_sequence(through_internal(gt, side), gt,
                                                                                          protocol="hr"))  # fmt: skip
        top, bottom, left, right = perfect_box(gt)
        cut = torch.zeros_like(gt)
        cut[:, top:bottom, left:right] = gt[:, top:bottom, left:right]
        rows.setdefault("subject crop", []).append(evaluate_sequence(cut, gt, protocol="hr"))
        area.append((bottom - top) * (right - left) / (args.height * args.width))
    print(f"resolution floor on {args.clips} synthetic clips x {args.frames} frames at {args.width}x{args.height} "
          "(MAD, Grad x1e3 against the exact alpha)\n")  # fmt: skip
    print("| saver | MAD | Grad | share of the frame matted |")
    print("|---|---|---|---|")
    for name, results in rows.items():
        mad = sum(r["MAD"] for r in results) / len(results)
        grad = sum(r["Grad"] for r in results) / len(results)
        if name == "subject crop":
            share = f"{100 * sum(area) / len(area):.0f} %"
        else:
            side = int(name.rsplit(" ", 1)[1])
            share = f"{100 * (side / min(args.height, args.width)) ** 2:.0f} % of the pixels"
        print(f"| {name} | {mad:.3f} | {grad:.3f} | {share} |")

    from weights import write_random_checkpoint

    height, width = (int(v) for v in args.network_size.split("x"))
    model = load_matting_model(write_random_checkpoint(Path("/tmp/ma2-random-weights.pth"), seed=0), device="cpu")
    clip = make_clip(height, width, 6, seed=11)
    frames = torch.from_numpy(to_uint8(clip.frames)).float() / 255
    mask = (clip.alpha[0] > 0.5).float()
    base = dict(warmup=2, erode=5, dilate=5)
    full = matte_video(model, frames, mask, options=MattingOptions(**base))
    print(f"\nthe engine with random weights at {width}x{height}, 6 frames: |Δα| against its full-resolution alpha\n")
    print("| saver | max | mean |")
    print("|---|---|---|")
    for side in [s * min(height, width) // min(args.height, args.width) for s in args.sizes]:
        reduced = matte_video(model, frames, mask, options=MattingOptions(**base, max_internal_size=side))
        diff = (reduced - full).abs()
        print(f"| internal short side {side} | {float(diff.max()):.3f} | {float(diff.mean()):.4f} |")
    box = perfect_box(clip.alpha)
    cropped = torch.stack([a for _, _, a in stream_mattes(model, TensorSource(frames), mask, crop=box,
                                                          options=MattingOptions(**base))])  # fmt: skip
    diff = (cropped - full).abs()
    print(f"| subject crop {box} | {float(diff.max()):.3f} | {float(diff.mean()):.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
