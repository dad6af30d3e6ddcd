"""Validation of an evaluator on synthetic clips with exact ground truth, and of quality-guided fusion.

    python -m matanyone2_core validate-evaluator [--clips 4 --frames 8 --height 144 --width 256] [--json F]

For every clip of the project's generator, the ground-truth alpha is degraded in each known way
(`degrade.DEGRADATIONS`); the evaluator judges each candidate against the frames (8-bit, as real inputs are)
and a realistic segmentation (the ground truth above 0.5, opened with a 3x3 square: a segmenter's mask,
without the one-pixel strands); its flags (error > 0.5) are scored against the patch labels of
`degrade.error_labels` with precision, recall and F1 over all pixels of all clips. The ground truth itself is
judged too: every flag there is a false alarm. Fusion is checked on the paper's setting: a video matte with
boundary errors (segmentation-like hard edges within 4 px of the segmentation's edge, exact elsewhere) and an
image matte with semantic errors (holes and blobs),
each judged by the evaluator, fused with `fuse_mattes`, all scored with the official MAD and Grad.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..io import to_uint8
from ..metrics import evaluate_sequence
from ..synthetic import make_clip
from . import degrade
from .evaluate import Evaluator, evaluate_matte
from .filters import dilate, erode
from .fusion import fuse_mattes

FLAG_THRESHOLD = 0.5
TARGET_GT_FLAGGED = 0.02
TARGET_F1 = {**{k: 0.7 for k in degrade.SEMANTIC}, **{k: 0.5 for k in degrade.BOUNDARY}}


def realistic_segmentation(alpha: torch.Tensor) -> torch.Tensor:
    """A segmenter-like mask of a ground-truth alpha `[T,H,W]`: above 0.5, then a 3x3 opening."""
    binary = (alpha > 0.5).float()[:, None]
    return dilate(erode(binary, 1), 1)[:, 0]


def boundary_band(seg: torch.Tensor, radius: int) -> torch.Tensor:
    """0/1 `[T,H,W]`: the pixels within `radius` of the segmentation's edge."""
    binary = (seg > 0.5).float()[:, None]
    return (dilate(binary, radius) - erode(binary, radius))[:, 0]


@dataclass
class _Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    pixels: int = 0
    labelled: int = 0
    flagged: int = 0

    def add(self, flags: torch.Tensor, labels: torch.Tensor) -> None:
        self.tp += int((flags & labels).sum())
        self.fp += int((flags & ~labels).sum())
        self.fn += int((~flags & labels).sum())
        self.pixels += flags.numel()
        self.labelled += int(labels.sum())
        self.flagged += int(flags.sum())

    def row(self) -> dict[str, float]:
        precision = self.tp / max(self.tp + self.fp, 1)
        recall = self.tp / max(self.tp + self.fn, 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        pixels = max(self.pixels, 1)
        return {"precision": precision, "recall": recall, "f1": f1,
                "labelled": self.labelled / pixels, "flagged": self.flagged / pixels}  # fmt: skip


@dataclass
class ValidationReport:
    """What `run_validation` measured (fractions in 0..1; MAD and Grad in the official scales)."""

    settings: dict
    degradations: dict[str, dict[str, float]] = field(default_factory=dict)
    gt_flagged: float = 0.0
    fusion: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"settings": self.settings, "gt_flagged": self.gt_flagged, "degradations": self.degradations,
                "fusion": self.fusion, "seconds": self.seconds}  # fmt: skip

    def markdown(self) -> str:
        """The report as Markdown tables (targets marked)."""
        s = self.settings
        lines = [
            f"Synthetic clips: {s['clips']} x {s['frames']} frames at {s['height']}x{s['width']} (seed {s['seed']}); "
            f"labels: {2 * degrade.LABEL_RADIUS + 1}x{2 * degrade.LABEL_RADIUS + 1} patch MAD > {degrade.LABEL_MAD} "
            f"or Grad > {degrade.LABEL_GRAD}; flag = error > {FLAG_THRESHOLD}.",
            "",
            f"Flagged on the ground truth itself: **{100 * self.gt_flagged:.2f} %** of pixels "
            f"(target < {100 * TARGET_GT_FLAGGED:.0f} %).",
            "",
            "| degradation | labelled % | flagged % | precision | recall | F1 | target |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, r in self.degradations.items():
            target = TARGET_F1[name]
            mark = "met" if r["f1"] >= target else "missed"
            lines.append(f"| {name} | {100 * r['labelled']:.1f} | {100 * r['flagged']:.1f} | {r['precision']:.2f} | "
                         f"{r['recall']:.2f} | **{r['f1']:.2f}** | >= {target} ({mark}) |")  # fmt: skip
        lines += ["", "| matte | MAD | Grad |", "|---|---|---|"]
        for name, r in self.fusion.items():
            lines.append(f"| {name} | {r['MAD']:.2f} | {r['Grad']:.3f} |")
        return "\n".join(lines) + "\n"


def run_validation(
    *,
    clips: int = 4,
    frames: int = 8,
    height: int = 144,
    width: int = 256,
    seed: int = 0,
    evaluator: Evaluator | None = None,
    progress=None,
) -> ValidationReport:
    """Score `evaluator` (default: analytic) on every degradation and check fusion; see the module docstring."""
    started = time.perf_counter()
    name = getattr(evaluator, "name", type(evaluator).__name__) if evaluator else "analytic"
    settings = {"clips": clips, "frames": frames, "height": height, "width": width, "seed": seed,
                "evaluator": name}  # fmt: skip
    counts = {name: _Counts() for name in degrade.DEGRADATIONS}
    gt_counts = _Counts()
    fusion_parts: dict[str, list[torch.Tensor]] = {"video": [], "image": [], "fused": [], "fused_binary": []}
    truths = []
    for c in range(clips):
        clip = make_clip(height, width, frames, seed=seed + c)
        images = torch.from_numpy(to_uint8(clip.frames)).float() / 255.0
        gt = clip.alpha
        seg = realistic_segmentation(gt)
        gt_error = evaluate_matte(images, gt, seg, evaluator=evaluator)
        gt_counts.add(gt_error > FLAG_THRESHOLD, torch.zeros_like(gt, dtype=torch.bool))
        errors = {}
        for k, name in enumerate(degrade.DEGRADATIONS):
            pred = degrade.degrade(gt, name, seed=seed * 1000 + c * 10 + k)
            error = evaluate_matte(images, pred, seg, evaluator=evaluator)
            counts[name].add(error > FLAG_THRESHOLD, degrade.error_labels(pred, gt)["label"])
            errors[name] = (pred, error)
        # Fusion: the video branch's boundary is coarse (hard edges within 4 px of the segmentation's edge,
        # the rest exact), the image branch has holes and blobs.
        video = torch.where(boundary_band(seg, max(1, round(4 * min(height, width) / 256))) > 0,
                            errors["hard_edges"][0], gt)  # fmt: skip
        err_video = evaluate_matte(images, video, seg, evaluator=evaluator)
        image = degrade.degrade(degrade.degrade(gt, "holes", seed=seed + c), "blobs", seed=seed + c + 1)
        err_image = evaluate_matte(images, image, seg, evaluator=evaluator)
        fusion_parts["video"].append(video)
        fusion_parts["image"].append(image)
        fusion_parts["fused"].append(fuse_mattes(video, image, err_video, err_image))
        fusion_parts["fused_binary"].append(fuse_mattes(video, image, err_video, err_image, binary=True))
        truths.append(gt)
        if progress is not None:
            progress(c + 1, clips)
    report = ValidationReport(settings=settings)
    report.degradations = {name: counts[name].row() for name in degrade.DEGRADATIONS}
    report.gt_flagged = gt_counts.row()["flagged"]
    labels = {"video": "video branch (hard edges near the boundary)", "image": "image branch (holes + blobs)",
              "fused": "fused (soft map)", "fused_binary": "fused (binary map, paper)"}  # fmt: skip
    for key, parts in fusion_parts.items():
        scores = [evaluate_sequence(p, g, protocol="hr") for p, g in zip(parts, truths, strict=True)]
        report.fusion[labels[key]] = {m: sum(s[m] for s in scores) / len(scores) for m in ("MAD", "Grad")}
    report.seconds = time.perf_counter() - started
    return report


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("validate-evaluator", help="score the matte evaluator on synthetic degradations")
    p.add_argument("--clips", type=int, default=4)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--height", type=int, default=144)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the report as JSON here")
    p.add_argument("--markdown", type=Path, help="also write the tables as Markdown here")
    p.set_defaults(func=_run_cli)


def _run_cli(args: argparse.Namespace) -> int:
    for name in ("clips", "frames"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
    for name in ("height", "width"):
        if getattr(args, name) < 32:
            raise ValueError(f"--{name} must be >= 32 pixels, got {getattr(args, name)}")

    def progress(done: int, total: int) -> None:
        sys.stderr.write(f"\rvalidating: clip {done}/{total}")
        sys.stderr.flush()

    report = run_validation(clips=args.clips, frames=args.frames, height=args.height, width=args.width,
                            seed=args.seed, progress=progress)  # fmt: skip
    sys.stderr.write("\n")
    text = report.markdown()
    print(text, end="")
    print(f"({report.seconds:.1f} s)")
    if args.json:
        args.json.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(text)
    return 0
