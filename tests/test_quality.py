"""Matte quality without ground truth: the evaluator interface, the analytic evaluator against its stated
formulas, fusion against its definition (and scipy's Gaussian), the image branch against one-frame
matte_video runs, keyframe suggestions, degradations and labels, the validation suite and its command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ellipse_mask, random_frames

from matanyone2_core import matte_video
from matanyone2_core.quality import (
    AnalyticEvaluator,
    degrade,
    error_heatmap,
    evaluate_matte,
    frame_scores,
    frame_strip,
    fuse_mattes,
    fusion_map,
    matte_frames,
    reliable_map,
    suggest_keyframes,
)
from matanyone2_core.quality.validate import realistic_segmentation, run_validation

ROOT = Path(__file__).parent.parent
H, W = 64, 80


def _disc(h=H, w=W, r=20.0, cy=None, cx=None) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    cy = h / 2 if cy is None else cy
    cx = w / 2 if cx is None else cx
    return (((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r).float()


def _two_colour_clip(alpha: torch.Tensor) -> torch.Tensor:
    """Frames that obey the compositing model exactly with flat colours: I = a*F + (1-a)*B."""
    fg, bg = torch.tensor([0.9, 0.3, 0.2]), torch.tensor([0.1, 0.4, 0.8])
    return alpha[..., None] * fg + (1 - alpha[..., None]) * bg


# --------------------------------------------------------------------------------------------- interface


def test_evaluate_matte_returns_probabilities_and_broadcasts_one_mask():
    seg = _disc()[None].repeat(3, 1, 1)
    frames = random_frames(3, H, W)
    error = evaluate_matte(frames, seg, seg[0])
    assert error.shape == (3, H, W) and error.dtype == torch.float32 and error.device.type == "cpu"
    assert 0 <= float(error.min()) and float(error.max()) <= 1
    assert torch.equal(error, evaluate_matte(frames, seg, seg))


def test_any_callable_is_an_evaluator():
    frames, alpha = random_frames(2, H, W), _disc()[None].repeat(2, 1, 1)
    calls = []

    def constant(f, a, s):
        calls.append((f.shape, a.shape, s.shape))
        return torch.full(a.shape, 0.25)

    error = evaluate_matte(frames, alpha, alpha[0], evaluator=constant)
    assert torch.equal(error, torch.full((2, H, W), 0.25))
    assert calls == [((2, H, W, 3), (2, H, W), (2, H, W))]


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(alpha=torch.rand(2, H, W + 1)), "alpha must be \\[T,H,W\\]"),
        (dict(alpha=torch.rand(3, H, W)), "alpha has 3 frames but frames has 2"),
        (dict(alpha=torch.rand(2, H, W) * 2), "alpha must be finite values in 0..1"),
        (dict(seg=torch.rand(2, H, W).to(torch.int64)), "seg must be floating point"),
        (dict(frames=torch.rand(2, H, W, 3) * 255), "frames: frame 0 has values"),
        (dict(evaluator="analytic"), "evaluator must be callable"),
        (dict(evaluator=lambda f, a, s: torch.zeros(1, 2)), "evaluator returned \\[1, 2\\]"),
    ],
)
def test_bad_input_is_refused(change, message):
    args = dict(frames=random_frames(2, H, W), alpha=torch.rand(2, H, W), seg=torch.rand(2, H, W))
    args.update(change)
    with pytest.raises(ValueError, match=message):
        evaluate_matte(args.pop("frames"), args.pop("alpha"), args.pop("seg"), **args)


def test_reliable_map_is_error_below_threshold():
    error = torch.tensor([[0.0, 0.49, 0.5, 0.51, 1.0]])
    assert reliable_map(error).tolist() == [[True, True, False, False, False]]
    assert reliable_map(error, threshold=0.6).tolist() == [[True, True, True, True, False]]
    with pytest.raises(ValueError, match="threshold"):
        reliable_map(error, threshold=0)


# --------------------------------------------------------------------------------------------- analytic


def test_a_correct_matte_of_a_flat_two_colour_scene_has_no_error():
    soft = torch.nn.functional.avg_pool2d(_disc()[None, None], 3, stride=1, padding=1)[0]  # a soft edge
    error = evaluate_matte(_two_colour_clip(soft), soft, (soft > 0.5).float())
    assert float(error.max()) < 0.05


def test_the_semantic_term_follows_its_formula_on_a_hole():
    """A 7x7 hole in the foreground core. After the 3x3 mean the inner 5x5 read 0 (evidence 1), the 20 edge
    pixels of the hole 1/3 (evidence (0.5 - 1/3) / 0.5 = 1/3), its corners 5/9 and everything outside more
    (evidence 0); at the hole's centre the 15x15 patch mean is (25 + 20/3) / 225 and the probability
    s^2 / (s^2 + 0.01^2). Flat frames keep the detail term silent."""
    seg = _disc(r=24.0)
    alpha = seg.clone()
    cy, cx = H // 2, W // 2
    alpha[cy - 3 : cy + 4, cx - 3 : cx + 4] = 0
    frames = torch.full((1, H, W, 3), 0.5)
    terms = AnalyticEvaluator().terms(frames, alpha[None], seg[None])
    s = (25 + 20 / 3) / 225
    assert float(terms["semantic"][0, cy, cx]) == pytest.approx(s, abs=1e-6)
    assert float(terms["error"][0, cy, cx]) == pytest.approx(s * s / (s * s + 0.01**2), abs=1e-5)
    assert float(terms["p_detail"].max()) == 0.0  # no colour variance: nothing to judge the boundary by
    far = terms["error"][0, :, :4]  # background core, alpha 0 = seg
    assert float(far.max()) == 0.0


def test_blobs_are_flagged_but_a_strand_outside_the_segmentation_is_not():
    seg = _disc(r=14.0, cx=24)
    alpha = seg.clone()
    alpha[10:18, 58:66] = 1.0  # an 8x8 blob far from the subject
    alpha[50, 40:76] = 0.9  # ... and a one-pixel strand the segmentation missed (a 3x3 opening removes it)
    error = evaluate_matte(torch.full((1, H, W, 3), 0.5), alpha[None], seg[None])[0]
    assert float(error[14, 62]) > 0.9
    assert float(error[50, 58]) < 0.05


def test_the_detail_term_flags_a_binarised_edge_and_not_the_true_soft_edge():
    gen = torch.Generator().manual_seed(0)
    soft = torch.nn.functional.avg_pool2d(_disc()[None, None], 5, stride=1, padding=2)[0]
    frames = _two_colour_clip(soft) + 0.02 * torch.rand(1, H, W, 3, generator=gen)  # a little sensor noise
    seg = (soft > 0.5).float()
    good = evaluate_matte(frames.clamp(0, 1), soft, seg)
    hard = evaluate_matte(frames.clamp(0, 1), (soft > 0.5).float(), seg)
    edge = (soft > 0.05) & (soft < 0.95)
    assert float(good[edge].mean()) < 0.1 < 0.5 < float(hard[edge].mean())


def test_chunking_progress_and_interrupt():
    frames, seg = random_frames(5, H, W), _disc()[None].repeat(5, 1, 1)
    alpha = (seg + 0.1 * torch.rand(5, H, W)).clamp(0, 1)
    whole = AnalyticEvaluator()(frames, alpha, seg)
    seen = []
    chunked = evaluate_matte(frames, alpha, seg, chunk=2, progress=lambda d, t: seen.append((d, t)))
    assert torch.allclose(chunked, whole, atol=1e-6) and seen == [(2, 5), (4, 5), (5, 5)]
    assert torch.equal(evaluate_matte(frames, alpha, seg, evaluator=AnalyticEvaluator(device="cpu"), chunk=1),
                       evaluate_matte(frames, alpha, seg, chunk=1))  # fmt: skip

    class Stop(Exception):
        pass

    calls = []

    def stop_second():
        calls.append(1)
        if len(calls) == 2:
            raise Stop

    with pytest.raises(Stop):
        evaluate_matte(frames, alpha, seg, chunk=2, check_interrupt=stop_second)


def test_the_error_is_differentiable_in_alpha_and_descends():
    """Gradient steps on the alpha against the mean error (the L_eval use) fill a hole the evaluator sees."""
    seg = _disc(r=24.0)[None]
    alpha = seg.clone()
    alpha[0, 28:36, 36:44] = 0.0
    frames = torch.full((1, H, W, 3), 0.5)
    alpha = alpha.requires_grad_(True)
    opt = torch.optim.SGD([alpha], lr=2000.0)
    losses = []
    for _ in range(15):
        loss = evaluate_matte(frames, alpha, seg).mean()
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        assert float(alpha.grad.abs().sum()) > 0 or losses[-1] == 0
        opt.step()
        with torch.no_grad():
            alpha.clamp_(0, 1)
    assert losses[0] > 0.01 and losses[-1] < 0.2 * losses[0]
    assert float(alpha.detach()[0, 28:36, 36:44].mean()) > 0.4


# --------------------------------------------------------------------------------------------- fusion


def test_fusion_follows_its_definition():
    from scipy.ndimage import gaussian_filter

    gen = torch.Generator().manual_seed(3)
    av, ai, ev, ei = (torch.rand(2, H, W, generator=gen) for _ in range(4))
    sigma = 2.0
    fused = fuse_mattes(av, ai, ev, ei, sigma=sigma)
    expected = []
    for t in range(2):
        m = gaussian_filter(((1 - ei[t]) * ev[t]).double().numpy(), sigma, mode="nearest", truncate=3.0)
        expected.append(m * ai[t].numpy() + (1 - m) * av[t].numpy())
    assert np.abs(fused.numpy() - np.stack(expected)).max() < 1e-5
    no_blur = fuse_mattes(av, ai, ev, ei, sigma=0)
    m = (1 - ei) * ev
    assert torch.allclose(no_blur, m * ai + (1 - m) * av, atol=1e-6)


def test_binary_fusion_is_the_papers_rule():
    av, ai = torch.zeros(1, H, W), torch.ones(1, H, W)
    ev, ei = torch.zeros(1, H, W), torch.zeros(1, H, W)
    ev[0, :, W // 2 :] = 0.9  # video unreliable on the right
    ei[0, : H // 2] = 0.8  # image unreliable at the top
    m = fusion_map(ev, ei, sigma=0, binary=True)
    expected = ((ei < 0.5) & ~(ev < 0.5)).float()
    assert torch.equal(m, expected)
    assert torch.equal(fuse_mattes(av, ai, ev, ei, sigma=0, binary=True), expected)


def test_fusion_refuses_mismatched_inputs():
    a = torch.rand(2, H, W)
    with pytest.raises(ValueError, match="alpha_image has 3 frames"):
        fuse_mattes(a, torch.rand(3, H, W), a, a)
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        fuse_mattes(a, a, a, a, sigma=-1)
    with pytest.raises(ValueError, match="alpha_video must be a \\[T,H,W\\] tensor"):
        fuse_mattes(a[0], a, a, a)


# --------------------------------------------------------------------------------------------- image branch


def test_matte_frames_equals_one_frame_matte_video_runs(model):
    frames = random_frames(3, 48, 64, seed=4)
    seg = torch.stack([ellipse_mask(48, 64), torch.zeros(48, 64), ellipse_mask(48, 64).roll(3, dims=1)])
    seen = []
    alpha = matte_frames(model, frames, seg, warmup=1, erode=3, dilate=3, progress=lambda d, t: seen.append(d))
    for t in (0, 2):
        single = matte_video(model, frames[t : t + 1], seg[t], warmup=1, erode=3, dilate=3)[0]
        assert torch.equal(alpha[t], single)
    assert torch.equal(alpha[1], torch.zeros(48, 64))  # an empty mask: nothing to matte
    assert seen == [1, 2, 3]
    with pytest.raises(ValueError, match="seg must be \\[T,H,W\\] with T = 3"):
        matte_frames(model, frames, seg[:2])


# --------------------------------------------------------------------------------------------- keyframes


def test_suggest_keyframes_picks_the_worst_frames_apart():
    error = torch.zeros(30, 8, 8)
    for index, level in ((4, 0.9), (5, 0.8), (20, 0.5), (27, 0.6), (12, 0.1)):
        error[index] = level
    assert frame_scores(error)[4] == pytest.approx(0.9)
    assert suggest_keyframes(error, count=3, min_gap=5) == [4, 27, 20]
    assert suggest_keyframes(error, count=5, min_gap=0) == [4, 5, 27, 20, 12]
    assert suggest_keyframes(error, count=5, min_gap=5, min_score=0.55) == [4, 27]
    with pytest.raises(ValueError, match="count must be an int >= 1"):
        suggest_keyframes(error, count=0)


def test_heatmap_and_strip():
    frames = torch.full((2, 10, 20, 3), 0.5)
    error = torch.zeros(2, 10, 20)
    error[1] = 1.0
    heat = error_heatmap(frames, error)
    assert torch.allclose(heat[0], torch.full((10, 20, 3), 0.3))  # reliable: the dimmed frame
    assert float(heat[1, ..., 0].mean()) > float(heat[1, ..., 2].mean()) + 0.4  # wrong: red
    strip = frame_strip(heat, [1, 0], height=5, gap=2)
    assert strip.shape == (1, 5, 10 + 2 + 10, 3)
    assert torch.allclose(strip[0, :, 10:12], torch.ones(5, 2, 3))


# --------------------------------------------------------------------------------------------- degradations


def test_degradations_are_reproducible_and_labelled():
    from matanyone2_core.synthetic import make_clip

    gt = make_clip(96, 128, 2, seed=2).alpha
    assert not degrade.error_labels(gt, gt)["label"].any()
    for name in degrade.DEGRADATIONS:
        bad = degrade.degrade(gt, name, seed=5)
        assert bad.shape == gt.shape and 0 <= float(bad.min()) and float(bad.max()) <= 1
        assert torch.equal(bad, degrade.degrade(gt, name, seed=5))
        labels = degrade.error_labels(bad, gt)["label"]
        assert 0 < float(labels.float().mean()) < 0.5, name
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade.degrade(gt, "smudge")


def test_patch_mad_label_by_hand():
    gt = torch.zeros(1, 20, 20)
    pred = gt.clone()
    pred[0, 10, 10] = 1.0  # one pixel off by 1: patch MAD 1/81 < 0.04 ... grad difference decides
    pred2 = gt.clone()
    pred2[0, 8:12, 8:12] = 1.0  # 16 pixels: MAD 16/81 at the centre
    labels = degrade.error_labels(pred2, gt)
    assert float(labels["mad"][0, 10, 10]) == pytest.approx(16 / 81, abs=1e-6)
    assert bool(labels["label"][0, 10, 10]) and not bool(labels["label"][0, 0, 0])


# --------------------------------------------------------------------------------------------- validation


def test_validation_suite_on_a_small_run():
    report = run_validation(clips=1, frames=2, height=144, width=256, seed=0)
    assert set(report.degradations) == set(degrade.DEGRADATIONS)
    assert report.gt_flagged < 0.02
    assert report.degradations["holes"]["f1"] > 0.5 and report.degradations["hard_edges"]["f1"] > 0.4
    fusion = report.fusion
    fused = fusion["fused (binary map, paper)"]
    for branch in ("video branch (hard edges near the boundary)", "image branch (holes + blobs)"):
        assert fused["MAD"] < fusion[branch]["MAD"] and fused["Grad"] < fusion[branch]["Grad"]
    assert "| holes |" in report.markdown()


def test_realistic_segmentation_drops_strands():
    alpha = torch.zeros(1, 20, 20)
    alpha[0, 5:15, 5:15] = 1.0
    alpha[0, 2, :] = 0.9  # a one-pixel strand
    seg = realistic_segmentation(alpha)
    assert seg[0, 10, 10] == 1 and seg[0, 2].sum() == 0


def test_validate_evaluator_command(tmp_path):
    out = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "matanyone2_core", "validate-evaluator", "--clips", "1", "--frames", "1",
         "--height", "64", "--width", "96", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "| hard_edges |" in done.stdout
    assert set(json.loads(out.read_text())["degradations"]) == set(degrade.DEGRADATIONS)
    bad = subprocess.run([sys.executable, "-m", "matanyone2_core", "validate-evaluator", "--clips", "0"],
                         cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and "--clips must be >= 1" in bad.stderr


def test_filters_match_their_definitions():
    from scipy.ndimage import binary_dilation, binary_erosion, uniform_filter

    from matanyone2_core.quality.filters import box_mean, dilate, erode

    gen = torch.Generator().manual_seed(7)
    x = torch.rand(1, 2, 23, 31, generator=gen)
    for radius in (1, 3, 8):
        # clipped-window mean = window sum / number of pixels inside; scipy's zero-padded means give both
        size = 2 * radius + 1
        sums = uniform_filter(x.double().numpy(), size=(1, 1, size, size), mode="constant") * size * size
        inside = uniform_filter(np.ones((1, 1, 23, 31)), size=(1, 1, size, size), mode="constant") * size * size
        assert np.abs(box_mean(x, radius).numpy() - sums / inside).max() < 1e-5
    mask = (torch.rand(1, 1, 23, 31, generator=gen) > 0.7).float()
    square = np.ones((5, 5), dtype=bool)
    assert np.array_equal(dilate(mask, 2)[0, 0].numpy() > 0, binary_dilation(mask[0, 0].numpy() > 0, square))
    assert np.array_equal(erode(mask, 2)[0, 0].numpy() > 0,
                          binary_erosion(mask[0, 0].numpy() > 0, square, border_value=1))  # fmt: skip
