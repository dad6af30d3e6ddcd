"""Training clips: window sampling with reference frames, window-consistent augmentation, patch dropout.

Layouts (frames and targets are paired by file stem; `.png`, `.jpg`, ...):

* **Matting** (`--data`, `--val`): every folder under the root that holds `com/` (composited frames) and `pha/`
  (ground-truth alpha, 8-bit grey) is a clip; this is the layout `synthetic.write_dataset` and the VideoMatte
  benchmark use (`root/clip_0000/com/0000.png`, `root/clip_0000/pha/0000.png`, nested folders allowed). An
  optional `first_frame_seg_mask.png` next to `com/` is the first-frame mask validation mattes from.
* **Segmentation only** (`--seg-data`): binary masks (non-zero = subject, every object of a palette PNG
  counts) either in the DAVIS / YouTube-VOS layout `root/JPEGImages/<clip>/*.jpg` + `root/Annotations/<clip>/
  *.png`, or as clip folders holding `images/` + `masks/`. Frames without a mask are skipped (YouTube-VOS
  annotates every 5th frame: its windows then step 5 frames at a time).

A sample is a pure function of (seed, index): `np.random.default_rng([seed, index])` draws everything, so the
stream is reproducible, resumable at any position and identical for any number of loader workers. Drawn per
sample: the source (segmentation with probability `seg_fraction` when both are given), the clip, a temporal
stride in 1..`max_stride`, a window of `window` frames, `refs` reference frames outside the window's span,
then one augmentation for all of them (window and references alike): a crop of `size` at a zoom drawn in
`scale` (1 = the crop spans the frame's short side, 2 = a quarter of it), a horizontal flip (p = 0.5), a
colour jitter (brightness, contrast, saturation factors in 1 +- `jitter`). Last, `patch_dropout` on the
references only: a `dropout_ratio` fraction of their `dropout_patch`-pixel patches is blanked (RGB and alpha 0)
so that the network cannot copy the references and must keep following the window.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..io import IMAGE_SUFFIXES
from ..synthetic import MASK_FILENAME

MATTING = 0
SEGMENTATION = 1
KIND_NAMES = {MATTING: "matting", SEGMENTATION: "segmentation"}
CROP_TRIES = 10  # crops drawn until the first frame's mask is not empty


@dataclass(frozen=True)
class ClipFiles:
    """One clip: paired frame and target files (alpha for matting, a binary mask for segmentation)."""

    name: str
    frames: tuple[Path, ...]
    targets: tuple[Path, ...]
    kind: int
    first_mask: Path | None = None

    def __len__(self) -> int:
        return len(self.frames)


def _images(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}


def _pair(name: str, frames_dir: Path, targets_dir: Path, kind: int, first_mask: Path | None = None) -> ClipFiles:
    frames, targets = _images(frames_dir), _images(targets_dir)
    stems = [s for s in frames if s in targets]
    return ClipFiles(name, tuple(frames[s] for s in stems), tuple(targets[s] for s in stems), kind, first_mask)


def _check_root(root: str | Path, flag: str) -> Path:
    path = Path(root)
    if not path.exists():
        raise ValueError(f"{flag} {root}: no such folder")
    if not path.is_dir():
        raise ValueError(f"{flag} {root}: not a folder")
    return path


def find_matting_clips(root: str | Path, *, flag: str = "--data") -> list[ClipFiles]:
    """Every clip (a folder with `com/` and `pha/`) under `root`, sorted by path; ValueError naming `flag` when
    the folder is missing or holds no clip."""
    base = _check_root(root, flag)
    clips = []
    for folder, dirs, _ in os.walk(base):
        here = Path(folder)
        if "com" in dirs and "pha" in dirs:
            mask = here / MASK_FILENAME
            name = str(here.relative_to(base)) if here != base else base.name
            clip = _pair(name, here / "com", here / "pha", MATTING, mask if mask.is_file() else None)
            if len(clip):
                clips.append(clip)
            dirs[:] = []  # a clip folder holds no further clips
        else:
            dirs.sort()
    if not clips:
        raise ValueError(f"{flag} {root}: no matting clips; expected clip folders holding com/ (frames) and "
                         "pha/ (ground-truth alphas) with files of the same names, as synthetic.write_dataset "
                         "writes")  # fmt: skip
    return clips


def find_segmentation_clips(root: str | Path, *, flag: str = "--seg-data") -> list[ClipFiles]:
    """Every clip under `root` in the DAVIS / YouTube-VOS layout (`JPEGImages/<clip>/`, `Annotations/<clip>/`)
    or as folders holding `images/` + `masks/`; ValueError naming `flag` when there is none."""
    base = _check_root(root, flag)
    clips = []
    if (base / "JPEGImages").is_dir() and (base / "Annotations").is_dir():
        for video in sorted(p for p in (base / "JPEGImages").iterdir() if p.is_dir()):
            masks = base / "Annotations" / video.name
            if masks.is_dir():
                clip = _pair(video.name, video, masks, SEGMENTATION)
                if len(clip):
                    clips.append(clip)
    else:
        for folder, dirs, _ in os.walk(base):
            here = Path(folder)
            if "images" in dirs and "masks" in dirs:
                name = str(here.relative_to(base)) if here != base else base.name
                clip = _pair(name, here / "images", here / "masks", SEGMENTATION)
                if len(clip):
                    clips.append(clip)
                dirs[:] = []
            else:
                dirs.sort()
    if not clips:
        raise ValueError(f"{flag} {root}: no segmentation clips; expected JPEGImages/<clip>/ + Annotations/<clip>/ "
                         "(DAVIS / YouTube-VOS) or clip folders holding images/ + masks/ with files of the same "
                         "names")  # fmt: skip
    return clips


def read_image(path: Path) -> torch.Tensor:
    """RGB `[H,W,3]` float32 in 0..1 (8-bit / 255), or ValueError naming the file."""
    try:
        with Image.open(path) as im:
            return torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0)
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable image: {exc}") from exc


def read_target(path: Path, kind: int) -> torch.Tensor:
    """An alpha (8-bit grey / 255) or, for segmentation, a 0/1 mask (non-zero index or grey) `[H,W]` float32."""
    try:
        with Image.open(path) as im:
            if kind == SEGMENTATION:
                values = np.asarray(im if im.mode in ("P", "L", "I", "1") else im.convert("L"))
                return torch.from_numpy((values != 0).astype(np.float32))
            return torch.from_numpy(np.asarray(im.convert("L"), dtype=np.float32) / 255.0)
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable image: {exc}") from exc


def patch_dropout(
    images: torch.Tensor, alphas: torch.Tensor, ratio: float, patch: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Blank `round(ratio * n)` of the `n` patches (`patch` x `patch` grid from the top-left, the last row and
    column clipped) of each image `[R,H,W,3]` and its alpha `[R,H,W]`: RGB and alpha are 0 there.

    Returns (images, alphas, kept `[R,H,W]` bool). The patches are drawn from `rng` without replacement,
    independently for each image.
    """
    r, h, w = alphas.shape
    gh, gw = math.ceil(h / patch), math.ceil(w / patch)
    count = int(round(ratio * gh * gw))
    kept = torch.ones(r, gh * gw, dtype=torch.bool)
    for i in range(r):
        if count:
            kept[i, torch.from_numpy(rng.choice(gh * gw, size=count, replace=False))] = False
    kept = kept.view(r, gh, gw).repeat_interleave(patch, 1).repeat_interleave(patch, 2)[:, :h, :w]
    return images * kept[..., None], alphas * kept, kept


@dataclass(frozen=True)
class WindowSpec:
    """How windows are drawn and augmented (see the module docstring; the defaults are the CLI's)."""

    window: int = 8
    refs: int = 1
    size: tuple[int, int] = (480, 480)
    max_stride: int = 2
    scale: tuple[float, float] = (1.0, 2.0)
    flip: bool = True
    jitter: float = 0.2
    dropout_ratio: float = 0.5
    dropout_patch: int = 32
    seg_fraction: float = 0.5

    @property
    def frames_needed(self) -> int:
        return self.window + self.refs


def _usable(clips: list[ClipFiles], spec: WindowSpec, flag: str, root: str | Path) -> list[ClipFiles]:
    usable = [c for c in clips if len(c) >= spec.frames_needed]
    if not usable:
        longest = max(clips, key=len)
        raise ValueError(f"{flag} {root}: --window {spec.window} with --refs {spec.refs} needs clips of at least "
                         f"{spec.frames_needed} frames; the longest ({longest.name}) has {len(longest)}")  # fmt: skip
    return usable


class WindowSamples(torch.utils.data.Dataset):
    """Training samples; `dataset[i]` is a dict of tensors, a pure function of (`seed`, `i`).

    Keys: `frames` `[T,h,w,3]`, `alphas` `[T,h,w]` (ground-truth alpha, or the 0/1 mask for segmentation
    samples), `first_mask` `[h,w]` (the first frame's alpha >= 0.5, or its mask), `ref_images` `[R,h,w,3]` and
    `ref_alphas` `[R,h,w]` (after patch dropout), `kind` (MATTING or SEGMENTATION), `index`. Clips shorter
    than `window + refs` frames are left out (`skipped` names them); none long enough is a ValueError.
    """

    def __init__(
        self,
        matting: list[ClipFiles],
        segmentation: list[ClipFiles],
        spec: WindowSpec,
        *,
        seed: int = 0,
        length: int = 1 << 62,
        roots: tuple[str, str] = ("--data", "--seg-data"),
    ) -> None:
        if not matting and not segmentation:
            raise ValueError("no training clips")
        self.spec, self.seed, self.length = spec, seed, length
        self.matting = _usable(matting, spec, "--data", roots[0]) if matting else []
        self.segmentation = _usable(segmentation, spec, "--seg-data", roots[1]) if segmentation else []
        kept = {id(c) for c in self.matting + self.segmentation}
        self.skipped = [c.name for c in matting + segmentation if id(c) not in kept]

    def __len__(self) -> int:
        return self.length

    def _draw_clip(self, rng: np.random.Generator) -> ClipFiles:
        use_seg = bool(self.segmentation) and (not self.matting or rng.random() < self.spec.seg_fraction)
        pool = self.segmentation if use_seg else self.matting
        return pool[int(rng.integers(len(pool)))]

    def indices(self, clip: ClipFiles, rng: np.random.Generator) -> tuple[list[int], list[int]]:
        """(window frame indices, reference frame indices) drawn for `clip`."""
        spec, n = self.spec, len(clip)
        stride = int(rng.integers(1, spec.max_stride + 1))
        while stride > 1 and (spec.window - 1) * stride + 1 + spec.refs > n:
            stride -= 1
        span = (spec.window - 1) * stride + 1
        start = int(rng.integers(0, n - span + 1))
        window = list(range(start, start + span, stride))
        outside = [i for i in range(n) if i < start or i >= start + span]
        refs = sorted(int(i) for i in rng.choice(outside, size=spec.refs, replace=False)) if spec.refs else []
        return window, refs

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        spec = self.spec
        rng = np.random.default_rng([self.seed, int(index)])
        clip = self._draw_clip(rng)
        window, refs = self.indices(clip, rng)
        order = window + refs
        images = torch.stack([read_image(clip.frames[i]) for i in order])
        targets = torch.stack([_checked_target(clip, i, images.shape[1:3]) for i in order])
        images, targets = augment(images, targets, spec, rng, clip.kind)
        t = spec.window
        frames, alphas = images[:t], targets[:t]
        ref_images, ref_alphas = images[t:], targets[t:]
        if spec.refs and spec.dropout_ratio > 0:
            ref_images, ref_alphas, _ = patch_dropout(ref_images, ref_alphas, spec.dropout_ratio,
                                                      spec.dropout_patch, rng)  # fmt: skip
        return {"frames": frames.contiguous(), "alphas": alphas.contiguous(), "first_mask": (alphas[0] >= 0.5).float(),
                "ref_images": ref_images.contiguous(), "ref_alphas": ref_alphas.contiguous(),
                "kind": torch.tensor(clip.kind), "index": torch.tensor(int(index))}  # fmt: skip


def _checked_target(clip: ClipFiles, i: int, size: torch.Size) -> torch.Tensor:
    target = read_target(clip.targets[i], clip.kind)
    if tuple(target.shape) != tuple(size):
        raise ValueError(f"{clip.targets[i]}: {tuple(target.shape)} (H, W) but the frame {clip.frames[i].name} is "
                         f"{tuple(size)}")  # fmt: skip
    return target


def augment(
    images: torch.Tensor, targets: torch.Tensor, spec: WindowSpec, rng: np.random.Generator, kind: int = MATTING
) -> tuple[torch.Tensor, torch.Tensor]:
    """One crop/zoom, flip and colour jitter drawn from `rng`, applied alike to every frame `[N,H,W,3]` and
    target `[N,H,W]` (targets: bilinear, masks thresholded back to 0/1). The crop position is redrawn (up to
    CROP_TRIES times) while the first target would be empty. Returns tensors at `spec.size`."""
    n, h, w = targets.shape
    ch, cw = spec.size
    fit = max(ch / h, cw / w)  # the zoom at which the crop spans the frame's short side
    for _ in range(CROP_TRIES):
        zoom = fit * float(rng.uniform(*spec.scale))
        bh, bw = min(h, max(1, round(ch / zoom))), min(w, max(1, round(cw / zoom)))
        y0, x0 = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
        if bool((targets[0, y0 : y0 + bh, x0 : x0 + bw] >= 0.5).any()):
            break
    x = torch.cat([images[:, y0 : y0 + bh, x0 : x0 + bw].permute(0, 3, 1, 2),
                   targets[:, None, y0 : y0 + bh, x0 : x0 + bw]], dim=1)  # fmt: skip
    if (bh, bw) != (ch, cw):
        x = F.interpolate(x, size=(ch, cw), mode="bilinear", align_corners=False, antialias=(bh > ch or bw > cw))
    if spec.flip and rng.random() < 0.5:
        x = x.flip(-1)
    rgb, target = x[:, :3], x[:, 3]
    if spec.jitter > 0:
        brightness, contrast, saturation = (1 + float(rng.uniform(-spec.jitter, spec.jitter)) for _ in range(3))
        rgb = rgb * brightness
        rgb = (rgb - 0.5) * contrast + 0.5
        grey = 0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3]
        rgb = grey + (rgb - grey) * saturation
    target = (target >= 0.5).float() if kind == SEGMENTATION else target.clamp(0, 1)
    return rgb.clamp(0, 1).permute(0, 2, 3, 1), target


@dataclass
class HeldOutClip:
    """A validation clip in memory: frames `[T,H,W,3]`, ground truth `[T,H,W]`, first-frame mask `[H,W]`."""

    name: str
    frames: torch.Tensor
    alphas: torch.Tensor
    first_mask: torch.Tensor


def load_held_out(root: str | Path, *, max_frames: int | None = None, flag: str = "--val") -> list[HeldOutClip]:
    """The matting clips under `root` read into memory (the first `max_frames` frames of each); the first
    mask is the clip's `first_frame_seg_mask.png` (non-zero = subject) or else its first alpha >= 0.5."""
    clips = []
    for files in find_matting_clips(root, flag=flag):
        count = len(files) if max_frames is None else min(len(files), max_frames)
        frames = torch.stack([read_image(p) for p in files.frames[:count]])
        alphas = torch.stack([_checked_target(files, i, frames.shape[1:3]) for i in range(count)])
        if files.first_mask is not None:
            first = (read_target(files.first_mask, SEGMENTATION) > 0).float()
            if tuple(first.shape) != tuple(alphas.shape[1:]):
                raise ValueError(f"{files.first_mask}: {tuple(first.shape)} (H, W) but the frames are "
                                 f"{tuple(alphas.shape[1:])}")  # fmt: skip
        else:
            first = (alphas[0] >= 0.5).float()
        if not bool(first.any()):
            raise ValueError(f"{flag} {root}: clip {files.name} has an empty first-frame mask")
        clips.append(HeldOutClip(files.name, frames, alphas, first))
    return clips
