"""Checkpoint reading, verification, multi-object reduction, and the official weights download."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import torch

from .engine.validate import resolve_device
from .network.model import MatAnyone2Network

OFFICIAL_WEIGHTS_URL = "https://github.com/pq-yang/MatAnyone2/releases/download/v1.0.0/matanyone2.pth"
OFFICIAL_WEIGHTS_FILENAME = "matanyone2.pth"
# The authors publish no checksum; this is the SHA-256 of the v1.0.0 release file as pinned independently
# by other projects. Pass `sha256=None` to skip the check (e.g. for a re-uploaded copy).
OFFICIAL_WEIGHTS_SHA256: str | None = "5e9821e4087231427376b437c85bb6e072b41e582314f06fd524f75bc4af5914"

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# Storage dtypes a checkpoint's float tensors may have (cast to the model's precision on loading).
CHECKPOINT_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
# Parts the official code runs in fp32 even under autocast; they keep fp32 weights in reduced precision.
FP32_MODULES = (
    "mask_encoder.sensory_update",
    "mask_decoder.sensory_update.transform",
    "mask_decoder.pred_mat",
    "mask_decoder.pred_seg",
    "object_summarizer.feature_pred",
    "object_summarizer.weights_pred",
    "object_summarizer.pos_enc",
    "object_transformer.spatial_pe",
)
_SHOWN_KEYS = 5


class CheckpointError(ValueError):
    """A weights file that cannot be used, with the file and the reason in the message."""


def short_reason(exc: BaseException) -> str:
    """The first line of an exception's message, shortened (torch's and safetensors' messages run long)."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= 160 else line[:157] + "..."


def read_weights(path: str | Path, *, missing: str, unreadable: str) -> dict[str, torch.Tensor]:
    """A flat state dict from `.pth` (weights only, never arbitrary pickles) or `.safetensors`, or a
    CheckpointError naming the file: "no such {missing}", "not a readable {unreadable} (truncated, ...)"."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such {missing}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty (an interrupted download?)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch, pickle, zip and safetensors each raise their own types
        raise CheckpointError(
            f"{path}: not a readable {unreadable} (truncated, corrupted, or not a weights file): {short_reason(exc)}"
        ) from exc
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):  # fmt: skip
        raise CheckpointError(f"{path}: expected a flat state dict of tensors, found {type(state).__name__}")
    return dict(state)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a flat state dict from `.pth` (weights only, never arbitrary pickles) or `.safetensors`."""
    return read_weights(path, missing="weights file", unreadable="MatAnyone checkpoint")


def reduce_multi_object(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Reduce a multi-object checkpoint to the single-object model, as the official loader does.

    The multi-object variant has a 5-channel mask-encoder input and 258-channel sensory compression (the
    extra channel carries the other objects' masks); its last input channel is dropped.
    """
    conv1 = state.get("mask_encoder.conv1.weight")
    if conv1 is not None and conv1.ndim == 4 and conv1.shape[1] == 5:
        state = dict(state)
        state["mask_encoder.conv1.weight"] = conv1[:, :-1].contiguous()
        compress = state.get("pixel_fuser.sensory_compress.weight")
        if compress is not None and compress.ndim == 4 and compress.shape[1] == 258:
            state["pixel_fuser.sensory_compress.weight"] = compress[:, :-1].contiguous()
    return state


def layout_problems(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> list[str]:
    """How `state` differs from the `expected` layout, as message parts (missing keys, unexpected keys, shape
    mismatches, the first few of each); empty when the keys and shapes match."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]  # fmt: skip
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {', '.join(missing[:_SHOWN_KEYS])}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {', '.join(unexpected[:_SHOWN_KEYS])}")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatch(es): {', '.join(wrong[:_SHOWN_KEYS])}")
    return problems


def verify_state_dict(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], source: str) -> None:
    """Strict check: the same keys with the same shapes, or a CheckpointError naming the first offenders."""
    missing = [k for k in expected if k not in state]
    if len(missing) > len(expected) // 2:
        raise CheckpointError(
            f"{source}: does not look like a MatAnyone / MatAnyone 2 checkpoint "
            f"({len(expected) - len(missing)} of {len(expected)} expected keys found; "
            f"its first keys: {', '.join(list(state)[:_SHOWN_KEYS]) or 'none'})"
        )
    problems = layout_problems(state, expected)
    if problems:
        raise CheckpointError(f"{source}: not a MatAnyone 2 checkpoint of the expected layout: {'; '.join(problems)}")


def check_tensor_values(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], source: str) -> None:
    """Refuse tensors the network cannot use: a wrong dtype or layout, NaN or infinities.

    Float tensors may be stored in any of `CHECKPOINT_FLOAT_DTYPES` (they are cast on loading); the integer
    buffers of the official layout (`num_batches_tracked`, int64) must hold integers. Runs after the layout
    check, so every key of `state` is one the network has.
    """
    wrong = []
    for key, tensor in state.items():
        want = expected[key]
        if tensor.layout != torch.strided:
            wrong.append(f"{key} ({tensor.layout})")
        elif want.is_floating_point():
            if tensor.dtype not in CHECKPOINT_FLOAT_DTYPES:
                wrong.append(f"{key} ({tensor.dtype}, expected floating point)")
        elif tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
            wrong.append(f"{key} ({tensor.dtype}, expected {want.dtype})")
    if wrong:
        raise CheckpointError(
            f"{source}: {len(wrong)} tensor(s) of an unusable dtype: {', '.join(wrong[:_SHOWN_KEYS])}; "
            f"weights must be {', '.join(str(d).removeprefix('torch.') for d in CHECKPOINT_FLOAT_DTYPES)}"
        )
    # A diverged or corrupted checkpoint: every alpha would come out NaN, frame after frame, without an error.
    bad = [k for k, t in state.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise CheckpointError(
            f"{source}: {len(bad)} tensor(s) contain NaN or infinite values: {', '.join(bad[:_SHOWN_KEYS])} "
            "(a corrupted or diverged checkpoint)"
        )


def load_matting_model(
    path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> MatAnyone2Network:
    """Build the network from a `.pth` or `.safetensors` checkpoint (MatAnyone 2 or 1), in eval mode.

    `dtype` float32 is the exact mode; float16/bfloat16 store most weights in that precision and keep the
    parts the official code protects from autocast in fp32. `device` goes through `resolve_device` (an
    unusable device is a ValueError naming the available ones). A file that cannot be used (unreadable,
    another layout, a wrong dtype, NaN or infinite weights) is a CheckpointError naming the file and the
    first offending keys.
    """
    if dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"load_matting_model: dtype must be one of {SUPPORTED_DTYPES}, got {dtype}")
    device = resolve_device(device)  # before the (slow) read, so that a typo fails at once
    state = reduce_multi_object(read_state_dict(path))
    model = MatAnyone2Network()
    expected = model.state_dict()
    verify_state_dict(state, expected, str(path))
    check_tensor_values(state, expected, str(path))
    model.load_state_dict(state, strict=True)
    model.eval().requires_grad_(False)
    set_precision(model, dtype)
    return model.to(device)


def set_precision(model: MatAnyone2Network, dtype: torch.dtype) -> MatAnyone2Network:
    """Cast the model to `dtype`, keeping the parts the official code protects from autocast in fp32."""
    model.to(dtype)
    for name in FP32_MODULES:
        model.get_submodule(name).float()
    model.pixel_mean.data = model.pixel_mean.float()
    model.pixel_std.data = model.pixel_std.float()
    return model


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fetch_to(
    url: str, fd: int, *, progress: Callable[[int, int | None], None] | None = None, timeout: float = 30.0
) -> tuple[str, int, int | None]:
    """Stream `url` into the open file descriptor `fd` (closed afterwards): (SHA-256 hex of what arrived, bytes
    received, the declared Content-Length or None). Network errors propagate for the caller to word."""
    digest = hashlib.sha256()
    with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
        declared = response.headers.get("Content-Length")
        total = int(declared) if declared and declared.isdigit() else None
        done = 0
        while block := response.read(1 << 20):
            out.write(block)
            digest.update(block)
            done += len(block)
            if progress is not None:
                progress(done, total)
    return digest.hexdigest(), done, total


def download_official_weights(
    folder: str | Path,
    *,
    url: str = OFFICIAL_WEIGHTS_URL,
    filename: str = OFFICIAL_WEIGHTS_FILENAME,
    sha256: str | None = OFFICIAL_WEIGHTS_SHA256,
    progress: Callable[[int, int | None], None] | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download the official weights into `folder/filename` (atomic: temp file, checksum, then rename).

    `progress(bytes_done, bytes_total_or_None)` is called as data arrives. An existing file is kept. Offline,
    or on any network error, raises a CheckpointError naming the URL and where to put the file by hand.
    """
    folder = Path(folder)
    target = folder / filename
    if target.is_file() and target.stat().st_size > 0:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=folder)
    tmp = Path(tmp_name)
    try:
        digest, done, total = fetch_to(url, fd, progress=progress, timeout=timeout)
        if total is not None and done != total:
            raise CheckpointError(f"download of {url} stopped after {done} of {total} bytes")
        if sha256 is not None and digest != sha256.lower():
            raise CheckpointError(
                f"checksum mismatch for {url}: got sha256 {digest}, expected {sha256}; the file was not kept"
            )
        os.replace(tmp, target)
        return target
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise CheckpointError(
            f"could not download the MatAnyone 2 weights from {url} ({exc}). Download that file by hand "
            f"and put it at {target}"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
