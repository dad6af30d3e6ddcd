"""Frames per second and peak memory: our engine against the official MatAnyone 2 code, same weights and clip.

Each measurement runs in a fresh subprocess so that peak memory is its own (peak RSS on the CPU, peak
allocated device memory on CUDA). The official code needs `matanyone2-runtime` (test environment only).

    python benchmarks/engine_speed.py --sizes 240x426 480x864 --frames 12 --warmup 10 [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _measure(impl: str, height: int, width: int, frames: int, warmup: int, device: str, dtype: str) -> dict:
    import torch

    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    from conftest import ellipse_mask, random_frames
    from weights import random_state_dict

    torch.set_num_threads(int(torch.get_num_threads()))
    state = random_state_dict(0)
    clip = random_frames(frames, height, width)
    mask = ellipse_mask(height, width)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if impl == "ours":
        from matanyone2_core import MattingOptions, MattingSession
        from matanyone2_core.checkpoint import set_precision
        from matanyone2_core.network.model import MatAnyone2Network

        net = MatAnyone2Network()
        net.load_state_dict(state)
        net = set_precision(net.eval(), getattr(torch, dtype)).to(device)
        session = MattingSession(net, MattingOptions(warmup=warmup))
        step = session.step
        session.step(clip[0], mask)  # first frame, warm-up steps included
        start = time.perf_counter()
        for frame in clip[1:]:
            step(frame)
    else:
        from oracle import build_official

        core = build_official(state)
        core.network.to(device)
        image = clip.permute(0, 3, 1, 2).to(device)
        mask255 = (mask * 255).to(device)
        with torch.inference_mode():
            core.step(image[0], mask255, objects=[1])
            for _ in range(warmup + 1):
                core.step(image[0], first_frame_pred=True)
            start = time.perf_counter()
            for frame in image[1:]:
                core.output_prob_to_mask(core.step(frame)).cpu()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {"impl": impl, "size": f"{height}x{width}", "fps": (frames - 1) / seconds, "peak_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["240x426", "480x864"])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--impls", nargs="+", default=["ours", "official"])
    parser.add_argument("--repeats", type=int, default=2, help="alternate the implementations; keep the best")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure(*json.loads(args.child))))
        return
    sys.path.insert(0, str(ROOT))
    from matanyone2_core import resolve_device

    try:
        resolve_device(args.device, name="--device")  # one clear error here rather than one per child
    except ValueError as exc:
        parser.error(str(exc))
    print(f"| implementation | size | steady-state fps | peak {'VRAM' if args.device == 'cuda' else 'RSS'} (MiB) |")
    print("|---|---|---|---|")
    for size in args.sizes:
        height, width = (int(v) for v in size.split("x"))
        best: dict[str, dict] = {}
        for _ in range(args.repeats):
            for impl in args.impls:
                job = json.dumps([impl, height, width, args.frames, args.warmup, args.device, args.dtype])
                out = subprocess.run([sys.executable, __file__, "--child", job], capture_output=True, text=True)
                if out.returncode:
                    best[impl] = {"error": out.stderr.strip().splitlines()[-1]}
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                if impl not in best or r["fps"] > best[impl].get("fps", 0):
                    best[impl] = r
        for impl, r in best.items():
            if "error" in r:
                print(f"| {impl} | {size} | failed: {r['error']} | |")
            else:
                print(f"| {impl} ({args.dtype}) | {r['size']} | {r['fps']:.2f} | {r['peak_mib']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
