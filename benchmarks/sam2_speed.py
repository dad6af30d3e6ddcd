"""SAM 2.1 tiny speed and memory through our `sam2_backend`: seconds per frame for `segment_image` and
`segment_video`, and peak RSS / held per-frame state for short and long clips (pruned, and unpruned to compare).

Random weights (tests/sam2_weights.py): the work per frame does not depend on the weights' values. Needs the
optional `sam2` package. Each memory case runs in a fresh subprocess so that its peak RSS is its own.

    python benchmarks/sam2_speed.py                        # CPU: image sizes 1024 and 512, 1 and 2 objects
    python benchmarks/sam2_speed.py --device cuda --video-frames 16
    python benchmarks/sam2_speed.py --skip-speed --rss-frames 20 80 --rss-size 256
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def _weights(folder: Path) -> Path:
    from sam2_weights import random_sam2_state_dict, write_sam2_checkpoint

    return write_sam2_checkpoint(folder / "sam2.1_hiera_tiny.pt", random_sam2_state_dict("tiny", seed=0))


def _clip(frames: int, height: int, width: int):
    """A random image drifting a pixel per frame, plus noise: `[T,H,W,3]` float in 0..1."""
    import torch

    gen = torch.Generator().manual_seed(1)
    base = torch.rand(height + frames, width + frames, 3, generator=gen)
    clip = torch.stack([base[t : t + height, t : t + width] for t in range(frames)])
    return (0.8 * clip + 0.2 * torch.rand(clip.shape, generator=gen)).clamp(0, 1)


def _prompts(count: int, height: int, width: int):
    import torch

    from matanyone2_core.segmentation.prompts import ObjectPrompt

    spots = [(0.3, 0.4), (0.7, 0.6), (0.5, 0.2), (0.2, 0.8)]
    return [ObjectPrompt(torch.tensor([[x * width, y * height]]), torch.tensor([1])) for x, y in spots[:count]]


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def speed(args: argparse.Namespace, weights: Path) -> list[dict]:
    import torch

    from matanyone2_core.segmentation.sam2_backend import load_sam2

    height, width = args.frame_size
    clip = _clip(args.video_frames, height, width)
    rows = []
    for size in args.sizes:
        segmenter = load_sam2(weights, device=args.device, dtype=getattr(torch, args.dtype), image_size=size)
        segmenter.segment_image(clip[0], _prompts(1, height, width))  # warm-up: predictor set-up, first calls
        for objects in args.objects:
            prompts = _prompts(objects, height, width)
            _sync(args.device)
            start = time.perf_counter()
            for i in range(args.image_repeats):
                segmenter.segment_image(clip[i % len(clip)], prompts)
            _sync(args.device)
            per_image = (time.perf_counter() - start) / args.image_repeats
            start = time.perf_counter()
            segmenter.segment_video(clip, prompts, frame_index=0)
            _sync(args.device)
            per_frame = (time.perf_counter() - start) / len(clip)
            rows.append({"image_size": size, "objects": objects, "image_s": per_image, "video_s_per_frame": per_frame})
            print(
                f"  image_size {size}, {objects} object(s): image {per_image:.2f} s, video {per_frame:.2f} s/frame",
                file=sys.stderr,
                flush=True,
            )
        del segmenter
    return rows


def _rss_mb() -> float:
    """The current resident set size (Linux /proc), else the process's peak so far."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(frames: int, size: int, prune: bool, device: str, weights: Path) -> dict:
    """One clip tracked in this (fresh) process: resident memory before and during tracking, held state."""
    import gc

    import torch

    from matanyone2_core.segmentation.sam2_backend import load_sam2

    height, width = 64, 64  # small frames: the input and output buffers stay negligible next to the state
    segmenter = load_sam2(weights, device=device, image_size=size)
    clip = _clip(frames, height, width)
    seeds = torch.zeros(1, height, width, dtype=torch.bool)
    seeds[0, 16:48, 16:48] = True
    segmenter._track(clip[:2], None, seeds, 0, lambda index, logits: None)  # warm-up: allocator, caches
    gc.collect()
    before = _rss_mb()
    samples = [before]
    segmenter._track(clip, None, seeds, 0, lambda index, logits: samples.append(_rss_mb()), prune=prune)
    stats = segmenter.last_video_stats
    return {
        "frames": frames,
        "image_size": size,
        "pruned": prune,
        "rss_before_mb": before,
        "rss_peak_mb": max(samples),
        "peak_device_mb": torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None,
        "max_stored_outputs": stats.max_stored_outputs,
        "max_stored_mb": stats.max_stored_bytes / 2**20,
    }


def memory(args: argparse.Namespace, weights: Path) -> list[dict]:
    rows = []
    cases = [(frames, True) for frames in args.rss_frames] + [(max(args.rss_frames), False)]
    for frames, prune in cases:
        command = [
            sys.executable,
            __file__,
            "--child-memory",
            str(frames),
            "--rss-size",
            str(args.rss_size),
            "--device",
            args.device,
            "--weights",
            str(weights),
        ] + ([] if prune else ["--no-prune"])
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
        print(f"  memory: {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 512], help="model image_size values")
    parser.add_argument("--objects", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--frame-size", type=int, nargs=2, default=[360, 640], metavar=("H", "W"))
    parser.add_argument("--video-frames", type=int, default=4, help="clip length for the video timing")
    parser.add_argument("--image-repeats", type=int, default=2)
    parser.add_argument("--rss-frames", type=int, nargs="+", default=[20, 80])
    parser.add_argument("--rss-size", type=int, default=256)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--child-memory", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--no-prune", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--weights", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child_memory:
        print(json.dumps(memory_child(args.child_memory, args.rss_size, not args.no_prune, args.device, args.weights)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights or _weights(Path(tmp))
        where = (
            torch.cuda.get_device_name()
            if args.device.startswith("cuda")
            else f"CPU, {torch.get_num_threads()} threads"
        )
        print(f"SAM 2.1 tiny (random weights), {where}, torch {torch.__version__}, dtype {args.dtype}\n")
        if not args.skip_speed:
            rows = speed(args, weights)
            height, width = args.frame_size
            print(
                f"Frames {height}x{width}; video: a {args.video_frames}-frame clip from single-click prompts, whole "
                "call / frames (first-frame encoding included).\n"
            )
            print("| image_size | objects | segment_image (s) | segment_video (s/frame) |")
            print("|---:|---:|---:|---:|")
            for row in rows:
                cells = [row["image_size"], row["objects"], f"{row['image_s']:.2f}", f"{row['video_s_per_frame']:.2f}"]
                print("| " + " | ".join(map(str, cells)) + " |")
            print()
        if not args.skip_memory:
            rows = memory(args, weights)
            print(
                f"Memory: 1 object, 64x64 frames, image_size {args.rss_size}; RSS sampled after every frame; held "
                "state = the video predictor's non-conditioning per-frame outputs.\n"
            )
            print(
                "| frames | pruned | RSS before (MB) | peak RSS while tracking (MB) | outputs held | held state (MB) |"
            )
            print("|---:|:---:|---:|---:|---:|---:|")
            for r in rows:
                print(
                    f"| {r['frames']} | {'yes' if r['pruned'] else 'no'} | {r['rss_before_mb']:.0f} | "
                    f"{r['rss_peak_mb']:.0f} | {r['max_stored_outputs']} | {r['max_stored_mb']:.2f} |"
                )


if __name__ == "__main__":
    main()
