"""SAM 2 / SAM 2.1 masks from clicks and boxes, on one image or tracked through a clip (optional `sam2` package).

The PyPI package `sam2==1.1.0` (Meta's code, Apache-2.0) is an optional dependency: importing this module
never imports it, `sam2_available()` says whether it can be used and `require_sam2()` raises an ImportError
with the install command. What we add on top of the package:

* a build that never touches hydra's process-global state (the package's own builders need `GlobalHydra`
  initialised with its config module, which other ComfyUI nodes clear or take over): the package's yaml is
  read with OmegaConf, the fields the official builders override are set by hand, and the model is
  instantiated directly;
* strict, explained checkpoint checks (variant detection, SAM 2.0 vs 2.1, foreign and truncated files) and an
  atomic download of Meta's files, which come without published checksums;
* video from memory: frames are preprocessed one at a time on demand (no JPEG folder on disk), and the video
  predictor's per-frame state is pruned to what tracking reads, so memory stays bounded on long clips.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib
import importlib.util
import logging
import math
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import CheckpointError, check_tensor_values, fetch_to, layout_problems, sha256_of
from ..engine.validate import check_callable, check_frame, check_frames, check_index, describe, resolve_device
from .prompts import ObjectPrompt

logger = logging.getLogger(__name__)

#: Installs the optional package into the Python that runs ComfyUI without pulling a second torch: the build
#: needs the torch already installed (`--no-build-isolation`), and the CUDA extension (hole filling only) is
#: skipped so that the install is a pure-Python wheel that never fails on a missing compiler.
SAM2_INSTALL_COMMAND = "SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2==1.1.0"
SAM2_PACKAGES = ("sam2", "hydra", "omegaconf")  # sam2 and the two config packages our build imports

SAM2_SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_SHOWN_KEYS = 5
# Keys SAM 2.1 added to SAM 2.0 (a 2.0 file lacks them, so it cannot load into a 2.1 config and vice versa).
SAM2_1_ONLY_KEYS = ("no_obj_embed_spatial", "obj_ptr_tpos_proj.weight", "obj_ptr_tpos_proj.bias")
# Two keys every SAM 2 checkpoint has; their shapes tell the variants apart (trunk width, block count).
_PATCH_EMBED_KEY = "image_encoder.trunk.patch_embed.proj.weight"
_BLOCK_PREFIX = "image_encoder.trunk.blocks."

_BASE_2_1 = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"
_BASE_2_0 = "https://dl.fbaipublicfiles.com/segment_anything_2/072824/"


@dataclass(frozen=True)
class Sam2Variant:
    """One official SAM 2 model: its package config, Meta's file name and URL, and its checkpoint signature."""

    name: str  # our name: "tiny" ... for SAM 2.1, "sam2.0_tiny" ... for SAM 2.0
    version: str  # "2.1" or "2.0"
    size: str  # "tiny", "small", "base_plus", "large"
    config: str  # yaml path inside the installed sam2 package
    filename: str  # Meta's file name
    url: str
    trunk_width: int  # Hiera embed_dim: out channels of image_encoder.trunk.patch_embed.proj
    trunk_blocks: int  # Hiera blocks: sum of the config's stages
    num_keys: int  # state-dict keys of the official checkpoint

    @property
    def label(self) -> str:
        return f"SAM {self.version} {self.size}"


def _variants() -> dict[str, Sam2Variant]:
    sizes = {  # size: (config suffix, trunk width, blocks, SAM 2.1 key count)
        "tiny": ("t", 96, 12, 471),
        "small": ("s", 96, 16, 519),
        "base_plus": ("b+", 112, 24, 615),
        "large": ("l", 144, 48, 903),
    }
    table: dict[str, Sam2Variant] = {}
    for version, prefix, base, name in (("2.1", "sam2.1", _BASE_2_1, "{}"), ("2.0", "sam2", _BASE_2_0, "sam2.0_{}")):
        for size, (suffix, width, blocks, keys) in sizes.items():
            filename = f"{prefix}_hiera_{size}.pt"
            table[name.format(size)] = Sam2Variant(
                name=name.format(size),
                version=version,
                size=size,
                config=f"configs/{prefix}/{prefix}_hiera_{suffix}.yaml",
                filename=filename,
                url=base + filename,
                trunk_width=width,
                trunk_blocks=blocks,
                num_keys=keys if version == "2.1" else keys - len(SAM2_1_ONLY_KEYS),
            )
    return table


#: The official models. Meta publishes no checksums for these files (see `download_sam2_weights`).
SAM2_VARIANTS: dict[str, Sam2Variant] = _variants()


def get_sam2_variant(name: str | Sam2Variant) -> Sam2Variant:
    """A variant by our name ("tiny", "sam2.0_large"), Meta's file name or stem ("sam2.1_hiera_tiny.pt")."""
    if isinstance(name, Sam2Variant):
        return name
    if isinstance(name, str):
        key = name.strip()
        if key in SAM2_VARIANTS:
            return SAM2_VARIANTS[key]
        for variant in SAM2_VARIANTS.values():
            if key in (variant.filename, variant.filename.removesuffix(".pt")):
                return variant
    raise ValueError(f"variant must be one of {', '.join(SAM2_VARIANTS)} (or Meta's file name), got {describe(name)}")


# ------------------------------------------------------------------------------------------ optional import


def sam2_available() -> bool:
    """True when the optional `sam2` package (and the config packages it needs) can be imported.

    Looks the packages up without importing them: importing `sam2` has a side effect on hydra (see
    `_import_sam2`), and the plugin must load without it.
    """
    return all(importlib.util.find_spec(name) is not None for name in SAM2_PACKAGES)


def require_sam2() -> None:
    """Raise an ImportError with the install command when `sam2` cannot be used."""
    if sam2_available():
        return
    missing = [name for name in SAM2_PACKAGES if importlib.util.find_spec(name) is None]
    raise ImportError(
        f"SAM 2 segmentation needs the optional package sam2 (missing here: {', '.join(missing)}). Install it "
        f"into the Python that runs ComfyUI, after torch, with: {SAM2_INSTALL_COMMAND}  "
        "(both flags matter: without --no-build-isolation pip installs a second torch to build it, and "
        "SAM2_BUILD_CUDA=0 skips a CUDA extension that is not needed)"
    )


def _import_sam2() -> Any:
    """Import `sam2` and the two predictor modules, leaving hydra's global state as it was.

    `sam2/__init__.py` initialises hydra's process-global `GlobalHydra` with its own config module when
    nothing has initialised it yet. We never use hydra's global state (see `_build_model`), so when that
    import is what initialised it, it is cleared again: another node that initialises hydra itself must not
    find it taken. An import that happened before ours (another node's) is left alone.
    """
    require_sam2()
    if "sam2" not in sys.modules:
        from hydra.core.global_hydra import GlobalHydra

        was_initialized = GlobalHydra.instance().is_initialized()
        importlib.import_module("sam2")
        if not was_initialized and GlobalHydra.instance().is_initialized():
            GlobalHydra.instance().clear()
    importlib.import_module("sam2.sam2_video_predictor")
    return sys.modules["sam2"]


# ------------------------------------------------------------------------------------------ checkpoints


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_checkpoint(path: Path, source: str) -> dict[str, torch.Tensor]:
    """The `"model"` state dict of a SAM 2 checkpoint file (weights only, never arbitrary pickles)."""
    if not path.is_file():
        raise CheckpointError(f"{source}: no such SAM 2 weights file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{source}: the file is empty (an interrupted download?)")
    try:  # memory-mapped first: a large checkpoint is then not held twice while it is copied into the model
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # legacy (non-zip) files cannot be mapped; any real problem shows again below
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch, pickle and zip each raise their own types
            hint = " (.safetensors files are not read; use Meta's .pt files)" if path.suffix == ".safetensors" else ""
            raise CheckpointError(
                f"{source}: not a readable SAM 2 checkpoint (truncated, corrupted, or not a weights file){hint}: "
                f"{_first_line(exc)}"
            ) from exc
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"{source}: expected a SAM 2 checkpoint {{'model': state_dict}}, found {type(checkpoint).__name__}"
        )
    if "model" not in checkpoint:
        if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
            if _PATCH_EMBED_KEY in checkpoint:
                problem = "a bare SAM 2 state dict"
            else:
                problem = f"a bare state dict of another model ({_foreign_hint(checkpoint)})"
            raise CheckpointError(
                f"{source}: {problem}, not a SAM 2 checkpoint: Meta's files are {{'model': state_dict}}, "
                "which is what is loaded (strictly) here"
            )
        raise CheckpointError(
            f"{source}: not a SAM 2 checkpoint: no 'model' entry (its keys: "
            f"{', '.join(map(str, list(checkpoint)[:_SHOWN_KEYS])) or 'none'})"
        )
    state = checkpoint["model"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{source}: 'model' must be a state dict of tensors, found {type(state).__name__}")
    return dict(state)


def _foreign_hint(state: dict[str, Any]) -> str:
    if "image_encoder.patch_embed.proj.weight" in state:
        return "it looks like a SAM 1 (segment-anything) checkpoint"
    return f"{len(state)} tensors, first keys: {', '.join(list(state)[:_SHOWN_KEYS])}"


def detect_sam2_variant(state: dict[str, torch.Tensor], source: str = "checkpoint") -> Sam2Variant:
    """The variant of a SAM 2 state dict, from the image encoder's width and block count and the 2.1-only keys.

    A state dict of another model, or a SAM 2 of an unknown size, is a CheckpointError naming `source`.
    """
    patch = state.get(_PATCH_EMBED_KEY)
    if not isinstance(patch, torch.Tensor) or patch.ndim != 4:
        raise CheckpointError(f"{source}: not a SAM 2 checkpoint: no SAM 2 image encoder ({_foreign_hint(state)})")
    width = int(patch.shape[0])
    blocks = len({k[len(_BLOCK_PREFIX) :].split(".", 1)[0] for k in state if k.startswith(_BLOCK_PREFIX)})
    version = "2.1" if any(k in state for k in SAM2_1_ONLY_KEYS) else "2.0"
    for variant in SAM2_VARIANTS.values():
        if (variant.version, variant.trunk_width, variant.trunk_blocks) == (version, width, blocks):
            return variant
    known = ", ".join(
        f"{v.size} ({v.trunk_width}/{v.trunk_blocks})" for v in SAM2_VARIANTS.values() if v.version == "2.1"
    )
    raise CheckpointError(
        f"{source}: a SAM {version}-like checkpoint of an unknown size (image encoder width {width}, {blocks} "
        f"blocks); known width/blocks: {known}"
    )


# Expected {key: tensor on the meta device} per variant, filled from the first model built of that variant.
# The shapes do not depend on image_size, so one entry serves every size (and the download check).
_LAYOUTS: dict[str, dict[str, torch.Tensor]] = {}


def _layout_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: torch.empty(v.shape, dtype=v.dtype, device="meta") for k, v in model.state_dict().items()}


def _expected_layout(variant: Sam2Variant) -> dict[str, torch.Tensor]:
    if variant.name not in _LAYOUTS:
        _LAYOUTS[variant.name] = _layout_of(_build_model(variant, None))
    return _LAYOUTS[variant.name]


def _check_layout(
    state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], variant: Sam2Variant, source: str
) -> None:
    """Exactly the expected keys and shapes, usable dtypes, finite values; else a CheckpointError naming `source`."""
    problems = layout_problems(state, expected)
    if problems:
        raise CheckpointError(
            f"{source}: not a {variant.label} checkpoint of the official layout "
            f"({len(expected)} keys): {'; '.join(problems)}"
        )
    check_tensor_values(state, expected, source)


def _resolve_checkpoint_variant(state: dict[str, torch.Tensor], asked: Sam2Variant | None, source: str) -> Sam2Variant:
    """The variant to build: the detected one, which must be the one asked for, if any."""
    detected = detect_sam2_variant(state, source)
    if asked is None or asked == detected:
        return detected
    if asked.version != detected.version:
        if detected.version == "2.0":
            problem = f"it lacks the keys SAM 2.1 added ({', '.join(SAM2_1_ONLY_KEYS)})"
        else:
            problem = f"it has the keys SAM 2.1 added ({', '.join(SAM2_1_ONLY_KEYS)})"
        raise CheckpointError(
            f"{source}: a {detected.label} checkpoint, but variant {asked.name!r} is {asked.label}: {problem}; "
            f"pass variant={detected.name!r} or variant=None to detect it"
        )
    raise CheckpointError(
        f"{source}: a {detected.label} checkpoint (image encoder width {detected.trunk_width}, "
        f"{detected.trunk_blocks} blocks), not {asked.label}; pass variant={detected.name!r} or variant=None"
    )


def _build_model(variant: Sam2Variant, image_size: int | None) -> torch.nn.Module:
    """A randomly initialised SAM2VideoPredictor for `variant`, without hydra's global state (CPU, fp32, eval).

    The official `build_sam2_video_predictor` composes the config through `GlobalHydra`; here the package's
    yaml is read with OmegaConf and given the same overrides the official builder applies, then instantiated.
    One video-predictor model serves the image predictor too (same weights and keys). The random init runs
    on a forked RNG so that building never moves the caller's torch random state.
    """
    sam2 = _import_sam2()
    from hydra.utils import instantiate  # instantiate does not read or change GlobalHydra
    from omegaconf import OmegaConf

    config = OmegaConf.load(Path(sam2.__file__).parent / variant.config)
    model_config = config.model
    model_config._target_ = "sam2.sam2_video_predictor.SAM2VideoPredictor"
    # build_sam2_video_predictor(apply_postprocessing=True): a single mask whose stability is below 0.98 is
    # replaced by the best multimask output; masks from clicks are binarised for the memory encoder; holes
    # up to 8 px of the low-res masks are filled (needs the CUDA extension: skipped with a warning without it).
    model_config.sam_mask_decoder_extra_args = {
        "dynamic_multimask_via_stability": True,
        "dynamic_multimask_stability_delta": 0.05,
        "dynamic_multimask_stability_thresh": 0.98,
    }
    model_config.binarize_mask_from_pts_for_mem_enc = True
    model_config.fill_hole_area = 8
    if image_size is not None:
        model_config.image_size = image_size  # like the override ++model.image_size=...
    OmegaConf.resolve(config)
    with torch.random.fork_rng(devices=[]):
        model = instantiate(model_config, _recursive_=True)
    return model.eval().requires_grad_(False)


def check_image_size(image_size: Any) -> int | None:
    """None (the variant's 1024) or an int multiple of 32 in 128..4096 (the image encoder pools by 32)."""
    if image_size is None:
        return None
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 128 <= image_size <= 4096:
        raise ValueError(f"image_size must be None or an int in 128..4096, got {describe(image_size)}")
    if image_size % 32:
        raise ValueError(f"image_size must be a multiple of 32 (the image encoder downsamples by 32), got {image_size}")
    return image_size


def load_sam2(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    variant: str | Sam2Variant | None = None,
    image_size: int | None = None,
) -> Sam2Segmenter:
    """Load a SAM 2 / 2.1 checkpoint (Meta's `{"model": state_dict}` `.pt` format) into a `Sam2Segmenter`.

    The variant is detected from the checkpoint when `variant` is None; a given variant must match the file.
    Loading is strict (`weights_only=True`, exactly the variant's keys and shapes, finite float tensors); a file
    that cannot be used (bare state dict, another model's file, SAM 2.0 weights for a 2.1 variant, a truncated
    file) is a CheckpointError naming the file and the problem. `device` goes through `resolve_device`.
    `dtype` is the compute precision: float32 (exact), or bfloat16/float16 by autocast on CUDA; on the CPU
    bfloat16 uses CPU autocast and float16 runs in float32. Weights stay float32. `image_size` overrides the
    model's input size (1024), e.g. 256/512 for tests: faster, coarser masks. Never touches hydra's global state.
    """
    if dtype not in SAM2_SUPPORTED_DTYPES:
        raise ValueError(f"load_sam2: dtype must be one of {SAM2_SUPPORTED_DTYPES}, got {describe(dtype)}")
    device = resolve_device(device)  # before the (slow) read, so that a typo fails at once
    image_size = check_image_size(image_size)
    asked = None if variant is None else get_sam2_variant(variant)
    require_sam2()
    path = Path(path)
    source = str(path)
    state = _read_checkpoint(path, source)
    chosen = _resolve_checkpoint_variant(state, asked, source)
    model = None
    if chosen.name not in _LAYOUTS:  # the first build of a variant also records its layout
        model = _build_model(chosen, image_size)
        _LAYOUTS[chosen.name] = _layout_of(model)
    _check_layout(state, _LAYOUTS[chosen.name], chosen, source)  # refuse before building, once the layout is known
    if model is None:
        model = _build_model(chosen, image_size)
    model.load_state_dict(state, strict=True)
    del state
    return Sam2Segmenter(model.to(device), chosen, device=device, dtype=dtype, path=path)


# ------------------------------------------------------------------------------------------ download


@dataclass(frozen=True)
class Sam2Download:
    """Where the weights are, their SHA-256 (None for a file already there when no pin was given), their size."""

    path: Path
    sha256: str | None
    size: int
    downloaded: bool


def download_sam2_weights(
    folder: str | Path,
    variant: str | Sam2Variant = "tiny",
    *,
    url: str | None = None,
    filename: str | None = None,
    sha256: str | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    timeout: float = 30.0,
) -> Sam2Download:
    """Download Meta's checkpoint of `variant` into `folder` (atomic: temp file there, checks, then rename).

    Meta publishes no checksums, so the download is verified by the server's declared length and by a strict
    structural check (the file loads as a checkpoint of `variant`: `{"model": state_dict}` with exactly the
    expected keys and shapes, finite values); its SHA-256 is computed, logged and returned so that it can be
    pinned, and `sha256=` is checked when given. `progress(bytes_done, bytes_total_or_None)` is called as data
    arrives. A file already at the target is kept (and checked against `sha256` when given). Offline or on
    any network error, a CheckpointError names the URL and the exact path to put the file at by hand; a
    download that fails a check leaves nothing behind.
    """
    spec = get_sam2_variant(variant)
    url = url or spec.url
    folder = Path(folder)
    target = folder / (filename or spec.filename)
    check_callable(progress, name="progress")
    if target.is_file() and target.stat().st_size > 0:
        digest = None
        if sha256 is not None:
            digest = sha256_of(target)
            if digest != sha256.lower():
                raise CheckpointError(
                    f"{target}: sha256 {digest}, expected {sha256}; the file there is not the "
                    "pinned one (delete it to download again)"
                )
        return Sam2Download(target, digest, target.stat().st_size, downloaded=False)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise CheckpointError(
            f"cannot write the SAM 2 weights to {target} ({exc}); download {url} by hand and put it at {target}"
        ) from exc
    tmp = Path(tmp_name)
    try:
        digest = _fetch(url, fd, target, progress, timeout)
        if sha256 is not None and digest != sha256.lower():
            raise CheckpointError(
                f"checksum mismatch for {url}: got sha256 {digest}, expected {sha256}; "
                f"the file was not kept (target {target})"
            )
        _verify_download(tmp, spec, f"the file downloaded from {url} (not kept; target {target})")
        size = tmp.stat().st_size
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    logger.info(
        "SAM 2 weights %s saved to %s: %d bytes, sha256 %s (pass sha256=%r to pin this file)",
        spec.name,
        target,
        size,
        digest,
        digest,
    )
    return Sam2Download(target, digest, size, downloaded=True)


def _fetch(url: str, fd: int, target: Path, progress: Callable[[int, int | None], None] | None, timeout: float) -> str:
    """Stream `url` into the open temp file `fd`; the SHA-256 of what arrived, after the length check."""
    try:
        digest, done, total = fetch_to(url, fd, progress=progress, timeout=timeout)
    except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else _first_line(exc)
        raise CheckpointError(
            f"could not download the SAM 2 weights from {url} ({reason}). Download that file by hand and put it "
            f"at {target}"
        ) from exc
    if total is not None and done != total:
        raise CheckpointError(
            f"download of {url} stopped after {done} of {total} bytes; nothing was kept (target {target})"
        )
    return digest


def _verify_download(path: Path, variant: Sam2Variant, source: str) -> None:
    """The structural check of a downloaded file; the file is not mapped any more when this returns or raises."""
    problem = None
    state = _read_checkpoint(path, source)
    try:
        _resolve_checkpoint_variant(state, variant, source)  # "a tiny, not small" rather than a list of keys
        _check_layout(state, _expected_layout(variant), variant, source)
    except CheckpointError as exc:
        problem = str(exc)  # not the exception itself: its traceback would keep the mapped tensors alive
    del state  # releases the memory map before the rename or the removal (Windows refuses both while mapped)
    if problem is not None:
        raise CheckpointError(problem)


# ------------------------------------------------------------------------------------------ inference


@dataclass
class Sam2VideoStats:
    """What the last `segment_video` call did: frames per pass and how much per-frame state it held."""

    forward_frames: int = 0
    backward_frames: int = 0
    memory_window: int = 0  # non-conditioning outputs tracking can read (the pruning keeps this many)
    max_stored_outputs: int = 0  # most non-conditioning outputs held for one object after any frame
    stored_per_frame: list[int] = field(default_factory=list)  # that count after each tracked frame
    max_stored_bytes: int = 0  # most bytes those outputs (all objects) held at once


def _outputs_bytes(state: dict[str, Any]) -> int:
    """Bytes of the per-frame (non-conditioning) outputs in a video state; the shared positional encoding aside."""
    total = 0
    for obj_out in state["output_dict_per_obj"].values():
        for out in obj_out["non_cond_frame_outputs"].values():
            for key in ("maskmem_features", "pred_masks", "obj_ptr", "object_score_logits"):
                value = out.get(key)
                if isinstance(value, torch.Tensor):
                    total += value.numel() * value.element_size()
    return total


class _FrameSource:
    """The video predictor's `images` for frames held in memory: frame i preprocessed on demand.

    Same preprocessing as the package's JPEG-folder loader: 8-bit RGB resized to `size` x `size` by PIL's
    bicubic filter, scaled to 0..1 in float64 then float32, normalised with the ImageNet mean and std. Nothing
    is cached: the predictor keeps the features of the frame it works on, and a clip never exists at model size.
    """

    MEAN = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float32)[:, None, None]
    STD = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float32)[:, None, None]

    def __init__(self, frames: torch.Tensor, size: int):
        self.frames = frames
        self.size = size
        self.height, self.width = int(frames.shape[1]), int(frames.shape[2])

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def __getitem__(self, index: int) -> torch.Tensor:
        from PIL import Image

        frame = self.frames[index].detach().float().clamp(0, 1)
        pixels = torch.round(frame * 255).to(torch.uint8).cpu().numpy()
        resized = Image.fromarray(pixels, "RGB").resize((self.size, self.size), Image.Resampling.BICUBIC)
        image = torch.from_numpy(np.asarray(resized) / 255.0).permute(2, 0, 1).float()
        return (image - self.MEAN) / self.STD


@contextlib.contextmanager
def _frames_from_memory(source: _FrameSource) -> Iterator[None]:
    """Make the video predictor's `init_state(source)` take `source` as its frames.

    `init_state` reads frames only through the module function `load_video_frames` (a JPEG folder or an mp4);
    for the duration of one `init_state` call it is wrapped so that our source passes through and any other
    argument still reaches the package's loader.
    """
    module = sys.modules["sam2.sam2_video_predictor"]
    original = module.load_video_frames

    def load_video_frames(video_path: Any, *args: Any, **kwargs: Any) -> Any:
        if video_path is source:
            return source, source.height, source.width
        return original(video_path, *args, **kwargs)

    module.load_video_frames = load_video_frames
    try:
        yield
    finally:
        module.load_video_frames = original


def _check_prompts(prompts: Any, size: tuple[int, int], *, name: str = "prompts") -> list[ObjectPrompt]:
    """A non-empty list of ObjectPrompt with finite coordinates, labels 0/1, a positive point or a box each."""
    if isinstance(prompts, ObjectPrompt):
        prompts = [prompts]
    if not isinstance(prompts, Sequence) or isinstance(prompts, (str, bytes)):
        raise ValueError(f"{name} must be a list of ObjectPrompt (one per object), got {describe(prompts)}")
    if len(prompts) == 0:
        raise ValueError(f"{name} is empty: give one ObjectPrompt per object")
    checked = []
    for i, prompt in enumerate(prompts):
        label = f"{name}[{i}]"
        if not isinstance(prompt, ObjectPrompt):
            raise ValueError(f"{label} must be an ObjectPrompt, got {describe(prompt)}")
        if not bool(torch.isfinite(prompt.points).all()):
            raise ValueError(f"{label}: points contain NaN or infinite values")
        if prompt.labels.numel() and not bool(((prompt.labels == 0) | (prompt.labels == 1)).all()):
            raise ValueError(
                f"{label}: labels must be 1 (on the object) or 0 (not on it), got {prompt.labels.tolist()}"
            )
        if prompt.box is not None:
            x0, y0, x1, y1 = (float(v) for v in prompt.box)
            if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x1 <= x0 or y1 <= y0:
                raise ValueError(
                    f"{label}: box must be finite (x0, y0, x1, y1) with x1 > x0 and y1 > y0, got {[x0, y0, x1, y1]}"
                )
        if not prompt.has_positive:
            raise ValueError(f"{label}: only negative points; an object needs a positive point (label 1) or a box")
        checked.append(prompt)
    return checked


def _check_seed_masks(masks: Any, size: tuple[int, int]) -> torch.Tensor:
    """`[N,H,W]` (or `[H,W]`) masks of the frame size in 0..1, each with pixels above 0.5; returned as bool."""
    if not isinstance(masks, torch.Tensor) or masks.layout != torch.strided or masks.device.type == "meta":
        raise ValueError(f"masks must be a [N,H,W] tensor (one mask per object), got {describe(masks)}")
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3 or tuple(masks.shape[1:]) != size or masks.shape[0] == 0:
        raise ValueError(f"masks must be [N,H,W] with [H,W] = {list(size)} like the frames, got {list(masks.shape)}")
    if masks.is_complex():
        raise ValueError(f"masks must be real-valued in 0..1, got {masks.dtype}")
    values = masks.float()
    if not bool(torch.isfinite(values).all()) or float(values.min()) < -1e-3 or float(values.max()) > 1 + 1e-3:
        raise ValueError("masks must be finite values in 0..1")
    binary = values > 0.5
    for i in range(binary.shape[0]):
        if not bool(binary[i].any()):
            raise ValueError(f"masks[{i}] is empty (no value above 0.5): it marks no object to track")
    return binary


class Sam2Segmenter:
    """A loaded SAM 2 model: masks from click/box prompts on one image, or tracked through a clip."""

    def __init__(
        self,
        model: torch.nn.Module,
        variant: Sam2Variant,
        *,
        device: torch.device,
        dtype: torch.dtype,
        path: Path | None = None,
    ):
        self.model = model
        self.variant = variant
        self.device = device
        self.dtype = dtype
        self.path = path
        self.image_size = int(model.image_size)
        # The tracking memory reads, for frame t: t-1 and the frames of stride r down to t-1-r*(num_maskmem-2)
        # (mask memory), and t-1 .. t-(max_obj_ptrs-1) (object pointers). Outputs farther back are never read.
        stride = int(model.memory_temporal_stride_for_eval)
        self.memory_window = max(1 + stride * (int(model.num_maskmem) - 2), int(model.max_obj_ptrs_in_encoder) - 1)
        self.last_video_stats = Sam2VideoStats()
        self._image_predictor = None

    def __repr__(self) -> str:
        return (
            f"Sam2Segmenter({self.variant.label}, image_size={self.image_size}, device={self.device}, "
            f"dtype={self.compute_dtype})"
        )

    @property
    def compute_dtype(self) -> torch.dtype:
        """The precision inference runs in: `dtype`, except float16 on a non-CUDA device (float32 there)."""
        if self.dtype == torch.float32 or self.device.type == "cuda":
            return self.dtype
        return torch.bfloat16 if self.dtype == torch.bfloat16 and self.device.type == "cpu" else torch.float32

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.compute_dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.compute_dtype)

    def _predictor(self) -> Any:
        if self._image_predictor is None:
            from sam2.sam2_image_predictor import SAM2ImagePredictor

            predictor = SAM2ImagePredictor(self.model)
            s = self.image_size
            # Hardcoded there for 1024; the feature maps of the mask decoder are at strides 4, 8, 16.
            predictor._bb_feat_sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]
            self._image_predictor = predictor
        return self._image_predictor

    # -------------------------------------------------------------------------------------- one image

    def segment_image(self, image: torch.Tensor, prompts: list[ObjectPrompt]) -> torch.Tensor:
        """Masks `[N,H,W]` float 0/1 on the CPU for `image` `[H,W,3]` float in 0..1, one per prompt (object).

        Rule: an object prompted by points only gets SAM's three candidate masks and the one with the best
        predicted IoU (a click is ambiguous: part, object, whole); an object with a box (with or without points)
        gets a single mask (with the official fallback to the best candidate when that mask is unstable).
        Objects whose prompts have the same structure (point count, box or not) run as one batch on the
        image's features, which are computed once; no object's prompt affects another's mask.
        """
        image = check_frame(image, name="image")
        size = (int(image.shape[0]), int(image.shape[1]))
        prompts = _check_prompts(prompts, size)
        require_sam2()
        predictor = self._predictor()
        masks = torch.zeros(len(prompts), *size, dtype=torch.float32)
        groups: dict[tuple[int, bool], list[int]] = {}
        for i, prompt in enumerate(prompts):
            groups.setdefault((int(prompt.points.shape[0]), prompt.box is not None), []).append(i)
        with torch.inference_mode(), self._autocast():
            predictor.set_image(image.detach().float().cpu().contiguous().numpy())
            try:
                for (count, has_box), members in groups.items():
                    coords = labels = boxes = None
                    if count:
                        coords = np.stack([prompts[i].points.float().cpu().numpy() for i in members])
                        labels = np.stack([prompts[i].labels.cpu().numpy().astype(np.int32) for i in members])
                    if has_box:
                        boxes = np.stack([prompts[i].box.float().cpu().numpy() for i in members])
                    found, ious, _ = predictor.predict(
                        point_coords=coords, point_labels=labels, box=boxes, multimask_output=not has_box
                    )
                    found, ious = torch.from_numpy(found), torch.from_numpy(ious)
                    if len(members) == 1:  # the predictor drops the batch axis of a batch of one
                        found, ious = found[None], ious[None]
                    best = ious.argmax(dim=1)
                    for row, i in enumerate(members):
                        masks[i] = found[row, best[row]].float()
            finally:
                predictor.reset_predictor()  # the image's features are not kept between calls
        return masks

    # -------------------------------------------------------------------------------------- a clip

    def segment_video(
        self,
        frames: torch.Tensor,
        prompts: list[ObjectPrompt] | None,
        *,
        frame_index: int = 0,
        masks: torch.Tensor | None = None,
        progress: Callable[[int, int], None] | None = None,
        check_interrupt: Callable[[], None] | None = None,
    ) -> torch.Tensor:
        """Masks `[N,T,H,W]` float 0/1 on the CPU: N objects tracked through `frames` `[T,H,W,3]` float in 0..1.

        The objects are given on frame `frame_index`, either by `prompts` (one ObjectPrompt each; SAM 2's
        video rule: several candidates and the best one for a single click, one mask otherwise) or by seed
        `masks` `[N,H,W]` (values above 0.5 mark the object; reproduced on that frame). Tracking runs forward to
        the last frame and, when `frame_index > 0`, backward to frame 0; the backward pass starts again from
        the prompts with a memory of its own, so the frames before `frame_index` do not depend on the ones after.
        Frames are preprocessed one at a time as tracking reaches them, and per-frame memory older than what
        tracking reads is dropped, so memory does not grow with the clip. Each object is tracked on its own
        (SAM 2's video predictor runs one object at a time on the shared frame features).
        `progress(done, T)` is called after every output frame, `check_interrupt()` before every frame step;
        an exception raised from either stops tracking and propagates. `last_video_stats` records the run.
        """
        check_frames(frames)
        total, height, width = (int(s) for s in frames.shape[:3])
        size = (height, width)
        frame_index = check_index(frame_index, name="frame_index", count=total)
        check_callable(progress, name="progress")
        check_callable(check_interrupt, name="check_interrupt")
        has_prompts = prompts is not None and not (isinstance(prompts, Sequence) and len(prompts) == 0)
        if has_prompts == (masks is not None):
            raise ValueError(
                "segment_video: give either prompts (one ObjectPrompt per object) or seed masks "
                "[N,H,W] for frame_index, not both and not neither"
            )
        seeds = _check_seed_masks(masks, size) if masks is not None else None
        checked = _check_prompts(prompts, size) if has_prompts else None
        count = len(checked) if checked is not None else int(seeds.shape[0])

        out = torch.zeros(count, total, height, width, dtype=torch.float32)
        done = 0

        def on_frame(index: int, logits: torch.Tensor) -> None:
            nonlocal done
            out[:, index] = (logits > 0).float()
            done += 1
            if progress is not None:
                progress(done, total)

        self._track(frames, checked, seeds, frame_index, on_frame, check_interrupt)
        return out

    def _track(
        self,
        frames: torch.Tensor,
        prompts: list[ObjectPrompt] | None,
        seeds: torch.Tensor | None,
        frame_index: int,
        on_frame: Callable[[int, torch.Tensor], None],
        check_interrupt: Callable[[], None] | None = None,
        *,
        prune: bool = True,
    ) -> None:
        """Call `on_frame(frame, logits [N,H,W] float32 CPU)` for every frame once: forward from `frame_index`
        to the end, then backward to 0. A callback, not a generator, so that no inference or autocast mode is
        left open in the caller's code between frames."""
        _import_sam2()
        model = self.model
        total = int(frames.shape[0])
        stats = self.last_video_stats = Sam2VideoStats(memory_window=self.memory_window)
        source = _FrameSource(frames, self.image_size)
        count = len(prompts) if prompts is not None else int(seeds.shape[0])

        def interrupt() -> None:
            if check_interrupt is not None:
                check_interrupt()

        interrupt()
        with torch.inference_mode(), self._autocast():
            with _frames_from_memory(source), self._no_warmup(frame_index != 0):
                state = model.init_state(source)
            try:
                for obj in range(count):
                    interrupt()
                    if prompts is None:
                        model.add_new_mask(state, frame_index, obj, seeds[obj])
                        continue
                    prompt = prompts[obj]
                    has_points = prompt.points.shape[0] > 0
                    model.add_new_points_or_box(
                        state,
                        frame_index,
                        obj,
                        points=prompt.points.float() if has_points else None,
                        labels=prompt.labels.to(torch.int32) if has_points else None,
                        box=prompt.box.float() if prompt.box is not None else None,
                    )
                for reverse in [False] + ([True] if frame_index > 0 else []):
                    if reverse:
                        # The backward pass keeps the prompts' conditioning outputs but not the forward pass's
                        # memory, so that it depends only on the prompts and the frames it tracks.
                        for obj_out in state["output_dict_per_obj"].values():
                            obj_out["non_cond_frame_outputs"].clear()
                        for tracked in state["frames_tracked_per_obj"].values():
                            tracked.clear()
                    steps = model.propagate_in_video(
                        state, start_frame_idx=frame_index, max_frame_num_to_track=total, reverse=reverse
                    )
                    try:
                        while True:
                            interrupt()
                            try:
                                index, _, logits = next(steps)
                            except StopIteration:
                                break
                            if prune:
                                self._prune(state, index, reverse)
                            stored = max(
                                len(o["non_cond_frame_outputs"]) for o in state["output_dict_per_obj"].values()
                            )
                            stats.stored_per_frame.append(stored)
                            stats.max_stored_outputs = max(stats.max_stored_outputs, stored)
                            stats.max_stored_bytes = max(stats.max_stored_bytes, _outputs_bytes(state))
                            if reverse and index == frame_index:
                                continue  # the forward pass gave this frame already (the same output)
                            if reverse:
                                stats.backward_frames += 1
                            else:
                                stats.forward_frames += 1
                            on_frame(index, logits[:, 0].float().cpu())
                    finally:
                        steps.close()
            finally:
                state.clear()  # features, outputs and the frame source go now, not at the next collection

    @contextlib.contextmanager
    def _no_warmup(self, skip: bool) -> Iterator[None]:
        """Skip the frame-0 encoding `init_state` ends with (a cache warm-up) when tracking starts elsewhere.

        The cache holds one frame, so frame 0 encoded up front is evicted long before the backward pass
        reaches it: one wasted image encoding per call otherwise. Only our own model object is patched.
        """
        if not skip:
            yield
            return
        self.model._get_image_feature = lambda *args, **kwargs: None
        try:
            yield
        finally:
            del self.model._get_image_feature  # back to the class's method

    def _prune(self, state: dict[str, Any], index: int, reverse: bool) -> None:
        """Drop per-frame outputs (and their tracking records) that tracking past frame `index` never reads.

        Kept: every conditioning output (the prompts' frames) and the last `memory_window` non-conditioning
        outputs in the direction of travel, which cover both the mask memory and the object-pointer window.
        """
        window = self.memory_window
        for obj, obj_out in state["output_dict_per_obj"].items():
            outputs = obj_out["non_cond_frame_outputs"]
            stale = [t for t in outputs if (t - index if reverse else index - t) >= window]
            tracked = state["frames_tracked_per_obj"][obj]
            for t in stale:
                del outputs[t]
                tracked.pop(t, None)
