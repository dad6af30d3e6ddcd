"""Soak test of the streaming engine: host and device memory over a long MattingSession stream.

    python benchmarks/streaming_soak.py [--frames 1000] [--height 96] [--width 128] [--device cpu] [--warmup 0]

Seeded random weights (the tests' stand-in, written to a temporary file) and a synthetic clip generated
frame by frame (a random image drifting a pixel per frame plus noise), so that the clip itself takes no
memory. Prints the host RSS every 50 frames and at the end, the device memory (CUDA: allocated now and
peak; "cpu" otherwise), and a verdict comparing the RSS at frame 200 with the RSS at the last frame.
This is a measurement script, not a timed test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import psutil
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import ellipse_mask  # noqa: E402
from weights import write_random_checkpoint  # noqa: E402

from matanyone2_core import MattingOptions, MattingSession, load_matting_model, resolve_device  # noqa: E402

REPORT_EVERY = 50
COMPARE_AT = 200  # the frame whose RSS the last frame's is compared with (the memory is full long before)
FLAT_MIB = 16.0  # growth below this counts as flat (allocator noise, lazily loaded libraries)


def frame_stream(frames: int, height: int, width: int, seed: int = 1):
    """`[H,W,3]` frames in 0..1: a random image drifting one pixel per frame (wrapping), plus fresh noise."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(2 * height, 2 * width, 3, generator=gen)
    for t in range(frames):
        y, x = t % height, (2 * t) % width
        window = base[y : y + height, x : x + width]
        yield (0.8 * window + 0.2 * torch.rand(window.shape, generator=gen)).clamp(0, 1)


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / 2**20


def device_memory(device: torch.device) -> str:
    if device.type != "cuda":
        return device.type
    now = torch.cuda.memory_allocated(device) / 2**20
    peak = torch.cuda.max_memory_allocated(device) / 2**20
    return f"cuda allocated {now:.1f} MiB, peak {peak:.1f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--long-term", action="store_true", help="long-term memory (consolidation) as well")
    args = parser.parse_args()
    try:
        device = resolve_device(args.device, name="--device")
    except ValueError as exc:
        parser.error(str(exc))
    if args.frames < 1 or args.height < 16 or args.width < 16:
        parser.error("--frames must be >= 1 and --height/--width >= 16")

    with tempfile.TemporaryDirectory(prefix="ma2-soak-") as tmp:
        model = load_matting_model(write_random_checkpoint(Path(tmp) / "matanyone2.pth", seed=0), device=device)
    session = MattingSession(model, MattingOptions(warmup=args.warmup, long_term=args.long_term))
    mask = ellipse_mask(args.height, args.width)
    print(
        f"soak: {args.frames} frames {args.height}x{args.width}, warmup {args.warmup}, long_term {args.long_term}, "
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"RSS at start {rss_mib():.1f} MiB",
        flush=True,
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss_at: dict[int, float] = {}
    start = last = time.perf_counter()
    for index, frame in enumerate(frame_stream(args.frames, args.height, args.width)):
        session.step(frame, mask if index == 0 else None)
        done = index + 1
        if done % REPORT_EVERY == 0 or done == args.frames:
            rss_at[done] = rss_mib()
            now = time.perf_counter()
            fps = (REPORT_EVERY if done % REPORT_EVERY == 0 else done % REPORT_EVERY) / max(now - last, 1e-9)
            last = now
            print(
                f"frame {done:5d}  {now - start:7.1f} s  {fps:6.1f} fps  RSS {rss_at[done]:8.1f} MiB  "
                f"{device_memory(device)}",
                flush=True,
            )
    session.close()
    end = args.frames
    fps = end / (time.perf_counter() - start)
    print(f"end: RSS {rss_mib():.1f} MiB after close, {device_memory(device)}, {fps:.1f} fps overall")
    if COMPARE_AT in rss_at and end > COMPARE_AT:
        growth = rss_at[end] - rss_at[COMPARE_AT]
        per_frame = growth * 1024 / (end - COMPARE_AT)
        verdict = "flat" if growth < FLAT_MIB else "GROWING"
        print(
            f"verdict: {verdict}: RSS {rss_at[COMPARE_AT]:.1f} MiB at frame {COMPARE_AT}, {rss_at[end]:.1f} MiB at "
            f"frame {end} ({growth:+.1f} MiB, {per_frame:+.2f} KiB/frame; flat means < {FLAT_MIB:g} MiB)"
        )
    else:
        print(f"verdict: none (needs more than {COMPARE_AT} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
