"""Train the learned evaluator (DINOv3 ViT-S/16 + DPT) from random initialisation on synthetic data, then score it
next to the analytic evaluator on the same held-out synthetic clips with the validation suite.

    python benchmarks/train_mqe.py [--device cpu|cuda] [--steps 300 --batch 4 --crop 128] [--out DIR]
        [--json F] [--markdown F]

Reports the training loss at the start and the end, the training throughput (samples/s, data preparation
included, validation excluded), and `run_validation` (precision / recall / F1 of error pixels per
degradation, ground truth flagged, fusion MAD / Grad) for both evaluators on the same clips. The training clips
(`make_clip` seeds from 1,000,000) never overlap the validation clips (seeds `--val-seed` + c). A few CPU
minutes from random initialisation are not expected to beat the analytic evaluator; a real evaluator starts
from official DINOv3 weights (`--init-dinov3`) and trains on P3M-10k for many thousand steps (docs/mqe.md).
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from matanyone2_core import synthetic  # noqa: E402
from matanyone2_core.quality import load_evaluator, validate  # noqa: E402
from matanyone2_core.quality.mqe.train import TrainConfig, train_evaluator  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--backbone", default="vits16", choices=["vits16", "vitb16", "tiny"])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-clips", type=int, default=6)
    p.add_argument("--train-frames", type=int, default=2)
    p.add_argument("--height", type=int, default=144)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--val-clips", type=int, default=2)
    p.add_argument("--val-frames", type=int, default=4)
    p.add_argument("--val-seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    p.add_argument("--out", type=Path, default=ROOT / "test-artifacts" / "train_mqe")
    p.add_argument("--json", type=Path)
    p.add_argument("--markdown", type=Path)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    run = args.out / "run"
    shutil.rmtree(run, ignore_errors=True)  # a fresh run every time (the synthetic clip cache is kept)
    cfg = TrainConfig(
        data="synthetic", out=str(run), cache=str(args.out / "cache"), backbone=args.backbone, steps=args.steps,
        batch=args.batch, crop=args.crop, lr=args.lr, warmup=args.warmup, seed=args.seed,
        backbone_lr_scale=1.0,  # random initialisation: nothing pre-trained to protect with a lower rate
        synthetic_clips=args.train_clips, synthetic_frames=args.train_frames, synthetic_height=args.height,
        synthetic_width=args.width, device=args.device, val_every=0, ckpt_every=0,
    )  # fmt: skip
    started = time.perf_counter()
    result = train_evaluator(cfg)
    train_wall = time.perf_counter() - started
    losses = [h["loss"] for h in result.history]
    k = max(1, min(5, len(losses) // 4))

    mqe = load_evaluator(result.evaluator_path, device=args.device)
    # run_validation makes its clips anew on every call (seconds per frame); both evaluators see the same ones.
    validate.make_clip = functools.lru_cache(maxsize=None)(synthetic.make_clip)
    settings = dict(clips=args.val_clips, frames=args.val_frames, height=args.height, width=args.width,
                    seed=args.val_seed)  # fmt: skip
    reports = {}
    for name, evaluator in (("analytic", None), ("mqe", mqe)):
        t = time.perf_counter()
        reports[name] = validate.run_validation(evaluator=evaluator, **settings)
        reports[name].seconds = time.perf_counter() - t

    summary = {
        "backbone": args.backbone, "device": args.device, "steps": result.steps_done, "batch": args.batch,
        "crop": args.crop, "lr": args.lr, "train_clips": f"{args.train_clips} x {args.train_frames} frames at "
        f"{args.height}x{args.width}", "loss_first": losses[0], "loss_last": losses[-1],
        "loss_first_mean": sum(losses[:k]) / k, "loss_last_mean": sum(losses[-k:]) / k, "mean_over": k,
        "samples_per_s": result.samples_per_s, "train_wall_s": train_wall, "threads": torch.get_num_threads(),
        "validation": {n: r.as_dict() for n, r in reports.items()},
    }  # fmt: skip
    text = markdown(summary, reports)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(text)
    return 0


def markdown(s: dict, reports: dict) -> str:
    """The benchmark as Markdown: training figures, then both evaluators side by side."""
    a, m = reports["analytic"], reports["mqe"]
    v = a.settings
    lines = [
        f"Training: {s['backbone']} from random initialisation, {s['steps']} steps x {s['batch']} crops of "
        f"{s['crop']}x{s['crop']} on {s['device']} ({s['threads']} threads), synthetic clips {s['train_clips']}.",
        f"Loss (focal): {s['loss_first']:.4f} at step 1 -> {s['loss_last']:.4f} at step {s['steps']} "
        f"(means of the first / last {s['mean_over']} steps: {s['loss_first_mean']:.4f} -> {s['loss_last_mean']:.4f}).",
        f"Throughput: {s['samples_per_s']:.2f} samples/s (data preparation included); {s['train_wall_s']:.0f} s "
        "wall for the run (clip generation included).",
        "",
        f"Held-out: {v['clips']} clips x {v['frames']} frames at {v['height']}x{v['width']} (seed {v['seed']}); "
        f"flagged on the ground truth: analytic {100 * a.gt_flagged:.2f} %, MQE {100 * m.gt_flagged:.2f} %.",
        "",
        "| degradation | labelled % | analytic P | R | **F1** | MQE P | R | **F1** |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, ra in a.degradations.items():
        rm = m.degradations[name]
        cells = [f"{100 * ra['labelled']:.1f}"]
        for r in (ra, rm):
            cells += [f"{r['precision']:.2f}", f"{r['recall']:.2f}", f"**{r['f1']:.2f}**"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    mean_a = sum(r["f1"] for r in a.degradations.values()) / len(a.degradations)
    mean_m = sum(r["f1"] for r in m.degradations.values()) / len(m.degradations)
    lines += [f"| mean | | | | **{mean_a:.2f}** | | | **{mean_m:.2f}** |", "",
              "| fusion judged by | matte | MAD | Grad |", "|---|---|---|---|"]  # fmt: skip
    for label, report in (("analytic", a), ("MQE", m)):
        for matte, r in report.fusion.items():
            lines.append(f"| {label} | {matte} | {r['MAD']:.2f} | {r['Grad']:.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
