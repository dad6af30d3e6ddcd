"""Keyframes as anchors: every keyframe (and the first mask) is an anchor matted in both directions, and the two
passes over each segment between anchors are joined where each side is more reliable.

Passes. With anchors p0 < p1 < ... < pm: frames before p0 are matted backward from p0 and frames after pm
forward from pm; a segment (p_i, p_i+1) is matted forward from p_i and backward from p_i+1, each pass a
session with its own memory, seeded only with its anchor's mask. The two passes that start at the same
anchor share its first step (mask, warm-up): the session is forked after it, so each anchor is warmed up
once. An anchor frame keeps that step's alpha exactly; each frame inside a segment is encoded by each of the
two passes that visit it, every other frame once.

Joining (forward weight w, alpha = w * alpha_forward + (1 - w) * alpha_backward, with s = (t - p_i) /
(p_i+1 - p_i) the position in the segment):

* `linear`: w = 1 - s; `cosine`: w = (1 + cos(pi s)) / 2 (both 1 at p_i and 0 at p_i+1).
* `quality`: per pixel, the linear weight as a prior, moved by the evidence of the two passes' error maps
  (the evaluator, analytic by default, judging each pass against the segmentation
  `max(alpha_forward, alpha_backward) > 0.5`, the union: a part that one pass lost is then a hole in it, the
  typical drift, rather than a blob in the other). The evidence for the forward pass is the log ratio
  `l = log((e_backward + 0.05) / (e_forward + 0.05))` (0 where both look equally right or wrong), computed
  at a quarter of the resolution and Gaussian-smoothed in space (sigma 1 % of the short side, at least 1 px
  at that resolution) and in time (sigma `temporal_sigma` frames within the segment); then
  `w = p q / (p q + (1 - p)(1 - q))` with `p = 1 - s` and `q = sigmoid(l_smooth)`, Bayes' rule in odds form:
  where the evaluator sees no difference the join is the linear one, where it sees one pass wrong the other
  takes over, and at the anchors (p = 1 or 0) each anchor keeps its own alpha whatever the evidence.

Host memory: the output alphas, the low-resolution trust maps of one segment and the forward alphas of the
last few frames (the temporal smoothing's look-ahead): never a second full-resolution copy of the clip.
"""

from __future__ import annotations

import copy
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ..network.model import MatAnyone2Network
from .options import MattingOptions
from .session import MattingSession

KEYFRAME_MODES = ("reprompt", "anchors")
BLENDS = ("quality", "linear", "cosine")
TRUST_EPS = 0.05  # floor of the error maps in the evidence: low errors on both sides are no evidence
TRUST_SCALE = 4  # trust maps are computed at 1/4 of the frame size (they are smoothed anyway)
SPATIAL_SIGMA = 0.01  # of the short side


def distance_weight(t: int, start: int, end: int, blend: str) -> float:
    """The forward pass's weight at frame `t` of the segment (start, end) for the `linear` / `cosine` joins
    (and the fallback of `quality`): 1 at `start`, 0 at `end`."""
    s = (t - start) / (end - start)
    if blend == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * s))
    return 1.0 - s


def _fork(session: MattingSession) -> MattingSession:
    """An independent copy of a session's state (its own memory), sharing the model and the options."""
    clone = copy.copy(session)
    clone.groups = copy.deepcopy(session.groups)
    return clone


def _gaussian1d(sigma: float) -> torch.Tensor:
    half = max(1, math.ceil(2.0 * sigma))
    x = torch.arange(-half, half + 1, dtype=torch.float64)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return (k / k.sum()).float()


class _QualityJoin:
    """Per-pixel forward weights of one segment from the passes' error maps (see the module docstring)."""

    def __init__(self, evaluator, frames: torch.Tensor, start: int, end: int, temporal_sigma: float):
        self.evaluator, self.frames, self.start, self.end = evaluator, frames, start, end
        height, width = frames.shape[1:3]
        self.small = (max(1, height // TRUST_SCALE), max(1, width // TRUST_SCALE))
        self.sigma = max(1.0, SPATIAL_SIGMA * min(self.small))
        self.kernel = _gaussian1d(temporal_sigma) if temporal_sigma > 0 else torch.ones(1)
        self.half = self.kernel.numel() // 2
        self.evidence: dict[int, torch.Tensor] = {}  # frame -> log ratio [N,h,w] at the small size

    def _errors(self, t: int, alpha: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        """Error maps `[N,h,w]` of `alpha` `[N,H,W]` at frame t, at the small size."""
        from ..quality.evaluate import evaluate_matte

        frame = self.frames[t : t + 1].float()
        maps = [evaluate_matte(frame, alpha[i : i + 1], seg[i : i + 1], evaluator=self.evaluator)[0]
                for i in range(alpha.shape[0])]  # fmt: skip
        errors = torch.stack(maps)[:, None]
        return F.interpolate(errors, size=self.small, mode="area")[:, 0]

    def add(self, t: int, forward: torch.Tensor, backward: torch.Tensor) -> None:
        """Record frame t's evidence from the two passes' alphas `[N,H,W]`."""
        from ..quality.filters import gaussian_blur

        seg = (torch.maximum(forward, backward) > 0.5).float()
        e_f, e_b = self._errors(t, forward, seg), self._errors(t, backward, seg)
        evidence = torch.log((e_b + TRUST_EPS) / (e_f + TRUST_EPS))
        self.evidence[t] = gaussian_blur(evidence[:, None], self.sigma)[:, 0]

    def ready(self, t: int, last_added: int) -> bool:
        """Whether frame t's temporally smoothed weight can be formed (its look-ahead has been added)."""
        return last_added >= min(t + self.half, self.end - 1)

    def weight(self, t: int, size: tuple[int, int]) -> torch.Tensor:
        """Frame t's forward weight `[N,H,W]`: the linear prior moved by the smoothed evidence."""
        frames = [u for u in range(t - self.half, t + self.half + 1) if self.start < u < self.end]
        taps = torch.stack([self.kernel[u - t + self.half] for u in frames])
        smooth = sum(w * self.evidence[u] for w, u in zip(taps / taps.sum(), frames, strict=True))
        smooth = F.interpolate(smooth[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
        for u in [u for u in self.evidence if u < t - self.half]:
            del self.evidence[u]  # only the look-back window stays
        p = 1.0 - (t - self.start) / (self.end - self.start)
        q = torch.sigmoid(smooth)
        return (p * q / (p * q + (1 - p) * (1 - q))).clamp(0.0, 1.0)


def join_passes(
    frames: torch.Tensor,
    forward: torch.Tensor,
    backward: torch.Tensor,
    start: int,
    end: int,
    *,
    blend: str = "quality",
    evaluator=None,
    temporal_sigma: float = 1.5,
) -> torch.Tensor:
    """The join of two whole passes over the segment (start, end): `forward` / `backward` `[T,H,W]` (or
    `[N,T,H,W]`) hold each pass's alphas for the clip frames start..end (`T = end - start + 1`, frames
    `frames[start:end+1]`); returns the joined alphas of those frames, the anchors' kept as they are. The
    same weights as `run_anchor_passes` (for analysis and for pass outputs made elsewhere)."""
    if blend not in BLENDS:
        raise ValueError(f"blend must be one of {BLENDS}, got {blend!r}")
    multi = forward.ndim == 4
    fwd, bwd = (forward, backward) if multi else (forward[None], backward[None])
    if fwd.shape != bwd.shape or fwd.shape[1] != end - start + 1:
        raise ValueError(f"forward {list(forward.shape)} and backward {list(backward.shape)} must both cover frames "
                         f"{start}..{end}")  # fmt: skip
    out = fwd.clone()
    out[:, -1] = bwd[:, -1]
    join = _QualityJoin(evaluator, frames, start, end, temporal_sigma) if blend == "quality" else None
    for t in range(start + 1, end):
        if join is not None:
            join.add(t, fwd[:, t - start], bwd[:, t - start])
    for t in range(start + 1, end):
        w = join.weight(t, tuple(fwd.shape[-2:])) if join is not None else distance_weight(t, start, end, blend)
        out[:, t - start] = w * fwd[:, t - start] + (1 - w) * bwd[:, t - start]
    return out if multi else out[0]


def run_anchor_passes(
    model: MatAnyone2Network,
    frames: torch.Tensor,
    anchors: Mapping[int, Any],
    options: MattingOptions,
    out: torch.Tensor,
    *,
    num_objects: int | None,
    blend: str,
    evaluator=None,
    temporal_sigma: float = 1.5,
    progress: Callable[[int, int], None] | None = None,
    check_interrupt: Callable[[], None] | None = None,
) -> None:
    """Matte the clip with every anchor (frame -> its mask, `[H,W]`, or `[N,H,W]` for several objects) matted
    in both directions, writing into `out` (`[T,H,W]`, or `[N,T,H,W]`); see the module docstring.

    `progress(done, total)` counts frame visits (a frame inside a segment is visited by two passes)."""
    total = frames.shape[0]
    points: Sequence[int] = sorted(anchors)
    multi = num_objects is not None
    visits = total + sum(b - a - 1 for a, b in zip(points, points[1:], strict=False))
    done = 0

    def put(t: int, alpha: torch.Tensor) -> None:
        nonlocal done
        if multi:
            out[:, t] = alpha
        else:
            out[t] = alpha
        done += 1
        if progress is not None:
            progress(done, visits)

    def get(t: int) -> torch.Tensor:
        return out[:, t] if multi else out[t][None]

    def session() -> MattingSession:
        return MattingSession(model, options, check_interrupt=check_interrupt, num_objects=num_objects)

    sessions: list[MattingSession] = []
    try:
        first = session()
        sessions.append(first)
        put(points[0], first.step(frames[points[0]], anchors[points[0]]))
        forward = _fork(first)
        sessions.append(forward)
        for t in range(points[0] - 1, -1, -1):  # before the first anchor: backward only
            put(t, first.step(frames[t]))
        first.close()

        for a, b in zip(points, points[1:], strict=False):
            backward = session()
            sessions.append(backward)
            put(b, backward.step(frames[b], anchors[b]))
            next_forward = _fork(backward)
            sessions.append(next_forward)
            for t in range(b - 1, a, -1):
                put(t, backward.step(frames[t]))
            backward.close()

            join = _QualityJoin(evaluator, frames, a, b, temporal_sigma) if blend == "quality" else None
            pending: deque[tuple[int, torch.Tensor]] = deque()  # forward alphas waiting for their look-ahead
            for t in range(a + 1, b):
                alpha = forward.step(frames[t])
                alpha = alpha if multi else alpha[None]
                if join is None:
                    w = distance_weight(t, a, b, blend)
                    blended = w * alpha + (1 - w) * get(t)
                    put(t, blended if multi else blended[0])
                    continue
                join.add(t, alpha, get(t))
                pending.append((t, alpha))
                while pending and join.ready(pending[0][0], t):
                    u, alpha_u = pending.popleft()
                    w = join.weight(u, tuple(alpha_u.shape[-2:]))
                    blended = w * alpha_u + (1 - w) * get(u)
                    put(u, blended if multi else blended[0])
            forward.close()
            forward = next_forward

        for t in range(points[-1] + 1, total):  # after the last anchor: forward only
            put(t, forward.step(frames[t]))
    finally:
        for s in sessions:
            s.close()
