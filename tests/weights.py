"""Seeded random weights in the official MatAnyone 2 key layout (the test stand-in for matanyone2.pth).

Norm layers and biases are randomised too, and the alpha head's bias sits at 0.5, so that alphas stay
strictly inside (0, 1): a comparison of two implementations is then never hidden by the final clamp.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

KEY_LIST = Path(__file__).parent / "fixtures" / "official_state_dict_keys.tsv"


def official_key_shapes() -> dict[str, tuple[int, ...]]:
    """The 562 official state-dict keys with their shapes, from the fixture copy of the key list."""
    shapes: dict[str, tuple[int, ...]] = {}
    for line in KEY_LIST.read_text().splitlines()[1:]:
        key, shape = line.split("\t")[:2]
        shapes[key] = () if shape == "scalar" else tuple(int(s) for s in shape.split("x"))
    return shapes


def _inv_freq() -> torch.Tensor:
    return 1.0 / (128 ** (torch.arange(0, 128, 2, dtype=torch.float32) / 128))


def random_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A deterministic random state dict with every official key and shape (fp32, CPU)."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in official_key_shapes().items():
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            state[key] = torch.tensor(0, dtype=torch.int64)
        elif leaf == "inv_freq":
            state[key] = _inv_freq()
        elif leaf == "running_mean":
            state[key] = torch.randn(shape, generator=gen) * 0.1
        elif leaf == "running_var":
            state[key] = torch.rand(shape, generator=gen) * 0.5 + 0.75
        elif ("bn" in key or "norm" in key or "downsample.1" in key) and leaf == "weight":
            state[key] = torch.rand(shape, generator=gen) * 0.5 + 0.75
        elif leaf.endswith("bias"):
            state[key] = torch.randn(shape, generator=gen) * 0.05
        else:
            fan_in = math.prod(shape[1:]) if len(shape) > 1 else shape[0]
            state[key] = torch.randn(shape, generator=gen) * (1.0 / math.sqrt(fan_in))
    state["mask_decoder.pred_mat.bias"] = torch.full((1,), 0.5)
    state["mask_decoder.pred_mat.weight"] = state["mask_decoder.pred_mat.weight"] * 0.02
    return state


def write_random_checkpoint(path: str | Path, seed: int = 0) -> Path:
    """Write `random_state_dict(seed)` as .pth (flat state dict) or .safetensors, by the file suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = random_state_dict(seed)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path
