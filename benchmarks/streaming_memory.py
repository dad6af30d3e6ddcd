"""Host memory of the streaming path against clip length: peak RSS for 300, 3,000 and 10,000 frames.

    python benchmarks/streaming_memory.py [--frames 300 3000 10000] [--height 1080] [--width 1920]
        [--internal 64] [--anchor 0] [--plot docs/streaming_memory.png]

One synthetic 1080p H.264 clip (a random image drifting across the frame, plus noise) is written once with the
longest length; every run mattes a trimmed window of it (the first N frames) through `matte_to_files`, exactly
what the Matte Video File node runs: decode 1080p, matte at `--internal` pixels on the short side (seeded random
weights: the work per frame, not the quality, is what matters here), scale the alpha back to 1080p, and encode
an alpha and a foreground H.264 video at 1080p. Each run is its own process; its RSS is sampled every 50
frames. Prints a table (peak RSS, RSS at 10 % and at the end of the run, growth per 1,000 frames) and plots RSS
against the frame index. A measurement, not a timed test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

FPS = 25
SAMPLE_EVERY = 50


def write_clip(path: Path, frames: int, height: int, width: int) -> None:
    import av

    gen = np.random.default_rng(0)
    base = gen.integers(0, 256, (height + 64, 2 * width, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "28"}
        for t in range(frames):
            x, y = (7 * t) % width, t % 64
            image = base[y : y + height, x : x + width]
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = t
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def child(args: argparse.Namespace) -> int:
    import psutil
    import torch
    from conftest import ellipse_mask
    from weights import write_random_checkpoint

    from matanyone2_core import MattingOptions, load_matting_model
    from matanyone2_core.streaming import VideoFileSource, matte_to_files

    torch.set_num_threads(args.threads)
    process = psutil.Process()
    with tempfile.TemporaryDirectory() as tmp:
        model = load_matting_model(write_random_checkpoint(Path(tmp) / "w.pth"), device="cpu")
        source = VideoFileSource(args.clip, duration=args.count / FPS - 0.5 / FPS)
        assert source.count == args.count, (source.count, args.count)
        samples: list[tuple[int, float]] = []

        def progress(done: int, total: int) -> None:
            if done % SAMPLE_EVERY == 0 or done == total:
                samples.append((done, process.memory_info().rss / 2**20))

        mask = ellipse_mask(*source.size)
        start = time.perf_counter()
        result = matte_to_files(model, source, mask, Path(tmp), "run", codec="h264", foreground_colors="frame",
                                anchor=args.anchor, options=MattingOptions(warmup=0, erode=15, dilate=15,
                                                                           max_internal_size=args.internal),
                                progress=progress)  # fmt: skip
        seconds = time.perf_counter() - start
        peak = getattr(process.memory_info(), "peak_wset", None)
        with open("/proc/self/status") as status:
            hwm = next(float(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM"))
        print(json.dumps({"frames": result.frames, "seconds": seconds, "samples": samples, "peak": peak or hwm}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[300, 3000, 10000])
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--internal", type=int, default=64, help="max_internal_size of the matting")
    parser.add_argument("--anchor", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--clip", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.count is not None:
        return child(args)

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        tick = time.perf_counter()
        write_clip(clip, max(args.frames), args.height, args.width)
        print(f"wrote a {max(args.frames)}-frame {args.width}x{args.height} clip in {time.perf_counter() - tick:.0f} s",
              file=sys.stderr)  # fmt: skip
        for count in args.frames:
            cmd = [sys.executable, __file__, "--clip", str(clip), "--count", str(count), "--internal",
                   str(args.internal), "--anchor", str(args.anchor), "--threads", str(args.threads)]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return 1
            rows[count] = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{count} frames: {rows[count]['seconds']:.0f} s", file=sys.stderr)

    print(f"streaming {args.width}x{args.height} H.264 -> matte at {args.internal} px -> 2 x H.264 at "
          f"{args.width}x{args.height}, CPU, {args.threads} threads\n")  # fmt: skip
    print("| frames | peak RSS (MiB) | RSS at 10 % (MiB) | RSS at the end (MiB) | growth / 1,000 frames after 10 % "
          "| fps |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for count, row in rows.items():
        samples = row["samples"]
        early = next(rss for done, rss in samples if done >= count // 10)
        late = samples[-1][1]
        span = max(1, samples[-1][0] - count // 10)
        print(f"| {count} | {row['peak']:.0f} | {early:.0f} | {late:.0f} | {(late - early) * 1000 / span:+.1f} MiB | "
              f"{row['frames'] / row['seconds']:.1f} |")  # fmt: skip
    if args.plot:
        from matanyone2_core._plot import plot_curves

        longest = max(rows)
        series = {}
        for count, row in rows.items():
            values = dict(row["samples"])
            series[f"{count} frames"] = [
                values.get(k, float("nan")) if k <= count else float("nan") for k in range(0, longest + 1, SAMPLE_EVERY)
            ]  # fmt: skip
        title = f"host RSS (MiB) against frames matted, streaming {args.width}x{args.height}"
        plot_curves(series, title, args.plot, x_step=SAMPLE_EVERY, zero=True)
        print(f"\nplot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
