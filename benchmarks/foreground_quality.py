"""Composite quality and speed of foreground estimation: premultiplied frames against estimated F.

On synthetic clips with exact foreground and alpha (`matanyone2_core.synthetic`), every frame is composited
onto a new background with (a) the premultiplied frame, today's output (frame*alpha + bg*(1-alpha)), (b) our
estimated F (`estimate_foreground`: default, without the final projection, and with 10 sweeps on the large
levels instead of 2), (p) pymatting's `estimate_foreground_ml` when installed, and (c) the exact F. Each
composite's error against (c) is reported (MAE and RMSE, x255), over all pixels and inside the
semi-transparent band 0 < alpha < 1, with the error of F itself in the band. Then seconds per frame at 720p
and 1080p on the CPU, and on CUDA when there is a GPU. Prints Markdown.

    python benchmarks/foreground_quality.py [--clips 3 --frames 4 --size 288x512] [--speed-sizes 720x1280 ...]
        [--device cuda] [--threads 1]

On a machine shared with other work, `--threads 1` (and NUMBA_NUM_THREADS=1 for pymatting) gives steadier
CPU figures: with the other cores busy, more threads can be much slower than one (barrier waits).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from matanyone2_core.compositing import composite, parse_color  # noqa: E402
from matanyone2_core.foreground import estimate_foreground  # noqa: E402
from matanyone2_core.synthetic import make_clip  # noqa: E402


def _size(text: str) -> tuple[int, int]:
    h, w = text.lower().split("x")
    return int(h), int(w)


def _background(height: int, width: int) -> torch.Tensor:
    """The new background `[1,H,W,3]`: a diagonal gradient from amber (#F2C14E) to dark blue (#2D3A8C)."""
    ramp = (torch.linspace(0, 1, width)[None, :] * 0.6 + torch.linspace(0, 1, height)[:, None] * 0.4)[..., None]
    return (parse_color("#F2C14E") * (1 - ramp) + parse_color("#2D3A8C") * ramp)[None]


def _pymatting():
    try:
        import pymatting
    except ImportError:
        return None
    return pymatting


def _pymatting_foreground(pymatting, frames: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    out = [
        torch.from_numpy(pymatting.estimate_foreground_ml(f.double().numpy(), a.double().numpy())).float()
        for f, a in zip(frames, alpha, strict=True)
    ]
    return torch.stack(out).clamp(0, 1)


def quality(clips: int, frames: int, height: int, width: int, seed: int) -> str:
    pymatting = _pymatting()
    methods = ["premultiplied frame (today)", "ours (default)", "ours, project=False", "ours, big_iterations=10"]
    if pymatting is not None:
        methods.append(f"pymatting {pymatting.__version__}")
    methods.append("exact F (reference)")
    bg = _background(height, width)
    # Per method: sums of |e| and e^2 over all pixels and over the band.
    sums = {m: [0.0, 0.0, 0.0, 0.0] for m in methods}
    f_err = dict.fromkeys(methods, 0.0)
    n_all = n_band = 0
    for i in range(clips):
        clip = make_clip(height, width, frames, seed=seed + i)
        a = clip.alpha[..., None]
        band = (clip.alpha > 0) & (clip.alpha < 1)
        n_all += clip.alpha.numel() * 3
        n_band += int(band.sum()) * 3
        straight = {
            "ours (default)": estimate_foreground(clip.frames, clip.alpha),
            "ours, project=False": estimate_foreground(clip.frames, clip.alpha, project=False),
            # More sweeps on the large levels, where the defaults (2, pymatting's) stop far from converged.
            "ours, big_iterations=10": estimate_foreground(clip.frames, clip.alpha, big_iterations=10),
            "exact F (reference)": clip.foreground,
        }
        if pymatting is not None:
            straight[f"pymatting {pymatting.__version__}"] = _pymatting_foreground(pymatting, clip.frames, clip.alpha)
        # Read as a foreground colour, today's output is the frame times alpha.
        f_err["premultiplied frame (today)"] += float((clip.frames * a - clip.foreground).abs()[band].sum())
        for name, f in straight.items():
            f_err[name] += float((f - clip.foreground).abs()[band].sum())
        truth = composite(clip.foreground, clip.alpha, bg, premultiplied=False)
        for name in methods:
            if name == "premultiplied frame (today)":
                out = composite(clip.frames * a, clip.alpha, bg, premultiplied=True)
            else:
                out = composite(straight[name], clip.alpha, bg, premultiplied=False)
            err = (out - truth) * 255
            s = sums[name]
            s[0] += float(err.abs().sum())
            s[1] += float((err**2).sum())
            s[2] += float(err.abs()[band].sum())
            s[3] += float((err[band] ** 2).sum())
    lines = [
        f"Composite error against the exact-F composite, x255 ({clips} clips x {frames} frames at {height}x{width}, "
        f"seeds {seed}..{seed + clips - 1}; band = 0 < alpha < 1, {100 * n_band / n_all:.1f}% of the pixels; "
        "new background: an amber-to-blue gradient). The error of a composite is alpha * (F - F_exact) for any "
        "new background (premultiplied: alpha * (frame - F_exact)), so the figures hold for every background. "
        "Last column: |F - F_exact| itself in the band.",
        "",
        "| foreground | MAE all | RMSE all | MAE band | RMSE band | F MAE band |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in methods:
        s = sums[name]
        lines.append(
            f"| {name} | {s[0] / n_all:.3f} | {(s[1] / n_all) ** 0.5:.3f} | {s[2] / n_band:.3f} | "
            f"{(s[3] / n_band) ** 0.5:.3f} | {255 * f_err[name] / n_band:.2f} |"
        )
    return "\n".join(lines)


def _time(fn, repeats: int, sync) -> float:
    fn()  # warm-up (allocations, kernels, JIT)
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def speed(sizes: list[tuple[int, int]], repeats: int, devices: list[str]) -> str:
    pymatting = _pymatting()
    gen = torch.Generator().manual_seed(0)
    lines = [
        f"Seconds per frame (median of {repeats} after a warm-up; CPU: {torch.get_num_threads()} torch threads):",
        "",
        "| size | implementation | device | s / frame |",
        "|---|---|---|---:|",
    ]
    for h, w in sizes:
        frame = torch.rand(1, h, w, 3, generator=gen)
        # A soft disc: the content does not change the work, which is the same fixed sweeps for any alpha.
        yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        radius = torch.hypot(yy - h / 2, xx - w / 2) / (0.35 * min(h, w))
        alpha = (1.5 - radius).clamp(0, 1)
        for device in devices:
            frame_d, alpha_d = frame.to(device), alpha.to(device)
            sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
            for label, big in (("ours", 2), ("ours, big_iterations=10", 10)):
                seconds = _time(
                    lambda f=frame_d, a=alpha_d, d=device, n=big: estimate_foreground(f, a, big_iterations=n, device=d),
                    repeats,
                    sync,
                )
                lines.append(f"| {h}x{w} | {label} | {device} | {seconds:.3f} |")
        if pymatting is not None:
            img, a = frame[0].double().numpy(), alpha.double().numpy()
            seconds = _time(lambda img=img, a=a: pymatting.estimate_foreground_ml(img, a), repeats, lambda: None)
            lines.append(f"| {h}x{w} | pymatting {pymatting.__version__} (numba) | cpu | {seconds:.3f} |")
    if not any(d.startswith("cuda") for d in devices):
        lines += ["", "CUDA: no GPU was available on this machine, so there are no GPU figures."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=3, help="quality clips (0: speed only)")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--size", type=_size, default=(288, 512), help="HxW of the quality clips")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed-sizes", type=_size, nargs="*", default=[(720, 1280), (1080, 1920)])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--device",
        action="append",
        help="cpu, cuda, cuda:1 ... (repeatable; default: cpu, and cuda when a GPU is present)",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    for d in devices:
        if d.startswith("cuda") and not torch.cuda.is_available():
            print(f"--device {d}: no CUDA device is available here; measuring the CPU only\n")
    devices = [d for d in devices if not d.startswith("cuda") or torch.cuda.is_available()] or ["cpu"]
    pymatting = _pymatting()
    print(
        f"torch {torch.__version__}; pymatting {pymatting.__version__ if pymatting else 'not installed'}; "
        f"devices {', '.join(devices)}\n"
    )
    if args.clips > 0:
        print(quality(args.clips, args.frames, *args.size, args.seed))
        print()
    if args.speed_sizes:
        print(speed(args.speed_sizes, args.repeats, devices))


if __name__ == "__main__":
    main()
