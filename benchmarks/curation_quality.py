"""Does the curation score separate good annotations from bad ones? Synthetic clips with exact ground truth.

    OMP_NUM_THREADS=1 python benchmarks/curation_quality.py [--clips 24 --frames 12 --height 144 --width 256]
        [--min-quality 0.8] [--throughput-clips 2] [--work DIR]

No trained matting weights can be had here, and random weights matte nothing, so the quality part feeds
`curate` branches made from the ground truth the ways each branch is known to fail (`quality.degrade`, and the
fusion setting of `quality/validate.py`), through `--video-alphas`, `--image-alphas` and `--segmentation`:

* segmentation: `validate.realistic_segmentation(gt)` (above 0.5, opened 3x3: a segmenter's mask, no strands);
* image branch, every clip: the ground truth with two holes and two background blobs per frame (sharp
  boundary, semantic errors), as in `validate-evaluator`'s fusion check;
* video branch of a *good* clip: the ground truth with segmentation-like hard edges within 4 px (at 256 px) of
  the segmentation's edge (temporally stable, coarse boundary: what the paper's video branch does well and
  badly);
* video branch of a *bad* clip (the video branch failed, e.g. from a wrong first mask): `drift` (the good clip's
  video matte sliding sideways, 2 px more per frame at 256 px, 1 px at 144), `eroded` (its boundary pulled in
  twice by `degrade`'s erosion: 4 px at 144x256, an eroded first mask) or `wrong_part` (holes and blobs of its
  own, plus the hard edges).

`curate` judges both branches with the analytic evaluator, fuses them and scores the clip; the clips it
accepts (quality >= `--min-quality`) and rejects are then scored against the ground truth with the official
MAD and Grad (`metrics.evaluate_sequence`, "hr" scales: MAD x1e3, Grad /1e3), for the fused matte and for each
branch. A second, timed pass runs the real pipeline (both branches by the network, official settings:
warm-up 10, erode/dilate 10) with random weights on `--throughput-clips` clips: its speed is that of real
weights, its mattes are meaningless. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from matanyone2_core.__main__ import main as cli  # noqa: E402
from matanyone2_core.curation import quality_scores, subject_region  # noqa: E402
from matanyone2_core.io import read_mask, read_rgb, to_uint8  # noqa: E402
from matanyone2_core.metrics import evaluate_sequence  # noqa: E402
from matanyone2_core.quality import degrade, evaluate_matte  # noqa: E402
from matanyone2_core.quality.validate import boundary_band, realistic_segmentation  # noqa: E402
from matanyone2_core.synthetic import make_clip  # noqa: E402

BAD_KINDS = ("drift", "eroded", "wrong_part")


def _save_sequence(folder: Path, values: torch.Tensor) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for t, v in enumerate(values):
        Image.fromarray(to_uint8(v)).save(folder / f"{t:04d}.png")


def _read_sequence(folder: Path) -> torch.Tensor:
    return torch.stack([read_mask(p) for p in sorted(folder.glob("*.png"))])


def _shift(alpha: torch.Tensor, pixels_per_frame: int) -> torch.Tensor:
    """Frame t translated right by t * pixels_per_frame (the vacated columns empty)."""
    out = torch.zeros_like(alpha)
    for t in range(alpha.shape[0]):
        d = min(t * pixels_per_frame, alpha.shape[-1])
        out[t, :, d:] = alpha[t, :, : alpha.shape[-1] - d]
    return out


def branches(gt: torch.Tensor, kind: str, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(segmentation, video branch, image branch) for a clip's ground truth `[T,H,W]` (see the docstring)."""
    scale = min(gt.shape[-2:]) / 256
    seg = realistic_segmentation(gt)
    coarse = torch.where(boundary_band(seg, max(1, round(4 * scale))) > 0, degrade.degrade(gt, "hard_edges"), gt)
    image = degrade.degrade(degrade.degrade(gt, "holes", seed=seed), "blobs", seed=seed + 1)
    if kind == "good":
        video = coarse
    elif kind == "drift":
        video = _shift(coarse, max(1, round(2 * scale)))
    elif kind == "eroded":
        video = degrade.degrade(degrade.degrade(coarse, "eroded"), "eroded")
    elif kind == "wrong_part":
        video = degrade.degrade(degrade.degrade(coarse, "holes", seed=seed + 2), "blobs", seed=seed + 3)
    else:
        raise ValueError(f"unknown clip kind {kind!r}")
    return seg, video, image


def _scores(pred: torch.Tensor, gt: torch.Tensor) -> dict[str, float]:
    s = evaluate_sequence(pred, gt, protocol="hr")
    return {"MAD": s["MAD"], "Grad": s["Grad"]}


def _mean(rows: list[dict], key: str) -> float:
    return float(np.mean([r[key] for r in rows])) if rows else float("nan")


def _ground_truth_quality(clips_in: Path, seg_root: Path, gts: Path, kinds: list[str]) -> list[float]:
    """The curation score of the exact ground truth of each clip (what a perfect annotation gets)."""
    out = []
    for c in range(len(kinds)):
        clip_id = f"clip_{c:04d}"
        frames = torch.stack([read_rgb(p) for p in sorted((clips_in / clip_id / "frames").glob("*.png"))])
        seg, gt = _read_sequence(seg_root / clip_id), _read_sequence(gts / clip_id)
        scores = quality_scores(evaluate_matte(frames, gt, seg), subject_region(seg))
        out.append(float(np.mean(scores)))
    return out


def _rows(out: Path, gts: Path, kinds: list[str]) -> list[dict]:
    records = {r["clip"]: r for r in map(json.loads, (out / "manifest.jsonl").read_text().splitlines())}
    rows = []
    for c, kind in enumerate(kinds):
        clip_id = f"clip_{c:04d}"
        r = records[clip_id]
        gt = _read_sequence(gts / clip_id)
        row = {"clip": clip_id, "kind": kind, "quality": r["quality"], "accepted": r["accepted"],
               "image_fraction": r["image_fraction"]}  # fmt: skip
        for name, folder in (("fused", "pha"), ("video", "alpha_video"), ("image", "alpha_image")):
            s = _scores(_read_sequence(out / clip_id / folder), gt)
            row[f"MAD_{name}"], row[f"Grad_{name}"] = s["MAD"], s["Grad"]
        rows.append(row)
    return rows


def _spearman(x: list[float], y: list[float]) -> float:
    rx, ry = (np.argsort(np.argsort(v)).astype(float) for v in (x, y))
    return float(np.corrcoef(rx, ry)[0, 1])


def _tables(rows: list[dict], min_quality: float) -> list[str]:
    lines = [
        "| set | clips | bad clips | quality | image taken % | MAD fused | MAD video | MAD image | Grad fused | "
        "Grad video | Grad image |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    sets = [("accepted", [r for r in rows if r["accepted"]]), ("rejected", [r for r in rows if not r["accepted"]]),
            ("all", rows)]  # fmt: skip
    sets += [(f"kind: {k}", [r for r in rows if r["kind"] == k]) for k in ("good", *BAD_KINDS)]
    for name, subset in sets:
        bad = sum(r["kind"] != "good" for r in subset)
        lines.append(
            f"| {name} | {len(subset)} | {bad} | {_mean(subset, 'quality'):.4f} | "
            f"{100 * _mean(subset, 'image_fraction'):.1f} | **{_mean(subset, 'MAD_fused'):.2f}** | "
            f"{_mean(subset, 'MAD_video'):.2f} | {_mean(subset, 'MAD_image'):.2f} | "
            f"**{_mean(subset, 'Grad_fused'):.3f}** | {_mean(subset, 'Grad_video'):.3f} | "
            f"{_mean(subset, 'Grad_image'):.3f} |"
        )
    lines += ["", "| --min-quality | accepted | bad accepted | good rejected | MAD fused, accepted | "
              "MAD fused, rejected |", "|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    qualities = sorted(r["quality"] for r in rows)
    thresholds = sorted({min_quality, *np.quantile(qualities, [0.25, 0.5, 0.75]).round(4).tolist()})
    for q in thresholds:
        acc = [r for r in rows if r["quality"] >= q]
        rej = [r for r in rows if r["quality"] < q]
        lines.append(f"| {q:.4f} | {len(acc)} | {sum(r['kind'] != 'good' for r in acc)} | "
                     f"{sum(r['kind'] == 'good' for r in rej)} | {_mean(acc, 'MAD_fused'):.2f} | "
                     f"{_mean(rej, 'MAD_fused'):.2f} |")  # fmt: skip
    good_q = [r["quality"] for r in rows if r["kind"] == "good"]
    bad_q = [r["quality"] for r in rows if r["kind"] != "good"]
    auc = sum((g > b) + 0.5 * (g == b) for g in good_q for b in bad_q) / max(len(good_q) * len(bad_q), 1)
    quality = [r["quality"] for r in rows]
    lines += ["", f"Spearman correlation of quality with the fused matte's real MAD: "
              f"**{_spearman(quality, [r['MAD_fused'] for r in rows]):+.3f}**, with its Grad: "
              f"**{_spearman(quality, [r['Grad_fused'] for r in rows]):+.3f}** (-1 = quality ranks the real errors "
              f"perfectly). P(a good clip scores above a bad one) = **{auc:.3f}**."]  # fmt: skip
    return lines


def run(args: argparse.Namespace, work: Path) -> str:
    clips_in, seqs, gts = work / "in", {k: work / k for k in ("video", "image", "seg")}, work / "gt"
    kinds = ["good" if c % 2 == 0 else BAD_KINDS[(c // 2) % len(BAD_KINDS)] for c in range(args.clips)]
    started = time.perf_counter()
    for c, kind in enumerate(kinds):
        clip_id = f"clip_{c:04d}"
        clip = make_clip(args.height, args.width, args.frames, seed=args.seed + c)
        frames8 = torch.from_numpy(to_uint8(clip.frames))
        (clips_in / clip_id / "frames").mkdir(parents=True)
        for t, frame in enumerate(frames8.numpy()):
            Image.fromarray(frame).save(clips_in / clip_id / "frames" / f"{t:04d}.png")
        gt = torch.from_numpy(to_uint8(clip.alpha)).float() / 255  # 8-bit, as benchmark ground truth is
        seg, video, image = branches(gt, kind, seed=args.seed * 1000 + 10 * c)
        Image.fromarray(to_uint8(seg[0])).save(clips_in / clip_id / "mask.png")
        for key, values in (("video", video), ("image", image), ("seg", seg)):
            _save_sequence(seqs[key] / clip_id, values)
        _save_sequence(gts / clip_id, gt)
    made = time.perf_counter() - started

    header = (
        f"{args.clips} synthetic clips x {args.frames} frames at {args.height}x{args.width} (seed {args.seed}): "
        f"{kinds.count('good')} good, " + ", ".join(f"{kinds.count(k)} {k}" for k in BAD_KINDS) + "; analytic "
        f"evaluator, --min-quality {args.min_quality}. MAD x1e3, Grad /1e3 against the exact ground truth (8-bit); "
        "quality = 1 - mean error probability near the subject (the curation score)."
    )
    lines = [header, ""]
    reference = _ground_truth_quality(clips_in, seqs["seg"], gts, kinds)
    lines += [f"The exact ground truth itself, judged the same way, scores quality {np.mean(reference):.4f} "
              f"(clips {min(reference):.4f}..{max(reference):.4f}).", ""]  # fmt: skip
    oracle_seconds = 0.0
    for fusion in ("soft", "binary"):
        out = work / f"out_{fusion}"
        argv = ["curate", "--input", str(clips_in), "--out", str(out), "--video-alphas", str(seqs["video"]),
                "--image-alphas", str(seqs["image"]), "--segmentation", str(seqs["seg"]), "--save-branches",
                "--min-quality", str(args.min_quality), "--device", "cpu", "--threads", "1",
                "--fusion", fusion]  # fmt: skip
        started = time.perf_counter()
        if cli(argv) != 0:
            raise RuntimeError("curate failed")
        oracle_seconds = time.perf_counter() - started
        rows = _rows(out, gts, kinds)
        lines += [f"**{fusion} fusion map**", ""] + _tables(rows, args.min_quality) + [""]
        if args.per_clip:
            lines += ["| clip | kind | quality | accepted | MAD fused | MAD video | MAD image |",
                      "|---|---|---:|---|---:|---:|---:|"]  # fmt: skip
            lines += [f"| {r['clip']} | {r['kind']} | {r['quality']:.4f} | {r['accepted']} | {r['MAD_fused']:.2f} | "
                      f"{r['MAD_video']:.2f} | {r['MAD_image']:.2f} |" for r in rows]  # fmt: skip
            lines.append("")

    # throughput of the real pipeline (both branches by the network) with random weights
    from weights import write_random_checkpoint

    weights = write_random_checkpoint(work / "matanyone2.pth", seed=0)
    sub = work / "in_speed"
    sub.mkdir()
    n = min(args.throughput_clips, args.clips)
    for c in range(n):
        shutil.copytree(clips_in / f"clip_{c:04d}", sub / f"clip_{c:04d}")
    argv = ["curate", "--input", str(sub), "--out", str(work / "out_speed"), "--weights", str(weights),
            "--device", "cpu", "--threads", "1"]  # fmt: skip
    started = time.perf_counter()
    if cli(argv) != 0:
        raise RuntimeError("curate (throughput pass) failed")
    model_seconds = time.perf_counter() - started
    speed = {r["clip"]: r for r in map(json.loads, (work / "out_speed" / "manifest.jsonl").read_text().splitlines())}
    stage = {k: sum(r["timings"].get(k, 0.0) for r in speed.values()) for k in
             ("read", "video", "segmentation", "image", "evaluate", "fuse", "write")}  # fmt: skip
    total_frames = args.clips * args.frames
    lines += [
        f"Throughput on the CPU (1 thread, {args.height}x{args.width}, {args.frames} frames per clip; "
        f"clip generation took {made:.1f} s and is not counted):",
        "",
        "| pass | clips | frames | seconds | frames/s | clips/h |",
        "|---|---:|---:|---:|---:|---:|",
        f"| supplied branches, binary fusion (evaluate x3, fuse, I/O) | {args.clips} | {total_frames} | "
        f"{oracle_seconds:.1f} | "
        f"{total_frames / oracle_seconds:.2f} | {3600 * args.clips / oracle_seconds:.0f} |",
        f"| network, both branches (warm-up 10, random weights) | {n} | {n * args.frames} | {model_seconds:.1f} | "
        f"{n * args.frames / model_seconds:.3f} | {3600 * n / model_seconds:.1f} |",
        "",
        "Network pass, seconds per stage (all its clips): "
        + ", ".join(f"{k} {v:.1f}" for k, v in stage.items()) + ".",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--height", type=int, default=144)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-quality", type=float, default=0.8)
    parser.add_argument("--throughput-clips", type=int, default=2)
    parser.add_argument("--per-clip", action="store_true", help="also print one row per clip")
    parser.add_argument("--work", type=Path, help="keep the clips and outputs here (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.clips < 2 or args.frames < 1 or args.throughput_clips < 1:
        parser.error("--clips must be >= 2 (good and bad ones), --frames and --throughput-clips >= 1")
    torch.set_num_threads(1)
    if args.work is not None:
        if args.work.exists() and any(args.work.iterdir()):
            parser.error(f"--work {args.work} is not empty")
        args.work.mkdir(parents=True, exist_ok=True)
        print(run(args, args.work), end="")
    else:
        with tempfile.TemporaryDirectory(prefix="curation-bench-") as tmp:
            print(run(args, Path(tmp)), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
