"""Where a keyframe mask pays off: the frames whose matte the evaluator judges worst."""

from __future__ import annotations

import torch


def frame_scores(error: torch.Tensor) -> torch.Tensor:
    """Per-frame score `[T]`: the mean error probability over the frame (0 = all reliable, 1 = all wrong)."""
    if not isinstance(error, torch.Tensor) or error.ndim != 3 or error.shape[0] == 0:
        shape = list(error.shape) if isinstance(error, torch.Tensor) else type(error).__name__
        raise ValueError(f"error must be an error map [T,H,W] with T >= 1, got {shape}")
    return torch.stack([e.float().mean() for e in error]).cpu()


def suggest_keyframes(error: torch.Tensor, *, count: int = 3, min_gap: int = 10, min_score: float = 0.0) -> list[int]:
    """Up to `count` frame indices, worst first, at least `min_gap` frames apart, whose score exceeds
    `min_score` (`frame_scores`): greedy non-maximum suppression over the clip."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be an int >= 1, got {count!r}")
    if isinstance(min_gap, bool) or not isinstance(min_gap, int) or min_gap < 0:
        raise ValueError(f"min_gap must be an int >= 0, got {min_gap!r}")
    scores = frame_scores(error)
    chosen: list[int] = []
    for index in torch.argsort(scores, descending=True, stable=True).tolist():
        if len(chosen) == count or float(scores[index]) <= min_score:
            break
        if all(abs(index - other) >= max(min_gap, 1) for other in chosen):
            chosen.append(index)
    return chosen
