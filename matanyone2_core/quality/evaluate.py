"""The evaluator interface: a per-pixel probability that an alpha matte is wrong, without ground truth.

An evaluator is any callable `evaluator(frames, alpha, seg) -> Tensor[T,H,W]` (float32 in 0..1, 1 = surely
wrong) taking `frames` `[T,H,W,3]` and `alpha` / `seg` `[T,H,W]`, all floats in 0..1. The analytic evaluator
(`AnalyticEvaluator`, no weights) is the default; the learned MQE implements the same call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch

from ..engine.validate import VALUE_TOLERANCE, check_callable, check_frames, check_int
from .analytic import AnalyticEvaluator


@runtime_checkable
class Evaluator(Protocol):
    """What `evaluate_matte` accepts as `evaluator`."""

    def __call__(self, frames: torch.Tensor, alpha: torch.Tensor, seg: torch.Tensor) -> torch.Tensor: ...


DEFAULT_EVALUATOR = AnalyticEvaluator()


def check_mattes(alpha: torch.Tensor, count: int, size: tuple[int, int], *, name: str) -> torch.Tensor:
    """`alpha` as `[T,H,W]` float in 0..1 matching `count` frames of `size`; one `[H,W]` is broadcast."""
    if not isinstance(alpha, torch.Tensor):
        raise ValueError(f"{name} must be a [T,H,W] tensor, got {type(alpha).__name__}")
    if alpha.ndim == 2:
        alpha = alpha[None]
    if alpha.ndim != 3 or tuple(alpha.shape[1:]) != tuple(size):
        raise ValueError(f"{name} must be [T,H,W] with H,W = {list(size)} like the frames, got {list(alpha.shape)}")
    if alpha.shape[0] == 1 and count > 1:
        alpha = alpha.expand(count, *size)
    if alpha.shape[0] != count:
        raise ValueError(f"{name} has {alpha.shape[0]} frames but frames has {count}")
    if not alpha.is_floating_point():
        raise ValueError(f"{name} must be floating point in 0..1, got {alpha.dtype}")
    lo, hi = (float(v) for v in torch.aminmax(alpha.detach()))
    if not (lo == lo and hi == hi) or lo < -VALUE_TOLERANCE or hi > 1 + VALUE_TOLERANCE:
        raise ValueError(f"{name} must be finite values in 0..1, got values in {lo:.4g}..{hi:.4g}")
    return alpha


def evaluate_matte(
    frames: torch.Tensor,
    alpha: torch.Tensor,
    seg: torch.Tensor,
    *,
    evaluator: Evaluator | None = None,
    chunk: int = 8,
    progress: Callable[[int, int], None] | None = None,
    check_interrupt: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Per-pixel probability `[T,H,W]` (float32, 0..1) that `alpha` is wrong.

    `frames` `[T,H,W,3]`, `alpha` `[T,H,W]` and `seg` `[T,H,W]` (or one `[H,W]` mask for the whole clip), all
    floats in 0..1 (ComfyUI layouts). `evaluator=None` uses the analytic evaluator. Inputs are checked before
    any work. The clip goes through the evaluator `chunk` frames at a time (no autograd) into a CPU result,
    calling `check_interrupt()` before and `progress(done, total)` after each chunk; when `alpha` requires
    grad it goes through in one call and the result stays differentiable, on the evaluator's device.
    """
    check_frames(frames, name="frames")
    count, height, width = frames.shape[:3]
    alpha = check_mattes(alpha, count, (height, width), name="alpha")
    seg = check_mattes(seg, count, (height, width), name="seg")
    evaluator = DEFAULT_EVALUATOR if evaluator is None else evaluator
    if not callable(evaluator):
        raise ValueError(f"evaluator must be callable as evaluator(frames, alpha, seg), got {type(evaluator).__name__}")
    check_int(chunk, name="chunk", low=1)
    check_callable(progress, name="progress")
    check_callable(check_interrupt, name="check_interrupt")

    def judge(part: slice) -> torch.Tensor:
        error = evaluator(frames[part], alpha[part], seg[part])
        expected = [len(range(count)[part]), height, width]
        if not isinstance(error, torch.Tensor) or list(error.shape) != expected:
            shape = list(error.shape) if isinstance(error, torch.Tensor) else type(error).__name__
            raise ValueError(f"evaluator returned {shape}, expected an error map [T,H,W] = {expected}")
        return error

    if alpha.requires_grad:
        return judge(slice(0, count))
    out = torch.empty(count, height, width, dtype=torch.float32)
    with torch.no_grad():
        for start in range(0, count, chunk):
            if check_interrupt is not None:
                check_interrupt()
            part = slice(start, min(start + chunk, count))
            out[part] = judge(part).float().cpu().clamp(0.0, 1.0)
            if progress is not None:
                progress(part.stop, count)
    return out


def reliable_map(error: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """The paper's evaluation map M_eval: True where the alpha is reliable (error below `threshold`)."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    return error < threshold
