"""The input folder of a curation run: one sub-folder per clip, found and described without reading pixels.

    DIR/<clip_id>/frames/*.png|jpg...   the clip's frames (sorted by name), or
    DIR/<clip_id>/<any>.mp4|mov|...      one video file instead of frames/
    DIR/<clip_id>/mask.png               the first frame's mask (non-zero = subject, or a cut-out's alpha)
    DIR/<clip_id>/prompts.json           SAM 2 clicks/boxes on the first frame, used when there is no mask.png
                                         and --sam2 is given

Per-frame sequences supplied from outside (`--image-alphas`, `--video-alphas`, `--segmentation`) live in
`SEQ_DIR/<clip_id>/`, one image per frame, sorted by name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..io import VIDEO_SUFFIXES, frame_files, read_mask
from ..segmentation.prompts import ObjectPrompt, build_prompts

FRAMES_FOLDER = "frames"
MASK_FILENAME = "mask.png"
PROMPTS_FILENAME = "prompts.json"
PROMPT_KEYS = ("positive", "negative", "boxes")


@dataclass(frozen=True)
class ClipSource:
    """One clip of the input folder. `frames` is a folder of images or a video file; `problem` says why the
    clip cannot be curated at all (its folder holds no frames, or two candidates), found at discovery."""

    clip_id: str
    folder: Path
    frames: Path | None
    mask: Path | None
    prompts: Path | None
    problem: str | None = None

    def skip_reason(self, *, sam2: bool) -> str | None:
        """Why the clip is skipped (no first-frame mask to start from), or None when it can be curated."""
        if self.mask is not None:
            return None
        if self.prompts is None:
            return f"no {MASK_FILENAME} (and no {PROMPTS_FILENAME}) in {self.folder}"
        if not sam2:
            return f"no {MASK_FILENAME} in {self.folder}; its {PROMPTS_FILENAME} needs --sam2 to make one"
        return None


def _frames_of(folder: Path) -> tuple[Path | None, str | None]:
    frames_dir = folder / FRAMES_FOLDER
    videos = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if frames_dir.is_dir():
        if videos:
            return None, f"{folder} holds both {FRAMES_FOLDER}/ and a video ({videos[0].name}); keep one of them"
        return frames_dir, None
    if len(videos) > 1:
        names = ", ".join(v.name for v in videos[:3])
        return None, f"{folder} holds {len(videos)} video files ({names}); a clip folder holds one"
    if not videos:
        return None, f"{folder} has no {FRAMES_FOLDER}/ folder and no video file ({', '.join(sorted(VIDEO_SUFFIXES))})"
    return videos[0], None


def discover_clips(root: str | Path) -> list[ClipSource]:
    """The clips of `root` (its sub-folders, sorted by name; hidden ones ignored). A folder that is not a
    clip (no frames) is still returned, with its `problem`, so that it is reported and not silently lost."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--input {root}: no such folder")
    clips = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        frames, problem = _frames_of(folder)
        mask = folder / MASK_FILENAME
        prompts = folder / PROMPTS_FILENAME
        clips.append(ClipSource(folder.name, folder, frames, mask if mask.is_file() else None,
                                prompts if prompts.is_file() else None, problem))  # fmt: skip
    if not clips:
        raise ValueError(f"--input {root} holds no clip folders ({root}/<clip_id>/frames/ or a video + mask.png)")
    return clips


def read_prompts(path: Path, size: tuple[int, int]) -> list[ObjectPrompt]:
    """The prompts of `prompts.json`: an object with any of "positive", "negative" (points in any format
    `segmentation.prompts.parse_points` reads, e.g. `[{"x": 10, "y": 20}]`) and "boxes" (`parse_boxes`:
    `[x0, y0, x1, y1]` or `{"x", "y", "width", "height"}`), pixels of the first frame. Several objects (point
    groups or boxes) are tracked separately and their masks joined into one subject."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not readable: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(data, dict) or not set(data) & set(PROMPT_KEYS) or set(data) - set(PROMPT_KEYS):
        raise ValueError(f"{path}: expected a JSON object with keys among {list(PROMPT_KEYS)}, got "
                         f"{sorted(data) if isinstance(data, dict) else type(data).__name__}")  # fmt: skip
    names = tuple(f"{path} {key}" for key in PROMPT_KEYS)
    return build_prompts(data.get("positive"), data.get("negative"), data.get("boxes"), size=size, names=names)


def read_sequence(folder: Path, count: int, size: tuple[int, int], *, name: str) -> torch.Tensor:
    """`[T,H,W]` float in 0..1 from one grey image per frame in `folder` (sorted by name; `read_mask` rules),
    checked to be `count` images of `size`; a ValueError names the folder and the problem."""
    if not folder.is_dir():
        raise ValueError(f"{name}: no folder {folder} for this clip")
    files = frame_files(folder)
    if len(files) != count:
        raise ValueError(f"{name}: {folder} holds {len(files)} image(s) for a clip of {count} frames")
    out = torch.empty(count, *size, dtype=torch.float32)
    for t, path in enumerate(files):
        image = read_mask(path)
        if tuple(image.shape) != tuple(size):
            raise ValueError(f"{name}: {path} is {image.shape[0]}x{image.shape[1]} (HxW) but the frames are "
                             f"{size[0]}x{size[1]}")  # fmt: skip
        out[t] = image
    return out
