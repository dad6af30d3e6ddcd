"""Losses: the focal loss the evaluator is trained with, and the paper's online guidance loss L_eval."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..evaluate import Evaluator, evaluate_matte

FOCAL_ALPHA = 0.75  # weight of the "erroneous" class (0.25 on "reliable"): errors are the rare class
FOCAL_GAMMA = 2.0


def focal_loss(
    logits: torch.Tensor, labels: torch.Tensor, *, alpha: float = FOCAL_ALPHA, gamma: float = FOCAL_GAMMA
) -> torch.Tensor:
    """Mean binary focal loss `-a_t (1 - p_t)^gamma log p_t` over all pixels; `labels` True = erroneous
    (weight `alpha`), False = reliable (weight `1 - alpha`). Computed in fp32 from logits (stable)."""
    if logits.shape != labels.shape:
        raise ValueError(f"logits {list(logits.shape)} and labels {list(labels.shape)} must have one shape")
    if not 0.0 <= alpha <= 1.0 or gamma < 0:
        raise ValueError(f"focal loss needs alpha in 0..1 and gamma >= 0, got alpha {alpha}, gamma {gamma}")
    logits = logits.float()
    y = labels.float()
    ce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * y + (1 - p) * (1 - y)
    a_t = alpha * y + (1 - alpha) * (1 - y)
    return (a_t * (1 - p_t).pow(gamma) * ce).mean()


def eval_loss(evaluator: Evaluator, frames: torch.Tensor, alpha: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    """The paper's online guidance loss L_eval: the mean error probability the evaluator gives `alpha`.

    Differentiable in `alpha` (which would come from the matting network being trained); the evaluator is
    frozen for the call: an `nn.Module` evaluator runs in eval mode with its parameters excluded from autograd
    (their `.grad` is never touched), and its training mode and `requires_grad` flags are restored afterwards.
    Works for any evaluator, the analytic one included. `frames` `[T,H,W,3]`, `alpha` and `seg` `[T,H,W]`.
    """
    if not isinstance(evaluator, nn.Module):
        return evaluate_matte(frames, alpha, seg, evaluator=evaluator).mean()
    was_training = evaluator.training
    trainable = [p for p in evaluator.parameters() if p.requires_grad]
    evaluator.eval()
    for p in trainable:
        p.requires_grad_(False)
    try:
        return evaluate_matte(frames, alpha, seg, evaluator=evaluator).mean()
    finally:
        for p in trainable:
            p.requires_grad_(True)
        evaluator.train(was_training)
