"""Speed and memory: our engine against the official MatAnyone 2 code, same weights and clip, each run in its
own process; runs unchanged on a GPU (`--device cuda`) and on the CPU.

    python benchmarks/engine_speed.py [--sizes 288x512 720x1280 1080x1920 2160x3840] [--frames 12]
        [--warmup 10] [--device cpu|cuda] [--precisions fp32 bf16 fp16] [--impls ours fast official]
        [--end-to-end] [--threads N]

Implementations: `ours` (the exact engine), `fast` (ours with the full-softmax memory read and batched pixel
encoding, `encode_batch` 8), `official` (`matanyone2-runtime`, fp32 only; test environment). Figures:
model-step fps (steady state: every frame after the first, whose warm-up is excluded), end-to-end fps
(`--end-to-end`: decode an H.264 clip, matte, encode alpha + foreground H.264, through `matte_to_files`),
peak device memory (CUDA) and peak host RSS, and max / mean |Δα| against ours in fp32 on the same clip.
Seeded random weights (the tests' stand-in): speed and deviation are what they measure, not quality.
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
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def _clip(frames: int, height: int, width: int):
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    from conftest import ellipse_mask, random_frames

    return random_frames(frames, height, width), ellipse_mask(height, width)


def _measure(job: dict) -> dict:
    import torch

    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    from weights import random_state_dict

    torch.set_num_threads(job["threads"])
    device, impl, dtype = torch.device(job["device"]), job["impl"], getattr(torch, DTYPES[job["precision"]])
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    state = random_state_dict(0)
    clip, mask = _clip(job["frames"], job["height"], job["width"])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    alphas = []
    if impl in ("ours", "fast"):
        from matanyone2_core import MattingOptions, MattingSession
        from matanyone2_core.checkpoint import set_precision
        from matanyone2_core.network.model import MatAnyone2Network

        net = MatAnyone2Network()
        net.load_state_dict(state)
        net = set_precision(net.eval(), dtype).to(device)
        fast = impl == "fast"
        # no erode/dilate: the official core gets the mask as it is too (its driver does the morphology)
        options = MattingOptions(warmup=job["warmup"], erode=0, dilate=0, memory_read="full" if fast else "topk",
                                 encode_batch=8 if fast else 1)  # fmt: skip
        session = MattingSession(net, options)
        alphas.append(session.step(clip[0], mask))
        sync()
        start = time.perf_counter()
        batch = options.encode_batch
        for begin in range(1, len(clip), batch):
            chunk = session.prepare(clip[begin : begin + batch]) if fast else clip[begin : begin + batch]
            alphas.extend(session.step(frame) for frame in chunk)
        sync()
    else:
        from oracle import build_official

        core = build_official(state)
        core.network.to(device)
        image, mask255 = clip.permute(0, 3, 1, 2).to(device), (mask * 255).to(device)
        with torch.inference_mode():
            core.step(image[0], mask255, objects=[1])
            for _ in range(job["warmup"] + 1):
                prob = core.step(image[0], first_frame_pred=True)
            alphas.append(core.output_prob_to_mask(prob).float().cpu())
            sync()
            start = time.perf_counter()
            for frame in image[1:]:
                alphas.append(core.output_prob_to_mask(core.step(frame)).float().cpu())
            sync()
    seconds = time.perf_counter() - start
    result = {"step_fps": (len(clip) - 1) / seconds}
    if job.get("end_to_end"):
        result["e2e_fps"] = _end_to_end(job, net if impl != "official" else None)
    result["peak_device_mib"] = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    torch.save(torch.stack([a.float().cpu() for a in alphas]), job["alphas"])
    return result


def _end_to_end(job: dict, net) -> float | None:
    """Decode an H.264 file of the clip, matte, encode alpha + foreground (H.264), frames / s over the run."""
    if net is None:
        return None  # the official code has no streaming driver to compare
    from matanyone2_core import MattingOptions
    from matanyone2_core.io import to_uint8
    from matanyone2_core.streaming import VideoFileSource, VideoSink, matte_to_files

    clip, mask = _clip(job["frames"], job["height"], job["width"])
    fast = job["impl"] == "fast"
    with tempfile.TemporaryDirectory() as tmp:
        sink = VideoSink(Path(tmp) / "in.mp4", fps=25, size=(job["height"], job["width"]))
        for frame in to_uint8(clip):
            sink.write(frame)
        source = VideoFileSource(sink.close())
        options = MattingOptions(warmup=job["warmup"], memory_read="full" if fast else "topk",
                                 encode_batch=8 if fast else 1)  # fmt: skip
        start = time.perf_counter()
        result = matte_to_files(net, source, mask, tmp, "e2e", codec="h264", foreground_colors="frame",
                                options=options, device=job["device"])  # fmt: skip
        return result.frames / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["288x512", "720x1280", "1080x1920", "2160x3840"])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "fp16"], choices=list(DTYPES))
    parser.add_argument("--impls", nargs="+", default=["ours", "fast", "official"])
    parser.add_argument("--end-to-end", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure(json.loads(args.child))))
        return
    sys.path.insert(0, str(ROOT))
    import torch

    from matanyone2_core import resolve_device

    try:
        resolve_device(args.device, name="--device")
    except ValueError as exc:
        parser.error(str(exc))
    threads = args.threads or torch.get_num_threads()
    machine = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {threads} threads"
    print(f"{machine}; {args.frames} frames, warm-up {args.warmup}, random weights\n")
    print("| size | implementation | precision | step fps | end-to-end fps | peak device (MiB) | peak RSS (MiB) "
          "| max \\|Δα\\| vs ours fp32 | mean \\|Δα\\| |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            height, width = (int(v) for v in size.split("x"))
            reference = None
            runs = [(impl, p) for p in args.precisions for impl in args.impls if impl != "official" or p == "fp32"]
            runs.sort(key=lambda r: (r != ("ours", "fp32")))  # the reference first
            if ("ours", "fp32") not in runs:
                runs.insert(0, ("ours", "fp32"))
            for impl, precision in runs:
                path = str(Path(tmp) / f"{size}-{impl}-{precision}.pt")
                job = dict(impl=impl, precision=precision, height=height, width=width, frames=args.frames,
                           warmup=args.warmup, device=args.device, threads=threads, alphas=path,
                           end_to_end=args.end_to_end and impl != "official")  # fmt: skip
                out = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], capture_output=True,
                                     text=True)  # fmt: skip
                if out.returncode:
                    last = (out.stderr.strip().splitlines() or ["?"])[-1]
                    print(f"| {size} | {impl} | {precision} | failed: {last} | | | | | |", flush=True)
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                alphas = torch.load(path)
                if reference is None:
                    reference = alphas
                diff = (alphas - reference).abs()
                e2e = f"{r['e2e_fps']:.2f}" if r.get("e2e_fps") else "–"
                dev = f"{r['peak_device_mib']:.0f}" if r["peak_device_mib"] is not None else "–"
                print(f"| {size} | {impl} | {precision} | {r['step_fps']:.2f} | {e2e} | {dev} | "
                      f"{r['peak_rss_mib']:.0f} | {float(diff.max()):.1e} | {float(diff.mean()):.1e} |",
                      flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
