"""The official MatAnyone 2 inference code (PyPI `matanyone2-runtime`) driven exactly as the official script.

Used only as a test oracle: the official package is imported lazily and never by the project itself.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch


def official_available() -> bool:
    try:
        import matanyone2  # noqa: F401
        import omegaconf  # noqa: F401
    except ImportError:
        return False
    return True


requires_official = pytest.mark.skipif(not official_available(), reason="matanyone2-runtime not installed")


def build_official(state_dict: dict[str, torch.Tensor], *, long_term: bool = False, max_internal_size: int = -1):
    """An official `InferenceCore` over `state_dict` (fp32, CPU)."""
    import matanyone2
    from matanyone2.inference.inference_core import InferenceCore
    from matanyone2.model.matanyone2 import MatAnyone2
    from omegaconf import OmegaConf

    config_dir = Path(matanyone2.__file__).parent / "config"
    cfg = OmegaConf.load(config_dir / "eval_matanyone_config.yaml")
    cfg.model = OmegaConf.load(config_dir / "model" / "base.yaml")
    cfg.model.pretrained_resnet = False
    cfg.use_long_term = long_term
    cfg.max_internal_size = max_internal_size
    OmegaConf.set_struct(cfg, False)
    network = MatAnyone2(cfg, single_object=True).eval()
    network.load_weights(dict(state_dict))
    return InferenceCore(network, cfg=cfg)


def official_first_mask(mask: torch.Tensor, erode: int, dilate: int) -> np.ndarray:
    """The official driver's mask preparation: 8-bit mask, OpenCV dilate then erode (0/255 float32)."""
    from matanyone2.utils.inference_utils import gen_dilate, gen_erosion

    m = np.round(mask.numpy().astype(np.float64) * 255).astype(np.uint8).astype(np.float32)
    random.seed(0)
    if dilate > 0:
        m = gen_dilate(m, dilate, dilate)
    if erode > 0:
        m = gen_erosion(m, erode, erode)
    return m


@torch.inference_mode()
def official_matte(
    state_dict: dict[str, torch.Tensor],
    frames: torch.Tensor,
    mask: torch.Tensor,
    *,
    warmup: int = 10,
    erode: int = 10,
    dilate: int = 10,
    long_term: bool = False,
    max_internal_size: int = -1,
) -> torch.Tensor:
    """Alphas `[T,H,W]` from the official core with the official script's step sequence (fp32, no autocast)."""
    core = build_official(state_dict, long_term=long_term, max_internal_size=max_internal_size)
    mask255 = torch.from_numpy(official_first_mask(mask, erode, dilate))
    images = frames.permute(0, 3, 1, 2).float()
    images = torch.cat([images[:1].repeat(warmup, 1, 1, 1), images], 0)
    out = []
    for ti, image in enumerate(images):
        if ti == 0:
            core.step(image, mask255, objects=[1])
            prob = core.step(image, first_frame_pred=True)
        elif ti <= warmup:
            prob = core.step(image, first_frame_pred=True)
        else:
            prob = core.step(image)
        if ti >= warmup:
            out.append(core.output_prob_to_mask(prob).float())
    return torch.stack(out)
