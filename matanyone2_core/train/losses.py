"""Training losses of the matting network, per window (`[T,H,W]` alphas of one clip).

Matting ground truth (`matting_losses`), weighted sum of

* `l1`        mean |alpha - gt|;
* `laplacian` Laplacian-pyramid L1: up to 5 levels (Gaussian sigma 1, stride 2), level l weighted 2^l, mean
              over the levels: the fine levels see edges and strands, the coarse ones large regions;
* `gradient`  L1 between the spatial finite differences of alpha and gt (sharp, well-placed edges);
* `temporal`  mean squared difference of the frame-to-frame changes, (a_t - a_t-1) - (g_t - g_t-1): the
              training counterpart of dtSSD (flicker).

Segmentation-only data (`segmentation_losses`): a trimap from the mask (core = the mask eroded by
`boundary` px, background core = outside the mask dilated by `boundary` px, band = the rest), then

* `seg`  binary cross-entropy of alpha against the mask on the two cores only (the mask's edge is not an
         alpha edge: hair and motion blur are not binary);
* `eval` L_eval (`quality.eval_loss`): the frozen evaluator's mean error probability for the window's alphas,
         with the gradient reaching only the band's alphas (the cores are the segmentation loss's).

Default weights (`LossWeights`): l1 1, laplacian 1, gradient 1, temporal 5, seg 1, eval 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..quality.evaluate import DEFAULT_EVALUATOR, Evaluator
from ..quality.filters import dilate, erode, gaussian_blur
from ..quality.mqe.loss import eval_loss

LAPLACIAN_LEVELS = 5
BCE_EPS = 1e-4


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms (the module docstring says what each is); 0 switches a term off."""

    l1: float = 1.0
    laplacian: float = 1.0
    gradient: float = 1.0
    temporal: float = 5.0
    seg: float = 1.0
    eval: float = 1.0


def laplacian_pyramid(x: torch.Tensor, levels: int = LAPLACIAN_LEVELS) -> list[torch.Tensor]:
    """Band-pass levels of `x` `[N,1,H,W]`, finest first; the last entry is the remaining low-pass image.
    Stops early when a side would drop below 2 pixels."""
    bands = []
    for _ in range(levels - 1):
        if min(x.shape[-2:]) < 4:
            break
        low = gaussian_blur(x, 1.0)[..., ::2, ::2]
        bands.append(x - F.interpolate(low, size=x.shape[-2:], mode="bilinear", align_corners=False))
        x = low
    bands.append(x)
    return bands


def laplacian_loss(pred: torch.Tensor, gt: torch.Tensor, levels: int = LAPLACIAN_LEVELS) -> torch.Tensor:
    """Mean over the pyramid levels of 2^level x L1 between the levels of `pred` and `gt` `[T,H,W]`."""
    p, g = laplacian_pyramid(pred[:, None], levels), laplacian_pyramid(gt[:, None], levels)
    return torch.stack([(2**i) * (a - b).abs().mean() for i, (a, b) in enumerate(zip(p, g, strict=True))]).mean()


def gradient_loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """L1 between horizontal and vertical finite differences of `pred` and `gt` `[T,H,W]`."""
    dx = (pred.diff(dim=-1) - gt.diff(dim=-1)).abs().mean()
    dy = (pred.diff(dim=-2) - gt.diff(dim=-2)).abs().mean()
    return dx + dy


def temporal_loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the temporal changes of `pred` and `gt` `[T,H,W]` (0 for one frame)."""
    if pred.shape[0] < 2:
        return pred.sum() * 0
    return ((pred.diff(dim=0) - gt.diff(dim=0)) ** 2).mean()


def _total(terms: dict[str, torch.Tensor], weights: LossWeights) -> torch.Tensor:
    return sum(getattr(weights, k) * v for k, v in terms.items())


def matting_losses(
    pred: torch.Tensor, gt: torch.Tensor, weights: LossWeights = LossWeights()
) -> dict[str, torch.Tensor]:
    """The matting terms and their weighted sum (`total`) for alphas `pred` and ground truth `gt` `[T,H,W]`."""
    pred, gt = pred.float(), gt.float()
    terms = {"l1": (pred - gt).abs().mean(), "laplacian": laplacian_loss(pred, gt),
             "gradient": gradient_loss(pred, gt), "temporal": temporal_loss(pred, gt)}  # fmt: skip
    return {**terms, "total": _total(terms, weights)}


def trimap(mask: torch.Tensor, boundary: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(foreground core, background core, band) as bool `[T,H,W]` from a 0/1 mask `[T,H,W]`."""
    m = (mask >= 0.5).float()[:, None]
    fg = erode(m, boundary)[:, 0] > 0.5
    bg = dilate(m, boundary)[:, 0] < 0.5
    return fg, bg, ~(fg | bg)


def segmentation_losses(
    pred: torch.Tensor,
    mask: torch.Tensor,
    frames: torch.Tensor,
    weights: LossWeights = LossWeights(),
    *,
    evaluator: Evaluator | None = None,
    boundary: int = 10,
) -> dict[str, torch.Tensor]:
    """The segmentation-data terms (`seg`, `eval`) and their weighted sum (`total`) for alphas `pred` `[T,H,W]`,
    the 0/1 masks `mask` `[T,H,W]` and the window's frames `[T,H,W,3]`; `evaluator` None is the analytic one."""
    pred, mask = pred.float(), mask.float()
    fg, bg, band = trimap(mask, boundary)
    core = fg | bg
    target = fg.float()
    bce = F.binary_cross_entropy(pred.clamp(BCE_EPS, 1 - BCE_EPS), target, reduction="none")
    seg = (bce * core).sum() / core.sum().clamp(min=1)
    terms = {"seg": seg}
    if weights.eval > 0:
        # Gradient only through the band: elsewhere the alpha enters the evaluator as a constant.
        mixed = torch.where(band, pred, pred.detach())
        judge = DEFAULT_EVALUATOR if evaluator is None else evaluator
        terms["eval"] = eval_loss(judge, frames.float(), mixed, mask)
    else:
        terms["eval"] = pred.sum() * 0
    return {**terms, "total": _total(terms, weights)}
