"""Evaluator files: one `.safetensors` holding the weights and, in its metadata, everything needed to rebuild
and trust them (format, architecture, input scheme, flag threshold, label settings, training provenance).

Metadata (all strings, as safetensors requires): `format` = "matanyone2-mqe", `format_version` = "1",
`config` (JSON of `MQEConfig`), `threshold`, `labels` (JSON: patch radius, MAD and Grad thresholds the
training labels used), `provenance` (JSON: data, steps, seed, date, ...). Loading checks all of it and the
tensors strictly; anything else is a CheckpointError naming the file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from ...checkpoint import CheckpointError, short_reason
from ...engine.validate import resolve_device
from .. import degrade
from .dinov3 import check_buffers, check_layout, check_values
from .model import MattingQualityEvaluator, MQEConfig

FORMAT = "matanyone2-mqe"
FORMAT_VERSION = "1"
_REQUIRED = ("format", "format_version", "config", "threshold", "labels", "provenance")


def label_settings() -> dict:
    """The patch-label recipe of `degrade.error_labels` (stored with every evaluator)."""
    return {"patch": 2 * degrade.LABEL_RADIUS + 1, "mad": degrade.LABEL_MAD, "grad": degrade.LABEL_GRAD}


def save_evaluator(evaluator: MattingQualityEvaluator, path: str | Path, *, provenance: dict | None = None) -> Path:
    """Write `evaluator` to `path` (`.safetensors`, fp32) with its configuration and `provenance` (a JSON-able
    dict: data, steps, seed, date, ...) in the metadata. Written to a temporary file, then renamed."""
    from safetensors.torch import save_file

    if not isinstance(evaluator, MattingQualityEvaluator):
        raise ValueError(f"evaluator must be a MattingQualityEvaluator, got {type(evaluator).__name__}")
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: an evaluator file must end in .safetensors")
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": evaluator.config.to_json(),
        "threshold": repr(float(evaluator.threshold)),
        "labels": json.dumps(label_settings(), sort_keys=True),
        "provenance": json.dumps(provenance or {}, sort_keys=True, default=str),
    }
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in evaluator.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of an evaluator file, checked (format, version, every field present); CheckpointError
    otherwise. Cheap: reads the header only."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such evaluator file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty (an interrupted copy?)")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for foreign or broken headers
        raise CheckpointError(
            f"{path}: not a readable evaluator file (truncated, corrupted, or not a .safetensors written by "
            f"train-evaluator; a MatAnyone or DINOv3 .pth is not one): {short_reason(exc)}"
        ) from exc
    if metadata.get("format") != FORMAT:
        found = f"format {metadata['format']!r}" if "format" in metadata else "no 'format' entry in its metadata"
        raise CheckpointError(f"{path}: not a MatAnyone 2 evaluator file ({found}; expected {FORMAT!r}). "
                              "Evaluator files are written by `python -m matanyone2_core train-evaluator`")  # fmt: skip
    if metadata.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: evaluator file format version {metadata.get('format_version')!r} is not "
                              f"supported (this version reads {FORMAT_VERSION!r})")  # fmt: skip
    missing = [k for k in _REQUIRED if k not in metadata]
    if missing:
        raise CheckpointError(f"{path}: evaluator metadata lacks {', '.join(missing)}")
    return dict(metadata)


def load_evaluator(
    path: str | Path, *, device: str | torch.device = "cpu", threshold: float | None = None
) -> MattingQualityEvaluator:
    """An evaluator from its `.safetensors` file, in eval mode without gradients, on `device`.

    `threshold` None keeps the stored flag threshold (`evaluator.threshold`). `evaluator.metadata` holds the
    parsed metadata (`config`, `labels`, `provenance`, ...). A missing, foreign (a MatAnyone or DINOv3
    checkpoint, a plain safetensors without our metadata), truncated or inconsistent file is a
    CheckpointError naming the file and the problem.
    """
    from safetensors.torch import load_file

    device = resolve_device(device)
    path = Path(path)
    metadata = read_metadata(path)
    try:
        config = MQEConfig.from_json(metadata["config"])
        stored = float(metadata["threshold"])
        labels = json.loads(metadata["labels"])
        provenance = json.loads(metadata["provenance"])
    except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
        raise CheckpointError(f"{path}: malformed evaluator metadata: {exc}") from exc
    if not (math.isfinite(stored) and 0.0 < stored <= 1.0):
        raise CheckpointError(f"{path}: stored threshold {stored} is not in (0, 1]")
    if not isinstance(labels, dict) or not isinstance(provenance, dict):
        raise CheckpointError(f"{path}: malformed evaluator metadata: labels and provenance must be JSON objects")
    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:  # a header that parses but data that does not (truncated after the header)
        raise CheckpointError(
            f"{path}: the evaluator's tensors cannot be read (truncated or corrupted): {short_reason(exc)}"
        ) from exc
    if threshold is not None and not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    with torch.device("meta"):  # no random initialisation of weights that are about to be replaced
        model = MattingQualityEvaluator(config, threshold=stored if threshold is None else threshold)
    check_layout(state, model.state_dict(), str(path), f"MatAnyone 2 evaluator ({config.backbone})")
    prefix = "backbone."
    check_buffers({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}, config.vit, str(path))
    check_values(state, str(path))
    model.load_state_dict({k: v.float().contiguous() for k, v in state.items()}, strict=True, assign=True)
    model.metadata = {"config": json.loads(metadata["config"]), "threshold": stored, "labels": labels,
                      "provenance": provenance}  # fmt: skip
    return model.eval().requires_grad_(False).to(device)
