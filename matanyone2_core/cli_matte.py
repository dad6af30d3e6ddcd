"""`python -m matanyone2_core matte`: frames + first-frame mask -> alpha and foreground PNGs.

Every input is checked before the first file is written (frame headers, mask and keyframe sizes and
indices, options, device, weights, the output folder), each PNG is written atomically, and Ctrl-C stops
with exit code 130 leaving only complete files.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from .checkpoint import load_matting_model
from .engine.anchors import BLENDS, KEYFRAME_MODES
from .engine.options import MattingOptions
from .engine.validate import check_index, check_kernels, check_keyframes, check_mask, resolve_device
from .io import probe_frames, read_mask, save_alpha, save_foreground
from .streaming import open_source, stream_mattes

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
OUTPUT_KINDS = ("pha", "fgr")

EXIT_OK = 0
EXIT_ERROR = 2  # also argparse's code for a bad command line
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell's convention

EPILOG = """\
exit codes:
  0    every frame was written
  1    an unexpected failure (a bug: Python prints a traceback)
  2    an error, printed as one line "error: ..."; bad input (frames, masks, options, device, weights,
       output folder) is found before anything is written
  130  interrupted (Ctrl-C): the frames written so far are complete files, no partial file is left

An RGBA or LA mask with transparency (a cut-out of the subject) is read by its alpha channel; any other
mask image is read as grey (non-zero = subject). The output folder must not hold frames of another run
(OUT/pha/*.png, OUT/fgr/*.png) unless --overwrite is given, which removes those files first.
"""


class ProgressBar:
    """A one-line text progress bar on stderr."""

    def __init__(self, total: int | None, label: str = "matting"):
        self.total, self.label, self.start = total, label, time.perf_counter()

    def update(self, done: int) -> None:
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        if self.total:
            filled = int(30 * done / self.total)
            bar = f"[{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total}"
        else:
            bar = f"{done} frames"
        sys.stderr.write(f"\r{self.label} {bar} {rate:.2f} fps")
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "matte", help="matte a clip from a first-frame mask", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--frames", required=True, help="folder of frames (sorted by name) or a video file")
    p.add_argument("--mask", required=True, help="first-frame mask image (non-zero = subject, or a cut-out's alpha)")
    p.add_argument("--anchor", type=int, default=0, metavar="INDEX",
                   help="the frame --mask belongs to (default 0); frames before it are matted backward from it, "
                   "reading the clip back by seeking (nothing but a temporary 16-bit alpha file is kept)")
    p.add_argument("--weights", required=True, help="matanyone2.pth / .safetensors (MatAnyone 1 works too)")
    p.add_argument("--out", required=True, help="output folder: pha/0000.png alphas, fgr/0000.png RGBA")
    p.add_argument("--keyframe", action="append", default=[], metavar="INDEX:MASK.png",
                   help="re-prompt with a mask at a later frame (repeatable)")
    p.add_argument("--keyframe-mode", choices=KEYFRAME_MODES, default="reprompt",
                   help="reprompt (official): a keyframe corrects the frames from it on; anchors: the first mask "
                   "and every keyframe are matted in both directions and the passes joined by --blend (holds "
                   "the clip's frames and alphas in memory)")
    p.add_argument("--blend", choices=BLENDS, default="quality",
                   help="join of the two passes in the anchors mode (quality: per pixel, analytic evaluator)")
    p.add_argument("--overwrite", action="store_true",
                   help="remove the frames of an earlier run (OUT/pha/*.png, OUT/fgr/*.png) before writing")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--erode", type=int, default=10)
    p.add_argument("--dilate", type=int, default=10)
    p.add_argument("--max-internal-size", type=int, default=-1)
    p.add_argument("--long-term", action="store_true", help="long-term memory (for long clips)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="cpu, cuda, cuda:N (default: cuda when there is a GPU)")
    p.add_argument("--precision", choices=sorted(DTYPES), default="fp32")
    p.add_argument("--no-foreground", action="store_true", help="write alphas only")
    p.set_defaults(func=run)


def _read_keyframes(specs: list[str], size: tuple[int, int], count: int | None, anchor: int) -> dict[int, torch.Tensor]:
    """`INDEX:MASK.png` specs -> {index: mask}, every index and mask checked against the clip."""
    masks: dict[int, torch.Tensor] = {}
    labels: dict[int, str] = {}
    for spec in specs:
        index, sep, path = spec.partition(":")
        if not sep or not index.isdigit() or not path:
            raise ValueError(f"--keyframe expects INDEX:MASK.png, got {spec!r}")
        if int(index) in masks:
            raise ValueError(f"--keyframe {int(index)} is given twice")
        masks[int(index)] = read_mask(path)
        labels[int(index)] = f"--keyframe {int(index)} mask {path}"
    # --mask belongs to the anchor frame (--anchor, default 0)
    return check_keyframes(masks, size, count, name="--keyframe", anchor=anchor, labels=labels)


def _check_writable(folder: Path, out: Path) -> None:
    """`folder` (an existing directory) accepts new files: checked by creating and removing a probe file,
    since permission bits say nothing about read-only mounts and root."""
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out} is not writable ({folder}: permission denied)")
    try:
        fd, probe = tempfile.mkstemp(prefix=".ma2-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"--out {out} is not writable ({folder}: {exc.strerror or exc})") from exc


def check_output(out: Path, *, overwrite: bool) -> list[Path]:
    """Check the output folder before anything is written; returns the old frames that --overwrite removes.

    Refuses a file in place of the folder (or of pha/, fgr/), a folder that cannot be written, and old
    frames (pha/*.png, fgr/*.png) unless `overwrite`: new frames are never mixed with stale ones.
    """
    existing = out
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == out else f"is inside {existing}, which is a file"
        raise ValueError(f"--out {out} {where}, not a folder")
    old: list[Path] = []
    if existing == out:
        for kind in OUTPUT_KINDS:
            sub = out / kind
            if sub.exists() and not sub.is_dir():
                raise ValueError(f"--out {out}: {sub} is a file, not a folder")
            if sub.is_dir():
                _check_writable(sub, out)
                old += sorted(sub.glob("*.png"))
    _check_writable(existing, out)
    if old and not overwrite:
        shown = ", ".join(str(p.relative_to(out)) for p in old[:3]) + (", ..." if len(old) > 3 else "")
        raise ValueError(
            f"--out {out} already holds {len(old)} frame file(s) of another run ({shown}); "
            "pass --overwrite to remove them first, or choose another folder"
        )
    return old


def _matte_with_anchors(model, frames, mask, keyframes, options, blend, anchor):
    """The anchors mode needs every frame twice in both orders: the clip is read into memory and matted first
    (with its own progress bar), then (frame, alpha) pairs are handed to the writer."""
    from .engine.video import matte_video

    clip = torch.stack(list(frames))
    bar = ProgressBar(None, label="matting (frame visits, both directions)")

    def on_visit(done: int, total: int) -> None:
        bar.total = total
        bar.update(done)

    alphas = matte_video(model, clip, mask, keyframes=keyframes or None, options=options, keyframe_mode="anchors",
                         blend=blend, anchor=anchor, progress=on_visit)  # fmt: skip
    bar.close()
    return zip(clip, alphas, strict=True)


def run(args: argparse.Namespace) -> int:
    # 1. everything that can be checked cheaply, before the weights are read and before any file is written
    options = MattingOptions(
        warmup=args.warmup, erode=args.erode, dilate=args.dilate,
        max_internal_size=args.max_internal_size, long_term=args.long_term,
    )
    device = resolve_device(args.device, name="--device")
    probe_frames(args.frames, name="--frames")  # every frame header (or the video) readable, one size
    source = open_source(args.frames)
    count, size = source.count, source.size
    mask = check_mask(read_mask(args.mask), size, name=f"--mask {args.mask}")
    anchor = check_index(args.anchor, name="--anchor", count=count)
    keyframes = _read_keyframes(args.keyframe, size, count, anchor)
    check_kernels(options, size)
    out = Path(args.out)
    old_frames = check_output(out, overwrite=args.overwrite)
    model = load_matting_model(args.weights, device=device, dtype=DTYPES[args.precision])

    # 2. writing starts here
    for path in old_frames:
        path.unlink()
    kinds = OUTPUT_KINDS[:1] if args.no_foreground else OUTPUT_KINDS
    for kind in kinds:
        (out / kind).mkdir(parents=True, exist_ok=True)
    if args.keyframe_mode == "anchors":
        frames = _matte_with_anchors(model, source.frames(), mask, keyframes, options, args.blend, anchor)
        bar = ProgressBar(count, label="writing")
    else:
        label = "matting" if anchor == 0 else "matting (backward, then forward)"
        bar = ProgressBar(count + (1 if anchor > 0 else 0), label=label)

        def on_step(done: int, total: int) -> None:
            bar.update(done)

        steps = stream_mattes(model, source, mask, anchor=anchor, keyframes=keyframes, options=options,
                              progress=on_step)  # fmt: skip
        frames = ((frame, alpha) for _, frame, alpha in steps)
    done = 0
    interrupted = False
    try:
        for index, frame in enumerate(frames):
            frame, alpha = frame
            save_alpha(alpha, out / "pha" / f"{index:04d}.png")
            if not args.no_foreground:
                save_foreground(frame, alpha, out / "fgr" / f"{index:04d}.png")
            done += 1
            if args.keyframe_mode == "anchors":
                bar.update(done)
    except KeyboardInterrupt:  # save_png has already removed a partial file
        interrupted = True
    finally:
        bar.close()
        source.close()
    if interrupted:
        print(f"interrupted: stopped after {done} frame(s); {out} holds only complete files", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"wrote {done} alpha frames to {out / 'pha'}")
    return EXIT_OK
