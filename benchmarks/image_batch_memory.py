"""Host memory of Matte Video on an IMAGE batch: what the node adds beyond its input and its outputs.

    python benchmarks/image_batch_memory.py [--frames 100 1000] [--height 96] [--width 128]
        [--comfyui DIR] [--foreground-colors frame estimated]

Runs the node's own `execute` inside a ComfyUI tree (default: the test environment's 0.3.75; `--comfyui` for
another), in a fresh process per run, on a synthetic IMAGE batch `[T,H,W,3]` float32 as Load Video gives it.
The peak RSS (VmHWM, sampled as well) is compared with the RSS just after the input batch was made: the extra
is the node's outputs (`alpha` [T,H,W], `foreground` [T,H,W,3], `foreground_straight`, which with
`foreground_colors=frame` is the input itself, not a copy) plus what the engine holds (independent of T). Prints
extra / input size and what the outputs alone account for. A measurement, not a timed test.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests")]
MIB = 2**20


def _rss() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB


def child(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(args.comfyui))
    os.chdir(args.comfyui)
    import comfy.options

    comfy.options.enable_args_parsing()
    sys.argv = [sys.argv[0], "--cpu"]  # ComfyUI's own flag: model management on the CPU
    import torch

    torch.set_num_threads(args.threads)
    spec = importlib.util.spec_from_file_location("matanyone2_plugin", ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])  # fmt: skip
    plugin = importlib.util.module_from_spec(spec)
    sys.modules["matanyone2_plugin"] = plugin
    spec.loader.exec_module(plugin)
    from matanyone2_plugin.nodes.matting import MA2MatteVideo
    from matanyone2_plugin.nodes.models import load_model
    from weights import write_random_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        model = load_model(str(write_random_checkpoint(Path(tmp) / "w.pth")), "fp32", "cpu")
        gen = torch.Generator().manual_seed(0)
        images = torch.rand(args.count, args.height, args.width, 3, generator=gen)
        yy, xx = torch.meshgrid(torch.arange(args.height), torch.arange(args.width), indexing="ij")
        mask = ((((yy - args.height / 2) / (args.height / 3)) ** 2 + ((xx - args.width / 2) / (args.width / 3)) ** 2)
                < 1).float()[None]  # fmt: skip
        before = _rss()
        peak = [before]
        running = True

        def sample() -> None:
            while running:
                peak[0] = max(peak[0], _rss())
                time.sleep(0.005)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        start = time.perf_counter()
        out = MA2MatteVideo.execute(model, images, mask=mask, warmup=0, erode=3, dilate=3,
                                    foreground_colors=args.foreground_colors)  # fmt: skip
        seconds = time.perf_counter() - start
        running = False
        thread.join()
        with open("/proc/self/status") as status:
            hwm = next(float(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM"))
        outputs = [o for o in out.result if isinstance(o, torch.Tensor)]
        unique = {o.untyped_storage().data_ptr(): o.untyped_storage().nbytes() for o in outputs}
        unique.pop(images.untyped_storage().data_ptr(), None)  # an output that is the input is no copy
        print(json.dumps({"input": images.nbytes / MIB, "before": before, "peak": max(peak[0], hwm),
                          "outputs": sum(unique.values()) / MIB, "seconds": seconds}))  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--foreground-colors", nargs="+", default=["frame", "estimated"])
    parser.add_argument("--comfyui", type=Path, default=None, help="ComfyUI tree (default: the test env's)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.comfyui is None:
        env = os.environ.get("MA2_ENV_DIR")
        if not env:
            print("error: set --comfyui or source scripts/activate_env.sh (MA2_ENV_DIR)", file=sys.stderr)
            return 2
        args.comfyui = Path(env) / "ComfyUI"
    if args.count is not None:
        args.foreground_colors = args.foreground_colors[0]
        return child(args)
    print(f"Matte Video on an IMAGE batch of {args.height}x{args.width} frames, CPU, ComfyUI at {args.comfyui}\n")
    print("| T | foreground_colors | input (MiB) | outputs (MiB) | peak - before (MiB) | extra beyond outputs "
          "(MiB) | (peak - before) / input |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for colours in args.foreground_colors:
        for count in args.frames:
            cmd = [sys.executable, __file__, "--count", str(count), "--height", str(args.height), "--width",
                   str(args.width), "--foreground-colors", colours, "--comfyui", str(args.comfyui), "--threads",
                   str(args.threads)]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return 1
            r = json.loads(done.stdout.strip().splitlines()[-1])
            grown = r["peak"] - r["before"]
            print(f"| {count} | {colours} | {r['input']:.0f} | {r['outputs']:.0f} | {grown:.0f} | "
                  f"{grown - r['outputs']:.0f} | {grown / r['input']:.2f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
