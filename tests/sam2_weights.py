"""Seeded random SAM 2 / 2.1 weights in Meta's checkpoint format (`{"model": state_dict}`), for the SAM 2 tests.

Random weights give arbitrary masks: tests built on them check shapes, determinism and prompt plumbing, never
mask quality. The weights do not depend on `image_size` (tests load them at a reduced size for speed).
"""

from __future__ import annotations

from pathlib import Path

import torch

from matanyone2_core.segmentation.sam2_backend import _build_model, get_sam2_variant


def random_sam2_state_dict(variant: str = "tiny", seed: int = 0) -> dict[str, torch.Tensor]:
    """The state dict of a freshly built `variant` (hydra-free build) after `torch.manual_seed(seed)`: PyTorch's
    default init, identical for the same seed. The caller's RNG state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _build_model(get_sam2_variant(variant), None)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def write_sam2_checkpoint(path: str | Path, state: dict[str, torch.Tensor]) -> Path:
    """Save `state` as Meta's files are laid out: `{"model": state_dict}`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state}, path)
    return path


def sam2_2_0_state_dict(state_2_1: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A SAM 2.0 checkpoint of the same size: the 2.1 keys without the three that SAM 2.1 added."""
    from matanyone2_core.segmentation.sam2_backend import SAM2_1_ONLY_KEYS

    return {k: v for k, v in state_2_1.items() if k not in SAM2_1_ONLY_KEYS}
