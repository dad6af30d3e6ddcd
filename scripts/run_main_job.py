"""Main job: run the first example workflow headless in a real ComfyUI on a generated sample clip.

    bash scripts/main.sh [--weights FILE] [--base DIR] [--height 240 --width 320 --frames 24 --seed 0 --warmup N]

1. prepares a persistent ComfyUI base folder (default ~/.cache/matanyone2-comfyui/base, or $MA2_COMFY_BASE)
   with this plugin linked into custom_nodes;
2. finds the weights: --weights / $MA2_WEIGHTS, else <base>/models/matanyone/matanyone2.pth, downloading
   the official file there when missing (offline: prints where to put it and stops);
3. writes a synthetic clip with exact ground-truth alpha into <base>/input;
4. runs workflows/matanyone2_matte_video_first_frame_mask.json through ComfyUI's HTTP API, with the
   server's output folder set to ./output, so the foreground video, the alpha frames and transparent
   RGBA frames land in output/main_job/;
5. scores the alpha against the ground truth (MAD, MSE, Grad, dtSSD; "hr" protocol) and writes
   output/main_job/report.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import comfy_graph  # noqa: E402
import comfy_host  # noqa: E402
import comfy_samples  # noqa: E402
from comfy_workflows import MATTE_FIRST_FRAME  # noqa: E402

DEFAULT_BASE = Path.home() / ".cache" / "matanyone2-comfyui" / "base"
JOB_DIR = "main_job"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--weights",
        type=Path,
        default=os.environ.get("MA2_WEIGHTS") or None,
        help="weights file to use instead of <base>/models/matanyone/matanyone2.pth ($MA2_WEIGHTS)",
    )
    parser.add_argument(
        "--base",
        type=Path,
        default=Path(os.environ.get("MA2_COMFY_BASE", DEFAULT_BASE)),
        help=f"ComfyUI base folder (default {DEFAULT_BASE}, or $MA2_COMFY_BASE)",
    )
    parser.add_argument("--output", type=Path, default=comfy_host.ROOT / "output", help="ComfyUI output folder")
    parser.add_argument("--comfyui", type=Path, default=None,
                        help="the ComfyUI tree to run (one of $MA2_HOSTS; default: $COMFYUI_DIR, else the newest)")
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=None, help="override the workflow's warmup passes")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed for the workflow run")
    return parser.parse_args(argv)  # fmt: skip


def resolve_weights(args: argparse.Namespace, base: Path) -> tuple[str, list[str]]:
    """(model_name for the loader widget, extra server arguments) for the chosen weights file."""
    from matanyone2_core import (
        OFFICIAL_WEIGHTS_FILENAME,
        OFFICIAL_WEIGHTS_URL,
        CheckpointError,
        download_official_weights,
    )

    if args.weights is not None:
        weights = args.weights.expanduser().resolve()
        if not weights.is_file():
            raise SystemExit(f"--weights / MA2_WEIGHTS: no such file: {weights}")
        # Expose the file's folder to ComfyUI through the extra_model_paths key 'matanyone'.
        config = base / "ma2_extra_model_paths.yaml"
        config.write_text(f"ma2_main_job:\n  matanyone: {json.dumps(str(weights.parent))}\n")
        return weights.name, ["--extra-model-paths-config", str(config)]

    folder = base / "models" / "matanyone"
    target = folder / OFFICIAL_WEIGHTS_FILENAME
    if not target.is_file():
        print(f"main job: {target} is missing; downloading {OFFICIAL_WEIGHTS_URL}", flush=True)
        last = [0.0]

        def progress(done: int, total: int | None) -> None:
            if time.monotonic() - last[0] > 2 or (total and done == total):
                last[0] = time.monotonic()
                print(f"  {done / 1e6:.1f} MB" + (f" of {total / 1e6:.1f} MB" if total else ""), flush=True)

        try:
            download_official_weights(folder, progress=progress)
        except (CheckpointError, OSError) as error:
            raise SystemExit(
                f"main job: could not download the MatAnyone 2 weights ({error}).\n"
                f"Download {OFFICIAL_WEIGHTS_URL} by hand and put it at\n    {target}\n"
                "or point MA2_WEIGHTS=/path/to/matanyone2.pth (or --weights) at a copy you have."
            ) from error
    return OFFICIAL_WEIGHTS_FILENAME, []


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    host = comfy_host.default_host()
    if args.comfyui is not None:
        host = next((h for h in comfy_host.configured_hosts() if h.comfy_dir.resolve() == args.comfyui.resolve()), None)
        if host is None:
            raise SystemExit(f"main job: --comfyui {args.comfyui} is not one of the hosts in MA2_HOSTS")
    if host is None:
        raise SystemExit("main job: no ComfyUI tree; run through scripts/main.sh (sets MA2_HOSTS)")
    base = comfy_host.prepare_base(args.base.expanduser().resolve())
    model_name, extra = resolve_weights(args, base)

    from matanyone2_core.io import read_mask
    from matanyone2_core.metrics import evaluate_sequence

    sample = comfy_samples.write_sample_inputs(base / "input", args.height, args.width, args.frames, args.seed)
    job_out = args.output.resolve() / JOB_DIR
    shutil.rmtree(job_out, ignore_errors=True)  # only this job's own previous results
    job_out.mkdir(parents=True)

    extra += ["--output-directory", str(args.output.resolve())]
    with comfy_host.ComfyServer(host, base, extra_args=extra) as server:
        info = server.object_info()
        missing = [n for n in comfy_host.OUR_NODES if n not in info]
        if missing:
            raise SystemExit(f"main job: ComfyUI did not load {missing}:\n{server.log_tail()}")
        graph = comfy_graph.ui_to_api(
            comfy_host.load_workflow(comfy_host.WORKFLOWS_DIR / f"{MATTE_FIRST_FRAME}.json"), info
        )
        for node in graph.values():
            inputs = node["inputs"]
            if node["class_type"] == "MA2LoadModel":
                inputs["model_name"] = model_name
            elif node["class_type"] == "MA2MatteVideo" and args.warmup is not None:
                inputs["warmup"] = args.warmup
            elif node["class_type"] in ("SaveImage", "SaveVideo"):
                inputs["filename_prefix"] = inputs["filename_prefix"].replace("matanyone2/", f"{JOB_DIR}/")

        matte_inputs = next(n["inputs"] for n in graph.values() if n["class_type"] == "MA2MatteVideo")

        def report(message: dict) -> None:
            data = message.get("data") or {}
            if message["type"] == "progress" and info.get(graph.get(str(data.get("node")), {}).get("class_type", "")):
                node_type = graph[str(data["node"])]["class_type"]
                print(f"  {node_type}: {data['value']}/{data['max']}", flush=True)

        print(f"main job: ComfyUI {host.version} at {server.url}, base {base}, "
              f"{args.frames} frames {args.height}x{args.width}", flush=True)  # fmt: skip
        started = time.monotonic()
        result = server.run(graph, timeout=args.timeout, on_message=report)
        seconds = time.monotonic() - started
        if result.status != "success":
            error = result.error or {}
            raise SystemExit(
                f"main job: workflow {result.status}: {error.get('exception_message')}\n{server.log_tail()}"
            )

    alpha_files = sorted(job_out.glob("alpha_*.png"))
    videos = sorted(job_out.glob("foreground_*.mp4"))
    rgba_files = sorted(job_out.glob("rgba_*.png"))
    pred = torch.stack([read_mask(p) for p in alpha_files])
    metrics = evaluate_sequence(pred, sample.alpha, protocol="hr")
    summary = {
        "workflow": f"workflows/{MATTE_FIRST_FRAME}.json",
        "comfyui": host.version,
        "clip": {"height": args.height, "width": args.width, "frames": args.frames, "seed": args.seed},
        "matting": {k: v for k, v in matte_inputs.items() if not isinstance(v, list)},
        "weights": model_name if args.weights is None else str(args.weights),
        "seconds": round(seconds, 2),
        "outputs": [str(p) for p in videos + alpha_files + rgba_files],
        "metrics_hr": metrics,
    }
    (job_out / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"main job: {len(videos)} foreground video, {len(alpha_files)} alpha frames and {len(rgba_files)} "
        f"transparent RGBA frames in {job_out} ({seconds:.1f} s)"
    )
    print("alpha error vs. exact ground truth (hr protocol): "
          + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
