"""Fine-tune the matting network from seeded random weights on synthetic clips, without and with reference frames,
and score both on held-out synthetic clips before and after.

    OMP_NUM_THREADS=1 python benchmarks/train_matting.py [--steps 100 --size 48x64 --window 4] [--out DIR]
        [--plot docs/training_loss.png] [--json F]

Both runs start from the same weights (the test suite's seeded random weights in the official layout), read the
same data stream (same seed) and differ only in `--refs` (0, then `--with-refs`, with patch dropout). Reported:
validation MAD / MSE / Grad / Conn / dtSSD (the `lr` protocol, 8-bit rounded alphas, as the benchmark scores)
before training and after it, the training loss (mean over blocks of steps) and the time per step. Random
weights and a few CPU minutes show that the loop learns, not what the real recipe reaches (docs/training.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from weights import write_random_checkpoint  # noqa: E402

from matanyone2_core import synthetic  # noqa: E402
from matanyone2_core._plot import plot_curves  # noqa: E402
from matanyone2_core.train import TrainMattingConfig, train_matting  # noqa: E402
from matanyone2_core.train.cli import _size  # noqa: E402

METRICS = ("MAD", "MSE", "Grad", "Conn", "dtSSD")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--size", type=_size, default=(48, 64), help="crop HxW")
    p.add_argument("--window", type=int, default=4)
    p.add_argument("--with-refs", type=int, default=1, help="reference frames of the second run")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--train-clips", type=int, default=4)
    p.add_argument("--train-frames", type=int, default=12)
    p.add_argument("--val-clips", type=int, default=2)
    p.add_argument("--val-frames", type=int, default=8)
    p.add_argument("--height", type=int, default=64)
    p.add_argument("--width", type=int, default=80)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    p.add_argument("--out", type=Path, default=ROOT / "test-artifacts" / "train_matting")
    p.add_argument("--plot", type=Path, help="write the loss curves there (PNG)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    data = args.out / "data"
    val = args.out / "val"
    synthetic.write_dataset(data, clips=args.train_clips, height=args.height, width=args.width,
                            frames=args.train_frames, seed=1_000_000)  # fmt: skip
    vh, vw = args.size
    synthetic.write_dataset(val, clips=args.val_clips, height=vh, width=vw, frames=args.val_frames, seed=args.seed)
    init = write_random_checkpoint(args.out / "init.pth", seed=0)

    runs = {}
    for refs in (0, args.with_refs):
        run = args.out / f"run_refs{refs}"
        shutil.rmtree(run, ignore_errors=True)
        cfg = TrainMattingConfig(init=str(init), out=str(run), data=str(data), val=str(val), steps=args.steps,
                                 lr=args.lr, lr_warmup=max(1, args.steps // 10), batch=1, accum=1,
                                 window=args.window, refs=refs, size=args.size, dropout_patch=16, warmup=1,
                                 erode=3, dilate=3, mem_every=2, boundary=3, val_every=0, save_every=0,
                                 seed=args.seed, progress=True)  # fmt: skip
        started = time.perf_counter()
        result = train_matting(cfg)
        seconds = time.perf_counter() - started
        runs[refs] = {"result": result, "seconds": seconds}

    block = max(1, args.steps // 10)
    report = {"settings": {k: (list(v) if isinstance(v, tuple) else (str(v) if isinstance(v, Path) else v))
                           for k, v in vars(args).items()}, "runs": {}}  # fmt: skip
    print(f"\nFine-tuning from random weights, {args.steps} steps, window {args.window}, crop "
          f"{args.size[0]}x{args.size[1]}, {args.train_clips} training clips, {args.val_clips} held-out clips of "
          f"{args.val_frames} frames ({torch.get_num_threads()} CPU thread(s))\n")  # fmt: skip
    print("| run | " + " | ".join(f"{m} before | {m} after" for m in METRICS) + " | s/step |")
    print("|---|" + "---|---|" * len(METRICS) + "---|")
    for refs, run in runs.items():
        result = run["result"]
        before, after = result.validations[0], result.validations[-1]
        per_step = sum(h["seconds"] for h in result.history) / len(result.history)
        cells = " | ".join(f"{before[m]:.3f} | {after[m]:.3f}" for m in METRICS)
        print(f"| refs {refs} | {cells} | {per_step:.2f} |")
        losses = [h["loss"] for h in result.history]
        report["runs"][f"refs{refs}"] = {"before": {m: before[m] for m in METRICS},
                                         "after": {m: after[m] for m in METRICS}, "loss": losses,
                                         "seconds": run["seconds"], "seconds_per_step": per_step}  # fmt: skip
    print(f"\nTraining loss, mean over blocks of {block} steps:\n")
    print("| steps | " + " | ".join(f"refs {r}" for r in runs) + " |")
    print("|---|" + "---|" * len(runs))
    for start in range(0, args.steps, block):
        means = []
        for refs in runs:
            part = report["runs"][f"refs{refs}"]["loss"][start : start + block]
            means.append(f"{sum(part) / len(part):.4f}")
        print(f"| {start + 1}-{min(start + block, args.steps)} | " + " | ".join(means) + " |")
    if args.plot:
        curves = {}
        for refs in runs:
            losses = report["runs"][f"refs{refs}"]["loss"]
            # A running mean over a block keeps the curve readable (single windows vary a lot).
            curves[f"refs {refs}"] = [sum(losses[max(0, i - block + 1) : i + 1]) / len(losses[max(0, i - block + 1) :
                                      i + 1]) for i in range(len(losses))]  # fmt: skip
        plot_curves(curves, f"training loss (running mean over {block} steps), random init, synthetic clips",
                    args.plot)  # fmt: skip
        print(f"\nwrote {args.plot}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
