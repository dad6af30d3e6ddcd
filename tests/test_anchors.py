"""Keyframes as anchors: every anchor frame equals its own pass, segments join two independent passes by their
definition (linear, cosine, quality), objects match their single-object runs, and the default is unchanged."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import ellipse_mask, random_frames
from scipy.ndimage import gaussian_filter

from matanyone2_core import matte_objects, matte_video
from matanyone2_core.engine.anchors import distance_weight, join_passes
from matanyone2_core.quality import evaluate_matte

H, W, T = 48, 64, 10


@pytest.fixture(scope="module")
def clip():
    frames = random_frames(T, H, W, seed=8)
    first = ellipse_mask(H, W)
    key = torch.zeros(H, W)
    key[8:40, 12:44] = 1
    return frames, first, key


def _forward(model, frames, mask, start, stop):
    """A single forward pass from `start` (its mask) over frames start..stop."""
    return matte_video(model, frames[start : stop + 1], mask, warmup=1)


def _backward(model, frames, mask, start, stop):
    """A single backward pass from `stop` (its mask) over frames stop..start, in clip order."""
    return matte_video(model, frames[start : stop + 1].flip(0), mask, warmup=1).flip(0)


def test_the_default_mode_is_the_official_reprompting(model, clip):
    frames, first, key = clip
    plain = matte_video(model, frames, first, warmup=1, keyframes={6: key})
    assert torch.equal(plain, matte_video(model, frames, first, warmup=1, keyframes={6: key}, keyframe_mode="reprompt"))
    assert torch.equal(plain[:6], matte_video(model, frames, first, warmup=1)[:6])  # frames before are untouched


@pytest.mark.parametrize("blend", ["linear", "cosine"])
def test_distance_blends_follow_their_definition(model, clip, blend):
    frames, first, key = clip
    anchors = matte_video(model, frames, first, warmup=1, anchor=2, keyframes={7: key}, keyframe_mode="anchors",
                          blend=blend)  # fmt: skip
    before = _backward(model, frames, first, 0, 2)
    fwd, bwd = _forward(model, frames, first, 2, 7), _backward(model, frames, key, 2, 7)
    after = _forward(model, frames, key, 7, T - 1)
    assert torch.equal(anchors[:3], before)  # frames before the first anchor: its backward pass
    assert torch.equal(anchors[2], fwd[0]) and torch.equal(anchors[7], after[0])  # anchors keep their own alpha
    assert torch.equal(anchors[7:], after)  # after the last anchor: its forward pass
    for t in range(3, 7):
        s = (t - 2) / 5
        w = 1 - s if blend == "linear" else 0.5 * (1 + math.cos(math.pi * s))
        assert distance_weight(t, 2, 7, blend) == pytest.approx(w)
        expected = w * fwd[t - 2] + (1 - w) * bwd[t - 2]
        assert float((anchors[t] - expected).abs().max()) < 1e-6, t


def test_quality_blend_follows_its_definition(model, clip):
    """The quality join recomputed from the module docstring's formulas with scipy's filters."""
    frames, first, key = clip
    anchors = matte_video(model, frames, first, warmup=1, keyframes={T - 1: key}, keyframe_mode="anchors")
    fwd, bwd = _forward(model, frames, first, 0, T - 1), _backward(model, frames, key, 0, T - 1)
    assert torch.equal(anchors[0], fwd[0]) and torch.equal(anchors[-1], bwd[-1])
    evidence = {}
    small = (H // 4, W // 4)
    for t in range(1, T - 1):
        seg = (torch.maximum(fwd[t], bwd[t]) > 0.5).float()
        errs = [torch.nn.functional.interpolate(evaluate_matte(frames[t : t + 1], a[None], seg[None])[None],
                                                size=small, mode="area")[0, 0] for a in (fwd[t], bwd[t])]  # fmt: skip
        log_ratio = torch.log((errs[1] + 0.05) / (errs[0] + 0.05))
        sigma = max(1.0, 0.01 * min(small))
        evidence[t] = torch.from_numpy(gaussian_filter(log_ratio.double().numpy(), sigma, mode="nearest",
                                                       truncate=3.0)).float()  # fmt: skip
    taps = torch.exp(-(torch.arange(-3, 4).double() ** 2) / (2 * 1.5**2))
    for t in range(1, T - 1):
        near = [u for u in range(t - 3, t + 4) if 0 < u < T - 1]
        weights = torch.stack([taps[u - t + 3] for u in near])
        smooth = sum(float(w) * evidence[u] for w, u in zip(weights / weights.sum(), near, strict=True))
        smooth = torch.nn.functional.interpolate(smooth[None, None], size=(H, W), mode="bilinear",
                                                 align_corners=False)[0, 0]  # fmt: skip
        p, q = 1 - t / (T - 1), torch.sigmoid(smooth)
        w = p * q / (p * q + (1 - p) * (1 - q))  # Bayes' rule in odds form: linear prior, evidence ratio
        expected = w * fwd[t] + (1 - w) * bwd[t]
        assert float((anchors[t] - expected).abs().max()) < 1e-4, t
    # The streaming join equals the whole-pass join of the same two passes.
    assert torch.allclose(join_passes(frames, fwd, bwd, 0, T - 1), anchors, atol=1e-6)


def test_a_custom_evaluator_decides_which_pass_wins(model, clip):
    frames, first, key = clip
    fwd, bwd = _forward(model, frames, first, 0, T - 1), _backward(model, frames, key, 0, T - 1)
    middle = T // 2
    p = 1 - middle / (T - 1)

    def backward_is_wrong(f, a, seg):  # error 1 for the backward pass's alphas, 0 for anything else
        return torch.ones_like(a) if any(torch.equal(a[0], b) for b in bwd) else torch.zeros_like(a)

    # no difference: the linear join; the backward pass wrong: odds p/(1-p) times (1 + 0.05) / 0.05
    for evaluator, odds in ((lambda f, a, seg: torch.zeros_like(a), 1.0), (backward_is_wrong, 1.05 / 0.05)):
        joined = join_passes(frames, fwd, bwd, 0, T - 1, evaluator=evaluator)
        w = p * odds / (p * odds + (1 - p))
        assert torch.allclose(joined[middle], w * fwd[middle] + (1 - w) * bwd[middle], atol=1e-5)


def test_objects_in_anchors_mode_equal_their_single_runs(model, clip):
    frames, first, key = clip
    masks = torch.stack([first, key])
    keys = {6: torch.stack([key, first])}
    together = matte_objects(model, frames, masks, warmup=1, keyframes=keys, keyframe_mode="anchors", blend="quality")
    for i in range(2):
        alone = matte_video(model, frames, masks[i], warmup=1, keyframes={6: keys[6][i]}, keyframe_mode="anchors")
        assert float((together[i] - alone).abs().max()) < 1e-5, i
    with pytest.raises(ValueError, match="anchors mode needs a mask for every object; objects \\[1\\]"):
        matte_objects(model, frames, masks, warmup=1, keyframes={6: {0: key}}, keyframe_mode="anchors")


def test_progress_counts_visits_and_bad_modes_are_refused(model, clip):
    frames, first, key = clip
    seen = []
    matte_video(model, frames, first, warmup=0, anchor=1, keyframes={5: key}, keyframe_mode="anchors", blend="linear",
                progress=lambda d, t: seen.append((d, t)))  # fmt: skip
    assert seen[-1] == (T + 3, T + 3) and [d for d, _ in seen] == list(range(1, T + 4))
    with pytest.raises(ValueError, match="keyframe_mode must be one of"):
        matte_video(model, frames, first, keyframe_mode="both")
    with pytest.raises(ValueError, match="blend must be one of"):
        matte_video(model, frames, first, keyframe_mode="anchors", blend="average")
    with pytest.raises(ValueError, match="evaluator must be a callable"):
        matte_video(model, frames, first, keyframe_mode="anchors", evaluator="analytic")
