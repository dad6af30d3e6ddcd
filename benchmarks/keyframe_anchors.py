"""Keyframes as anchors against keyframes that only re-prompt: the error on the frames before a keyframe.

    python benchmarks/keyframe_anchors.py [--clips 4] [--frames 24] [--height 144] [--width 256] [--plot FILE.png]

A pass started at an anchor drifts as it goes: here every pass is simulated on synthetic clips with exact
ground truth as the true alpha with its boundary pushed out (or pulled in) by one pixel more every
`--frames-per-pixel` frames from its anchor, within a region of the frame that is random per pass (drift
happens where the subject changes; the two passes of a segment drift in different places). No trained
matting weights can be had here, so the passes are simulated; the joins are the engine's own
(`engine.anchors.join_passes`, the same weights as `matte_video(..., keyframe_mode="anchors")`), and the
quality join is judged by the analytic evaluator on the frames.

Methods, with the first mask on frame 0 and a keyframe on frame `frames // 2`:
(a) the first mask only (one forward pass); (b) the keyframe re-prompting as today (a fresh forward pass from
the keyframe on; frames before it untouched); (c) anchors, linear join; (d) anchors, quality join.
Prints MAD / Grad / dtSSD (official scales) over all frames and over the frames before the keyframe, and draws
the per-frame MAD from the first mask to the keyframe.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from matanyone2_core._plot import plot_curves  # noqa: E402
from matanyone2_core.engine.anchors import join_passes  # noqa: E402
from matanyone2_core.io import to_uint8  # noqa: E402
from matanyone2_core.metrics import evaluate_sequence, per_frame_metrics  # noqa: E402
from matanyone2_core.synthetic import make_clip  # noqa: E402

METHODS = ("first mask only", "keyframe re-prompts (today)", "anchors, linear join", "anchors, quality join")


def _shift(alpha: torch.Tensor, pixels: int) -> torch.Tensor:
    """The boundary pushed out (pixels > 0) or pulled in (< 0) by a grey-level dilation / erosion."""
    if pixels == 0:
        return alpha
    r = abs(pixels)
    x = F.pad(alpha[None, None] * (1 if pixels > 0 else -1), (r,) * 4, mode="replicate")
    out = F.max_pool2d(x, 2 * r + 1, stride=1)[0, 0]
    return out if pixels > 0 else -out


def simulate_pass(gt: torch.Tensor, anchor: int, frames: range, gen: torch.Generator, rate: float,
                  drift: str = "gradual", segment: int = 10**9) -> torch.Tensor:  # fmt: skip
    """A drifting pass from `anchor` over `frames` (in clip order), exact at the anchor. `gradual`: the
    boundary shifted by distance / rate pixels inside a random half of the frame (sign random per pass);
    `sudden`: from a random distance on (within `segment` frames: the drift that makes a user add a
    keyframe there), a disc of the subject (radius 1/8 of the short side, centred on a random pixel of it,
    moving with the subject) is lost, as when a part turns away and the memory no longer recognises it."""
    h, w = gt.shape[-2:]
    if drift == "sudden":
        yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                                indexing="ij")  # fmt: skip

        def centroid(a: torch.Tensor) -> tuple[float, float]:
            return float((a * yy).sum() / a.sum()), float((a * xx).sum() / a.sum())

        inside = (gt[anchor] > 0.99).flatten().nonzero().flatten()
        centre = int(inside[torch.randint(inside.numel(), (1,), generator=gen)])
        cy0, cx0 = centroid(gt[anchor])
        dy, dx = centre // w - cy0, centre % w - cx0  # the lost part, relative to the subject: it moves with it
        onset = 1 + int(torch.randint(max(1, min(len(frames), segment) - 2), (1,), generator=gen))
        out = []
        for t in frames:
            cy, cx = centroid(gt[t])
            hole = (((yy - cy - dy) ** 2 + (xx - cx - dx) ** 2) <= (min(h, w) / 8) ** 2).float()
            out.append(gt[t] * (1 - hole) if abs(t - anchor) >= onset else gt[t])
        return torch.stack(out)
    angle = float(torch.rand(1, generator=gen)) * 6.2832
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    region = ((xx * torch.cos(torch.tensor(angle)) + yy * torch.sin(torch.tensor(angle))) > 0).float()
    sign = 1 if bool(torch.rand(1, generator=gen) > 0.5) else -1
    out = []
    for t in frames:
        drifted = _shift(gt[t], sign * int(abs(t - anchor) / rate))
        out.append((region * drifted + (1 - region) * gt[t]).clamp(0, 1))
    return torch.stack(out)


def run(clips: int, length: int, height: int, width: int, rate: float, seed: int,
        drift: str = "gradual") -> tuple[dict, dict, dict]:  # fmt: skip
    key = length // 2
    results = {m: [] for m in METHODS}
    per_frame_one: dict[str, list[float]] = {}
    for c in range(clips):
        clip = make_clip(height, width, length, seed=seed + c)
        gt = clip.alpha
        frames = torch.from_numpy(to_uint8(clip.frames)).float() / 255.0
        gen = torch.Generator().manual_seed(seed * 100 + c)
        first = simulate_pass(gt, 0, range(length), gen, rate, drift, key)  # forward from frame 0 over the whole clip
        after = simulate_pass(gt, key, range(key, length), gen, rate, drift)  # forward from the keyframe
        back = simulate_pass(gt, key, range(0, key + 1), gen, rate, drift, key)  # backward from the keyframe
        reprompt = torch.cat([first[:key], after])
        linear = torch.cat([join_passes(frames, first[: key + 1], back, 0, key, blend="linear"), after[1:]])
        quality = torch.cat([join_passes(frames, first[: key + 1], back, 0, key, blend="quality"), after[1:]])
        for name, alpha in zip(METHODS, (first, reprompt, linear, quality), strict=True):
            results[name].append((alpha, gt))
            mad = per_frame_metrics(alpha[: key + 1], gt[: key + 1], protocol="hr")["MAD"]
            per_frame_one[name] = [a + b / clips for a, b in zip(per_frame_one.get(name, [0.0] * len(mad)), mad,
                                                                  strict=True)]  # fmt: skip
    table, before = {}, {}
    for name, pairs in results.items():
        rows = [evaluate_sequence(a, g, protocol="hr") for a, g in pairs]
        table[name] = {m: sum(r[m] for r in rows) / len(rows) for m in ("MAD", "Grad", "dtSSD")}
        rows = [evaluate_sequence(a[1:key], g[1:key], protocol="hr") for a, g in pairs]
        before[name] = {m: sum(r[m] for r in rows) / len(rows) for m in ("MAD", "Grad", "dtSSD")}
    return table, before, per_frame_one


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--height", type=int, default=144)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--frames-per-pixel", type=float, default=3.0, help="drift rate of a pass")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drift", choices=["gradual", "sudden"], default="gradual",
                        help="how a pass goes wrong: a boundary shift growing with distance, or a part lost")
    parser.add_argument("--plot", type=Path, help="per-frame MAD up to the keyframe as a PNG")
    args = parser.parse_args(argv)
    table, before, curves = run(args.clips, args.frames, args.height, args.width, args.frames_per_pixel, args.seed,
                                args.drift)  # fmt: skip
    key = args.frames // 2
    how = f"1 px per {args.frames_per_pixel:g} frames" if args.drift == "gradual" else "a part lost at a random frame"
    print(f"{args.clips} synthetic clips x {args.frames} frames at {args.height}x{args.width}, keyframe at {key}, "
          f"{args.drift} drift ({how}) from each anchor\n")  # fmt: skip
    print(f"| method | MAD | Grad | dtSSD | MAD before the keyframe (1..{key - 1}) | dtSSD before |")
    print("|---|---|---|---|---|---|")
    for name in METHODS:
        r, b = table[name], before[name]
        print(f"| {name} | {r['MAD']:.2f} | {r['Grad']:.3f} | {r['dtSSD']:.2f} | {b['MAD']:.2f} | {b['dtSSD']:.2f} |")
    today, ours = table[METHODS[1]], table[METHODS[3]]
    print(f"\nquality join vs today: MAD before the keyframe {before[METHODS[3]]['MAD']:.2f} vs "
          f"{before[METHODS[1]]['MAD']:.2f}; dtSSD {ours['dtSSD']:.2f} vs {today['dtSSD']:.2f} "
          f"({100 * (ours['dtSSD'] / today['dtSSD'] - 1):+.1f} %)")  # fmt: skip
    if args.plot:
        shown = {name: curves[name] for name in METHODS[1:]}  # (a) equals (b) before the keyframe
        title = f"per-frame MAD from the first mask (frame 0) to the keyframe (frame {key}), mean of {args.clips} clips"
        plot_curves(shown, title, args.plot, marks=[0, key])
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
