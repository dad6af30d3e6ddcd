"""Training and held-out data for the evaluator: (frame, predicted alpha, segmentation, error labels).

Sources are (image, ground-truth alpha[, segmentation]) at a working resolution: a P3M-10k-style folder, a
generic `images/` + `alphas/` folder, or the project's synthetic generator (exact alpha, no download). A
training sample is drawn from the source with a generator seeded by (seed, sample index), so the stream is a
pure function of its position (exact resume, any number of loader workers):

1. a source image; the predicted alpha is the ground truth degraded by one of `degrade.DEGRADATIONS` (chosen
   uniformly; degraded at the working resolution, where its sizes scale with the short side), the ground
   truth itself (`clean_fraction`: the evaluator must leave a correct matte alone), or the matting network's
   prediction (`matting_fraction`, when predictions were cached: `cache_matting_predictions`);
2. the segmentation is the source's own mask, else `validate.realistic_segmentation` (ground truth above
   0.5, opened 3x3: a segmenter's mask);
3. labels are `degrade.error_labels(pred, gt)["label"]` (9x9 patch MAD > 0.04 or Grad > 0.05), computed on
   the whole frame; then a random `crop` x `crop` window (crop a multiple of 16) and a random horizontal flip.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ...io import IMAGE_SUFFIXES, to_uint8
from ...synthetic import make_clip
from .. import degrade
from ..evaluate import Evaluator, evaluate_matte
from ..validate import FLAG_THRESHOLD, _Counts, realistic_segmentation

KINDS = tuple(degrade.DEGRADATIONS)
CLEAN = "clean"
MATTING = "matting"
SYNTHETIC_SEED_BASE = 1_000_000  # training clips never share a seed with the validation clips (seed + c)

# P3M-10k names its alpha mattes "mask"; its test splits hold "blurred_image" (P) or "original_image" (NP).
LAYOUTS = (
    ("P3M-10k root", ("train", "blurred_image"), ("train", "mask")),
    ("P3M-10k split", ("blurred_image",), ("mask",)),
    ("P3M-10k split", ("original_image",), ("mask",)),
    ("images/alphas", ("images",), ("alphas",)),
)
SEG_FOLDERS = ("segmentation", "segmentations")


@dataclass
class Example:
    """One source image at the working resolution: RGB `[H,W,3]` (8-bit values / 255), alpha `[H,W]`,
    segmentation `[H,W]` (0/1)."""

    image: torch.Tensor
    alpha: torch.Tensor
    seg: torch.Tensor


def _seed(*parts: int) -> int:
    """A 63-bit generator seed from integers (stable across runs and platforms)."""
    digest = hashlib.sha256(",".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _quantise(frames: torch.Tensor) -> torch.Tensor:
    # Real inputs are 8-bit; so are the validation suite's frames.
    return torch.from_numpy(to_uint8(frames)).float() / 255.0


class SyntheticSources:
    """`clips` x `frames` frames of the project's generator at `height` x `width` (seeds
    `SYNTHETIC_SEED_BASE + 1000 * seed + c`), cached in `cache_dir` (generation is slow: seconds per frame)."""

    def __init__(
        self,
        *,
        clips: int,
        frames: int,
        height: int,
        width: int,
        seed: int,
        cache_dir: str | Path | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.spec = {"clips": clips, "frames": frames, "height": height, "width": width, "seed": seed}
        cache = None
        if cache_dir is not None:
            cache = Path(cache_dir) / f"synthetic_{clips}x{frames}_{height}x{width}_seed{seed}.pt"
        if cache is not None and cache.is_file():
            data = torch.load(cache, map_location="cpu", weights_only=True)
            images, alphas = data["images"].float() / 255.0, data["alphas"]
        else:
            images, alphas = [], []
            for c in range(clips):
                clip = make_clip(height, width, frames, seed=SYNTHETIC_SEED_BASE + 1000 * seed + c)
                images.append(_quantise(clip.frames))
                alphas.append(clip.alpha)
                if progress is not None:
                    progress(c + 1, clips)
            images, alphas = torch.cat(images), torch.cat(alphas)
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_name(f".{cache.name}.{os.getpid()}.part")
                torch.save({"images": torch.round(images * 255).to(torch.uint8), "alphas": alphas}, tmp)
                tmp.replace(cache)
        self.images, self.alphas = images, alphas
        self.segs = realistic_segmentation(alphas)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> Example:
        return Example(self.images[index], self.alphas[index], self.segs[index])

    def key(self, index: int) -> str:
        return f"synthetic_{index:05d}"

    def describe(self) -> str:
        s = self.spec
        return (f"synthetic: {s['clips']} clips x {s['frames']} frames at {s['height']}x{s['width']} "
                f"(make_clip seeds {SYNTHETIC_SEED_BASE + 1000 * s['seed']}..)")  # fmt: skip


def find_layout(root: str | Path) -> tuple[str, Path, Path, Path | None]:
    """(layout name, image folder, alpha folder, segmentation folder or None) of a data folder, or a
    ValueError naming the folder and the layouts it could have."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"--data {root}: no such folder (or pass 'synthetic')")
    for name, images, alphas in LAYOUTS:
        image_dir, alpha_dir = root.joinpath(*images), root.joinpath(*alphas)
        if image_dir.is_dir() and alpha_dir.is_dir():
            seg_dir = next((image_dir.parent / s for s in SEG_FOLDERS if (image_dir.parent / s).is_dir()), None)
            return name, image_dir, alpha_dir, seg_dir
    raise ValueError(
        f"{root}: not a known matting data layout; expected train/blurred_image/*.jpg + train/mask/*.png "
        "(P3M-10k), blurred_image/ (or original_image/) + mask/ (a P3M-10k split), or images/ + alphas/, "
        "each optionally with a segmentation/ folder beside them"
    )


def _files(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()}


def _resize_short(im: Image.Image, short: int, resample: int) -> Image.Image:
    w, h = im.size
    scale = short / min(w, h)
    return im.resize((max(short, round(w * scale)), max(short, round(h * scale))), resample)


class FolderSources:
    """Image/alpha pairs of a data folder (`find_layout`), matched by file stem, read on demand and resized so
    that the short side is `short_side` (degradation sizes scale with it)."""

    def __init__(self, root: str | Path, *, short_side: int, limit: int | None = None) -> None:
        self.root = Path(root)
        self.layout, image_dir, alpha_dir, seg_dir = find_layout(root)
        images, alphas = _files(image_dir), _files(alpha_dir)
        segs = _files(seg_dir) if seg_dir is not None else {}
        lonely = sorted(set(images) ^ set(alphas))
        if lonely:
            raise ValueError(f"{self.root}: {len(lonely)} file(s) without a partner in {image_dir.name}/ and "
                             f"{alpha_dir.name}/ (matched by name): {', '.join(lonely[:5])}")  # fmt: skip
        if not images:
            raise ValueError(f"{self.root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {image_dir}")
        if seg_dir is not None and set(segs) != set(images):
            missing = sorted(set(images) - set(segs))
            raise ValueError(f"{seg_dir}: the segmentation folder must hold one mask per image; "
                             f"{len(missing)} missing: {', '.join(missing[:5])}")  # fmt: skip
        stems = sorted(images)[:limit]
        self.items = [(s, images[s], alphas[s], segs.get(s)) for s in stems]
        self.short_side = short_side

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Example:
        stem, image_path, alpha_path, seg_path = self.items[index]
        try:
            with Image.open(image_path) as im:
                rgb = _resize_short(im.convert("RGB"), self.short_side, Image.BICUBIC)
            with Image.open(alpha_path) as im:
                alpha_im = im.getchannel("A") if "A" in im.getbands() else im.convert("L")
                alpha_im = _resize_short(alpha_im, self.short_side, Image.BILINEAR)
            seg = None
            if seg_path is not None:
                with Image.open(seg_path) as im:
                    seg = _resize_short(im.convert("L"), self.short_side, Image.NEAREST)
        except (OSError, SyntaxError, ValueError) as exc:  # PIL's UnidentifiedImageError is an OSError
            raise ValueError(f"{image_path.parent.parent}: {stem} is not a readable image pair: {exc}") from exc
        if alpha_im.size != rgb.size:
            raise ValueError(f"{alpha_path}: alpha is {alpha_im.size}, its image {image_path.name} {rgb.size} (WxH)")
        image = torch.from_numpy(np.asarray(rgb, dtype=np.uint8).astype(np.float32) / 255.0)
        alpha = torch.from_numpy(np.asarray(alpha_im, dtype=np.uint8).astype(np.float32) / 255.0)
        if seg is None:
            mask = realistic_segmentation(alpha[None])[0]
        else:
            mask = torch.from_numpy((np.asarray(seg, dtype=np.uint8) > 127).astype(np.float32))
        return Example(image, alpha, mask)

    def key(self, index: int) -> str:
        return self.items[index][0]

    def describe(self) -> str:
        return f"{self.root} ({self.layout} layout, {len(self)} images, short side {self.short_side})"


def cache_matting_predictions(sources, model, cache_dir: str | Path, *, tag: str,
                              progress: Callable[[int, int], None] | None = None) -> Path:  # fmt: skip
    """Run the matting network (`matte_frames`: each image matted alone from its segmentation) on every
    source image once and keep the alphas as 8-bit PNGs in `cache_dir/matting_<tag>/` (skipping those already
    there), so that training samples can use them from any loader worker. Returns that folder."""
    from ..image_branch import matte_frames

    folder = Path(cache_dir) / f"matting_{tag}"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(len(sources)):
        target = folder / f"{sources.key(i)}.png"
        if not target.is_file():
            ex = sources[i]
            alpha = matte_frames(model, ex.image[None], ex.seg[None])[0]
            tmp = target.with_name(f".{target.name}.part")
            Image.fromarray(to_uint8(alpha)).save(tmp, format="PNG")
            tmp.replace(target)
        if progress is not None:
            progress(i + 1, len(sources))
    return folder


class TrainingSamples(torch.utils.data.Dataset):
    """Sample `i` as a dict: `image` `[3,c,c]` (0..1), `alpha` (the prediction), `seg`, `label` (bool)
    `[c,c]` and `kind` (index into `kinds`); a pure function of (`seed`, `i`). See the module docstring."""

    def __init__(
        self,
        sources,
        *,
        crop: int,
        seed: int,
        clean_fraction: float = 0.1,
        matting_dir: str | Path | None = None,
        matting_fraction: float = 0.0,
        flip: bool = True,
    ) -> None:
        if len(sources) == 0:
            raise ValueError("no training images")
        self.sources, self.crop, self.seed = sources, crop, seed
        self.clean_fraction, self.flip = clean_fraction, flip
        self.matting_dir = Path(matting_dir) if matting_dir is not None else None
        self.matting_fraction = matting_fraction if matting_dir is not None else 0.0
        self.kinds = (*KINDS, CLEAN, MATTING)

    def __len__(self) -> int:
        return 1 << 62  # an endless stream; the sampler says which positions are read

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        gen = torch.Generator().manual_seed(_seed(self.seed, index))
        j = int(torch.randint(len(self.sources), (1,), generator=gen))
        ex = self.sources[j]
        u = float(torch.rand((), generator=gen))
        kind_seed = int(torch.randint(1 << 31, (1,), generator=gen))
        if u < self.matting_fraction:
            kind = MATTING
            with Image.open(self.matting_dir / f"{self.sources.key(j)}.png") as im:
                pred = torch.from_numpy(np.asarray(im.convert("L"), dtype=np.uint8).astype(np.float32) / 255.0)
        elif u < self.matting_fraction + self.clean_fraction:
            kind, pred = CLEAN, ex.alpha
        else:
            kind = KINDS[int(torch.randint(len(KINDS), (1,), generator=gen))]
            pred = degrade.degrade(ex.alpha[None], kind, seed=kind_seed)[0]
        label = degrade.error_labels(pred[None], ex.alpha[None])["label"][0]
        h, w = ex.alpha.shape
        c = self.crop
        if h < c or w < c:
            raise ValueError(f"training image {self.sources.key(j)} is {h}x{w}, smaller than the crop {c}")
        top = int(torch.randint(h - c + 1, (1,), generator=gen))
        left = int(torch.randint(w - c + 1, (1,), generator=gen))
        window = (slice(top, top + c), slice(left, left + c))
        sample = {"image": ex.image[window].permute(2, 0, 1), "alpha": pred[window], "seg": ex.seg[window],
                  "label": label[window]}  # fmt: skip
        if self.flip and bool(torch.rand((), generator=gen) < 0.5):
            sample = {k: v.flip(-1) for k, v in sample.items()}
        sample = {k: v.contiguous() for k, v in sample.items()}
        sample["kind"] = torch.tensor(self.kinds.index(kind))
        return sample


class HeldOut:
    """A fixed validation set scored like `validate.run_validation`'s degradation table: every item's ground
    truth degraded each known way (seeds `seed*1000 + item*10 + k`), labelled by `degrade.error_labels`,
    judged by the evaluator (flag = error > 0.5); plus the ground truth itself (every flag a false alarm).
    Built once (the candidates and labels are kept), so that periodic validation costs evaluation only.
    For synthetic clips it reproduces `run_validation(clips, frames, height, width, seed)` exactly."""

    def __init__(self, items: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], *, seed: int, settings: dict):
        self.settings = settings
        self.items = []
        for c, (images, gt, seg) in enumerate(items):
            candidates = []
            for k, name in enumerate(degrade.DEGRADATIONS):
                pred = degrade.degrade(gt, name, seed=seed * 1000 + c * 10 + k)
                candidates.append((name, pred, degrade.error_labels(pred, gt)["label"]))
            self.items.append((images, gt, seg, candidates))

    @classmethod
    def synthetic(cls, *, clips: int, frames: int, height: int, width: int, seed: int) -> HeldOut:
        """The validation suite's clips (`make_clip(height, width, frames, seed + c)`, 8-bit frames)."""
        items = []
        for c in range(clips):
            clip = make_clip(height, width, frames, seed=seed + c)
            items.append((_quantise(clip.frames), clip.alpha, realistic_segmentation(clip.alpha)))
        settings = {"data": "synthetic", "clips": clips, "frames": frames, "height": height, "width": width,
                    "seed": seed}  # fmt: skip
        return cls(items, seed=seed, settings=settings)

    @classmethod
    def folder(cls, sources: FolderSources, *, seed: int) -> HeldOut:
        """Every image of a folder (a one-frame clip each) at the sources' working resolution."""
        items = [(ex.image[None], ex.alpha[None], ex.seg[None]) for ex in (sources[i] for i in range(len(sources)))]
        return cls(items, seed=seed, settings={"data": sources.describe(), "seed": seed})

    def score(self, evaluator: Evaluator) -> dict:
        """Per degradation `precision`, `recall`, `f1`, `labelled`, `flagged` (fractions), `gt_flagged`, and
        `mean_f1` over the degradations."""
        counts = {name: _Counts() for name in degrade.DEGRADATIONS}
        gt_counts = _Counts()
        for images, gt, seg, candidates in self.items:
            error = evaluate_matte(images, gt, seg, evaluator=evaluator)
            gt_counts.add(error > FLAG_THRESHOLD, torch.zeros_like(gt, dtype=torch.bool))
            for name, pred, labels in candidates:
                counts[name].add(evaluate_matte(images, pred, seg, evaluator=evaluator) > FLAG_THRESHOLD, labels)
        rows = {name: c.row() for name, c in counts.items()}
        return {"degradations": rows, "gt_flagged": gt_counts.row()["flagged"],
                "mean_f1": sum(r["f1"] for r in rows.values()) / len(rows), "settings": self.settings}  # fmt: skip


def score_markdown(scores: dict, *, title: str) -> str:
    """A validation score (`HeldOut.score`) as a Markdown table."""
    lines = [
        title,
        "",
        f"Flagged on the ground truth: {100 * scores['gt_flagged']:.2f} %; mean F1 {scores['mean_f1']:.3f}.",
        "",
        "| degradation | labelled % | flagged % | precision | recall | F1 |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in scores["degradations"].items():
        lines.append(f"| {name} | {100 * r['labelled']:.1f} | {100 * r['flagged']:.1f} | {r['precision']:.2f} | "
                     f"{r['recall']:.2f} | **{r['f1']:.2f}** |")  # fmt: skip
    return "\n".join(lines) + "\n"
