"""One clip through the dual-branch annotation pipeline: the function every executor runs.

Per clip: the video branch (`matte_video` from the first-frame mask), a per-frame segmentation (SAM 2 tracking
from the first mask with `--sam2`, else the video branch's alpha above 0.5, or masks supplied with
`--segmentation`), the image branch (`quality.matte_frames` from that segmentation, or alphas supplied with
`--image-alphas`), both judged by an evaluator (`evaluate_matte`), fused (`fuse_mattes`), the fused matte
judged too, and the outputs written under a temporary name that is renamed when the clip is complete.

A clip is held in memory whole: the frames (12 bytes a pixel) and about nine float32 maps of the clip's size
(branches, segmentation, error maps, fusion map, fused alpha, region): some 48 bytes per pixel and frame,
4.4 GB for 100 frames at 720p. Curation clips are short.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..checkpoint import load_matting_model
from ..engine.validate import check_mask, resolve_device
from ..engine.video import matte_video
from ..io import iter_frames, probe_frames, read_mask, save_alpha, save_png, to_uint8
from ..quality import AnalyticEvaluator, evaluate_matte, frame_scores, fuse_mattes, fusion_map, matte_frames
from ..quality.filters import dilate
from .layout import ClipSource, read_prompts, read_sequence

#: The outputs of a clip: `com/` (the frames as read) and `pha/` (the fused alpha), always; the branches and
#: their error maps on request. Names as `synthetic.write_clip` and the benchmark readers use them.
FRAMES_DIR, ALPHA_DIR = "com", "pha"
BRANCH_DIRS = ("alpha_video", "alpha_image")
ERROR_DIRS = ("err_video", "err_image")
SEG_MASK_FILENAME = "first_frame_seg_mask.png"  # = synthetic.MASK_FILENAME, the benchmark's first-frame mask
#: The clip quality is measured over the subject and a margin of this fraction of the short side around it.
REGION_MARGIN = 0.03
SEG_THRESHOLD = 0.5
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def software_version() -> str:
    """The package version: installed metadata, else the `pyproject.toml` next to the package."""
    try:
        return metadata.version("matanyone2-suite")
    except metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        try:
            found = re.search(r'^version\s*=\s*"([^"]+)"', pyproject.read_text(), re.MULTILINE)
        except OSError:
            found = None
        return found.group(1) if found else "unknown"


@dataclass(frozen=True)
class CurationConfig:
    """Every setting of a run (plain values, so that it travels to Ray workers). `*_sha256` are computed once
    by the driver. `device` "auto" is CUDA when the process sees a GPU, else the CPU."""

    out: str
    weights: str | None = None
    weights_sha256: str | None = None
    evaluator: str = "analytic"  # or a learned evaluator's .safetensors file
    evaluator_sha256: str | None = None
    sam2: str | None = None
    sam2_sha256: str | None = None
    sam2_image_size: int | None = None
    image_alphas: str | None = None
    video_alphas: str | None = None
    segmentation: str | None = None
    device: str = "auto"
    precision: str = "fp32"
    warmup: int = 10
    erode: int = 10
    dilate: int = 10
    max_internal_size: int = -1
    fusion: str = "binary"  # the paper's binary fusion map, or "soft"
    min_quality: float = 0.8
    save_branches: bool = False
    save_errors: bool = False
    threads: int | None = None

    def settings(self) -> dict[str, Any]:
        """What decides a clip's outputs (recorded in `run.json`; a resumed run must have the same)."""
        out = asdict(self)
        for key in ("out", "device", "threads"):  # where and how fast, not what
            out.pop(key)
        for key in ("weights", "evaluator", "sam2"):  # the file's content (sha256) counts, not its path
            if out[key] not in (None, "analytic"):
                out[key] = Path(out[key]).name
        return out


def auto_device(device: str) -> str:
    """`device` itself, or for "auto" the first GPU when this process sees one (a Ray worker sees its own)."""
    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def temp_dir(out: Path, clip_id: str) -> Path:
    """Where a clip's outputs are written before they are renamed to `out/clip_id` (hidden, same folder)."""
    return out / f".{clip_id}.partial"


def subject_region(seg: torch.Tensor) -> torch.Tensor:
    """0/1 `[T,H,W]`: the segmentation (> 0.5) dilated by `REGION_MARGIN` of the short side (at least 2 px); a
    frame with no subject counts whole."""
    radius = max(2, round(REGION_MARGIN * min(seg.shape[-2:])))
    region = dilate((seg > SEG_THRESHOLD).float()[:, None], radius)[:, 0]
    empty = region.flatten(1).sum(1) == 0
    region[empty] = 1.0
    return region


def quality_scores(error: torch.Tensor, region: torch.Tensor) -> list[float]:
    """Per-frame quality: 1 - the mean error probability over `region` (`frame_scores` of the masked error
    over that of the region), so 1 = judged reliable everywhere near the subject, 0 = judged wrong there."""
    mean_error = frame_scores(error * region) / frame_scores(region)
    return [1.0 - float(v) for v in mean_error]


def _frame_name(index: int, count: int) -> str:
    # 0000.png like the benchmark and write_clip; wider only for clips beyond 9999 frames, so names still sort.
    return f"{index:0{max(4, len(str(count - 1)))}d}.png"


def _file_entry(path: str, sha256: str | None) -> dict[str, str | None]:
    return {"file": Path(path).name, "sha256": sha256}


def base_record(config: CurationConfig, clip: ClipSource) -> dict[str, Any]:
    """The fields every manifest record has: the clip, its status and reason (filled in later), the software
    version, the weights and the evaluator used."""
    c = config
    return {
        "clip": clip.clip_id,
        "status": None,
        "reason": None,
        "version": software_version(),
        "weights": _file_entry(c.weights, c.weights_sha256) if c.weights else None,
        "evaluator": _file_entry(c.evaluator, c.evaluator_sha256) if c.evaluator != "analytic" else "analytic",
        "sam2": _file_entry(c.sam2, c.sam2_sha256) if c.sam2 else None,
    }


class ClipRunner:
    """Curates clips one at a time with models loaded once (on the first clip that needs them)."""

    def __init__(self, config: CurationConfig):
        self.config = config
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        self.device = resolve_device(auto_device(config.device), name="--device")
        self._model = None
        self._evaluator = None
        self._sam2 = None

    # --------------------------------------------------------------------------------------- models

    @property
    def model(self):
        if self._model is None:
            if self.config.weights is None:
                raise ValueError("--weights is needed: a branch is computed by the matting model")
            self._model = load_matting_model(self.config.weights, device=self.device,
                                             dtype=DTYPES[self.config.precision])  # fmt: skip
        return self._model

    @property
    def evaluator(self):
        if self._evaluator is None:
            if self.config.evaluator == "analytic":
                self._evaluator = AnalyticEvaluator(device=str(self.device))
            else:
                from ..quality import load_evaluator

                self._evaluator = load_evaluator(self.config.evaluator, device=self.device)
        return self._evaluator

    @property
    def sam2(self):
        if self._sam2 is None:
            from ..segmentation.sam2_backend import load_sam2

            self._sam2 = load_sam2(self.config.sam2, device=self.device, image_size=self.config.sam2_image_size)
        return self._sam2

    # ----------------------------------------------------------------------------------------- a clip

    def run(self, clip: ClipSource, progress: Progress | None = None) -> dict[str, Any]:
        """Curate `clip`; returns its manifest record. A clip that cannot be curated is a record with status
        "failed" (or "skipped": no first-frame mask) and the reason; only KeyboardInterrupt propagates (the
        temporary folder is removed first). Outputs go to `out/clip_id` (renamed from `temp_dir` when
        complete; an older folder of that name is replaced)."""
        record = base_record(self.config, clip)
        started = time.perf_counter()
        skip = clip.skip_reason(sam2=self.config.sam2 is not None)
        if clip.problem is not None or skip is not None:
            record.update(status="failed" if clip.problem else "skipped", reason=clip.problem or skip)
            return record
        out = Path(self.config.out)
        tmp = temp_dir(out, clip.clip_id)
        try:
            record.update(self._curate(clip, tmp, progress))
            final = out / clip.clip_id
            if final.exists():  # outputs of an interrupted earlier run, never recorded in the manifest
                shutil.rmtree(final)
            os.replace(tmp, final)
            record["status"] = "done"
        except KeyboardInterrupt:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        except Exception as exc:  # one bad clip must not stop the batch: its reason goes to the manifest
            shutil.rmtree(tmp, ignore_errors=True)
            message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            known = isinstance(exc, (ValueError, OSError, RuntimeError))
            record.update(status="failed", reason=message if known and message else f"{type(exc).__name__}: {message}")
        record["timings"] = {**record.get("timings", {}), "total": round(time.perf_counter() - started, 3)}
        return record

    def _curate(self, clip: ClipSource, tmp: Path, progress: Progress | None) -> dict[str, Any]:
        c = self.config
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[name] = round(timings.get(name, 0.0) + now - clock, 3)
            clock = now

        def stage(name: str) -> Callable[[int, int], None] | None:
            return None if progress is None else (lambda done, total: progress(name, done, total))

        # 1. everything cheap first: headers, the mask, the sizes
        count, size = probe_frames(clip.frames, name=f"{clip.clip_id} frames")
        first_mask = None
        if clip.mask is not None:
            first_mask = check_mask(read_mask(clip.mask), size, name=f"mask {clip.mask}")
        prompts = read_prompts(clip.prompts, size) if first_mask is None else None
        _, frame_iter = iter_frames(clip.frames)
        frames = []
        for t, frame in enumerate(frame_iter):
            if tuple(frame.shape[:2]) != tuple(size):
                raise ValueError(f"{clip.frames}: frame {t} is {frame.shape[0]}x{frame.shape[1]} (HxW) but the clip is "
                                 f"{size[0]}x{size[1]}")  # fmt: skip
            frames.append(frame)
        if not frames:
            raise ValueError(f"{clip.frames}: no frames could be decoded")
        frames = torch.stack(frames)
        count, height, width = frames.shape[:3]
        supplied = {}
        for key, name in (("video_alphas", "--video-alphas"), ("image_alphas", "--image-alphas"),
                          ("segmentation", "--segmentation")):  # fmt: skip
            folder = getattr(c, key)
            if folder is not None:
                supplied[key] = read_sequence(Path(folder) / clip.clip_id, count, size, name=name)
        lap("read")

        # 2. the first mask from prompts, when there is no mask.png (SAM 2 on the first frame, then tracked)
        tracked = None
        if first_mask is None:
            tracked = self.sam2.segment_video(frames, prompts, progress=stage("sam2")).amax(dim=0)
            first_mask = check_mask(tracked[0], size, name=f"the SAM 2 mask of frame 0 from {clip.prompts}")
            lap("segmentation")

        # 3. the video branch
        options = dict(warmup=c.warmup, erode=c.erode, dilate=c.dilate, max_internal_size=c.max_internal_size)
        if "video_alphas" in supplied:
            alpha_video = supplied["video_alphas"]
        else:
            alpha_video = matte_video(self.model, frames, first_mask, progress=stage("video"), **options)
        lap("video")

        # 4. the per-frame segmentation
        if "segmentation" in supplied:
            seg, seg_source = (supplied["segmentation"] > SEG_THRESHOLD).float(), "supplied"
        elif c.sam2 is not None:
            if tracked is None:
                tracked = self.sam2.segment_video(frames, None, masks=(first_mask > SEG_THRESHOLD)[None].float(),
                                                  progress=stage("sam2"))[0]  # fmt: skip
            seg, seg_source = tracked, "sam2"
        else:
            seg, seg_source = (alpha_video > SEG_THRESHOLD).float(), "video_threshold"
        lap("segmentation")

        # 5. the image branch
        if "image_alphas" in supplied:
            alpha_image = supplied["image_alphas"]
        else:
            alpha_image = matte_frames(self.model, frames, seg, progress=stage("image"), **options)
        lap("image")

        # 6. judged, fused, the fusion judged
        err_video = evaluate_matte(frames, alpha_video, seg, evaluator=self.evaluator)
        err_image = evaluate_matte(frames, alpha_image, seg, evaluator=self.evaluator)
        lap("evaluate")
        fused = fuse_mattes(alpha_video, alpha_image, err_video, err_image, binary=c.fusion == "binary")
        taken = fusion_map(err_video, err_image, binary=c.fusion == "binary")
        lap("fuse")
        err_fused = evaluate_matte(frames, fused, seg, evaluator=self.evaluator)
        lap("evaluate")
        region = subject_region(seg)
        scores = {}
        for key, error in (("video", err_video), ("image", err_image), ("fused", err_fused)):
            per_frame = quality_scores(error, region)
            scores[key] = {"mean": sum(per_frame) / count, "per_frame": per_frame,
                           "error_per_frame": [float(v) for v in frame_scores(error)]}  # fmt: skip
        image_per_frame = [float(v) for v in frame_scores(taken)]
        quality = scores["fused"]["mean"]

        # 7. the outputs, under the temporary name
        if tmp.exists():
            shutil.rmtree(tmp)
        series = {FRAMES_DIR: None, ALPHA_DIR: fused}
        if c.save_branches:
            series.update(zip(BRANCH_DIRS, (alpha_video, alpha_image), strict=True))
        if c.save_errors:
            series.update(zip(ERROR_DIRS, (err_video, err_image), strict=True))
        for folder in series:
            (tmp / folder).mkdir(parents=True)
        for t in range(count):
            name = _frame_name(t, count)
            save_png(Image.fromarray(to_uint8(frames[t])), tmp / FRAMES_DIR / name)
            for folder, values in series.items():
                if values is not None:
                    save_alpha(values[t], tmp / folder / name)
        save_alpha((first_mask > SEG_THRESHOLD).float(), tmp / SEG_MASK_FILENAME)
        lap("write")
        return {
            "frames": count,
            "height": height,
            "width": width,
            "first_mask": "mask.png" if clip.mask is not None else "sam2_prompts",
            "segmentation": seg_source,
            "video_branch": "supplied" if "video_alphas" in supplied else "model",
            "image_branch": "supplied" if "image_alphas" in supplied else "model",
            "fusion": c.fusion,
            "scores": scores,
            "quality": quality,
            "image_fraction": sum(image_per_frame) / count,
            "image_fraction_per_frame": image_per_frame,
            "min_quality": c.min_quality,
            "accepted": quality >= c.min_quality,
            "outputs": sorted(series),
            "timings": timings,
        }
