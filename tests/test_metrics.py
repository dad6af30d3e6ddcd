"""Metrics: hand-computed tiny cases and an independent OpenCV reference written from the definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from matanyone2_core import metrics as M

cv2 = pytest.importorskip("cv2")


def t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float32))


# --------------------------------------------------------------------------------- reference (OpenCV)


def ref_kernels() -> tuple[np.ndarray, np.ndarray]:
    sigma, eps = 1.4, 1e-2
    h = int(np.ceil(sigma * np.sqrt(-2 * np.log(np.sqrt(2 * np.pi) * sigma * eps))))
    r = np.arange(-h, h + 1, dtype=np.float64)
    gauss = np.exp(-(r**2) / (2 * sigma**2)) / (sigma * np.sqrt(2 * np.pi))
    dgauss = -r * gauss / sigma**2
    kx = np.outer(gauss, dgauss)  # kx[i, j] = G(i - h) G'(j - h)
    kx /= np.linalg.norm(kx)
    return kx, kx.T.copy()


def ref_grad(p: np.ndarray, g: np.ndarray, normalise: bool) -> float:
    kx, ky = ref_kernels()

    def mag(a):
        if normalise:
            out = np.zeros_like(a)
            cv2.normalize(a, out, 1.0, 0.0, cv2.NORM_MINMAX)
            a = out
        fx = cv2.filter2D(a, -1, kx, borderType=cv2.BORDER_REPLICATE)
        fy = cv2.filter2D(a, -1, ky, borderType=cv2.BORDER_REPLICATE)
        return np.sqrt(fx**2 + fy**2).astype(np.float32)

    return float(((mag(g) - mag(p)).astype(np.float64) ** 2).sum() / 1000)


def ref_conn(p: np.ndarray, g: np.ndarray) -> float:
    thresholds = np.arange(0, 1.1, 0.1)  # float64; compared with float32 alphas in float64 (NumPy 2)
    level = np.full(g.shape, -1.0, dtype=np.float32)
    for k in range(1, len(thresholds)):
        inter = ((g >= thresholds[k]) & (p >= thresholds[k])).astype(np.uint8)
        _, lab, stats, _ = cv2.connectedComponentsWithStats(inter, connectivity=4)
        largest = np.zeros(g.shape, dtype=bool)
        if stats.shape[0] > 1:
            largest = lab == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        level[(level == -1) & ~largest] = thresholds[k - 1]
    level[level == -1] = 1
    dg, dp = g - level, p - level
    phi_g = 1 - dg * (dg >= 0.15)
    phi_p = 1 - dp * (dp >= 0.15)
    return float(np.abs(phi_g - phi_p).astype(np.float64).sum() / 1000)


def ref_clip(p: np.ndarray, g: np.ndarray, protocol: str) -> dict[str, list[float]]:
    if protocol == "crgnn":
        idx = [10 * i for i in range(len(g)) if 10 * i < len(p)]
        p, g = p[idx], g[: len(idx)]
    out: dict[str, list[float]] = {"MAD": [], "MSE": [], "Grad": [], "Conn": [], "dtSSD": []}
    for i in range(len(p)):
        d = p[i].astype(np.float64) - g[i]
        out["MAD"].append(float(np.abs(d).mean() * 1e3))
        out["MSE"].append(float((d**2).mean() * 1e3))
        out["Grad"].append(ref_grad(p[i], g[i], normalise=protocol == "lr"))
        if protocol == "lr":
            out["Conn"].append(ref_conn(p[i], g[i]))
        if i == 0:
            out["dtSSD"].append(0.0)
        else:
            dd = (p[i].astype(np.float64) - p[i - 1]) - (g[i].astype(np.float64) - g[i - 1])
            out["dtSSD"].append(float(np.sqrt((dd**2).sum() / dd.size) * 1e2))
    if protocol != "lr":
        del out["Conn"]
    return out


def random_alpha(rng: np.random.Generator, t_: int, h: int, w: int) -> np.ndarray:
    """Matte-like random alphas: smooth blobs with saturated 0/1 plateaus, noise, 8-bit quantised."""
    coarse = rng.normal(0.5, 0.9, size=(t_, max(h // 8, 2), max(w // 8, 2))).astype(np.float32)
    up = np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_CUBIC) for c in coarse])
    a = np.clip(up + rng.normal(0, 0.08, size=up.shape), 0, 1)
    return (np.round(a * 255) / 255).astype(np.float32)


# -------------------------------------------------------------------------------------- hand-computed


def test_mad_mse_hand_computed():
    gt = t(np.zeros((1, 2, 2)))
    pred = t([[[0.5, 0.0], [0.0, 0.25]]])
    res = M.evaluate_sequence(pred, gt, protocol="hr")
    assert res["MAD"] == pytest.approx(0.75 / 4 * 1e3, rel=1e-9)
    assert res["MSE"] == pytest.approx((0.25 + 0.0625) / 4 * 1e3, rel=1e-9)
    assert set(res) == {"MAD", "MSE", "Grad", "dtSSD"}


def test_dtssd_hand_computed_first_frame_zero_and_in_mean():
    gt = t([[[0.0, 0.0]], [[1.0, 0.0]]])
    pred = t([[[0.0, 0.0]], [[0.5, 0.5]]])
    per = M.per_frame_metrics(pred, gt, protocol="hr")
    # frame 1: d = [-0.5, 0.5] -> sqrt(0.5 / 2) * 100 = 50
    assert per["dtSSD"] == pytest.approx([0.0, 50.0], abs=1e-9)
    assert M.evaluate_sequence(pred, gt, protocol="hr")["dtSSD"] == pytest.approx(25.0, abs=1e-9)


def test_identical_alphas_score_zero_everywhere():
    rng = np.random.default_rng(3)
    a = t(random_alpha(rng, 3, 24, 32))
    res = M.evaluate_sequence(a, a.clone(), protocol="lr")
    assert res == {"MAD": 0.0, "MSE": 0.0, "Grad": 0.0, "Conn": 0.0, "dtSSD": 0.0}


def test_kernel_shape_norm_and_ramp_response():
    kx, ky = M.gaussian_derivative_kernels(1.4)
    assert kx.shape == (9, 9)
    assert float((kx**2).sum()) == pytest.approx(1.0, abs=1e-12)
    assert torch.equal(ky, kx.T)
    # On a horizontal ramp x, correlation gives gx = sum_ij kx[i,j] * (j - 4) everywhere inside, gy = 0.
    ramp = torch.arange(20, dtype=torch.float32).repeat(20, 1) / 100
    mag = M.gradient_magnitude(ramp[None])[0]
    expected = abs(float((kx * (torch.arange(9, dtype=torch.float64) - 4)).sum())) / 100
    assert torch.allclose(mag[4:-4, 4:-4], torch.full((12, 12), expected, dtype=torch.float32), rtol=1e-5)
    # G'(x) = -x G(x) / sigma^2 makes the response negative for an increasing ramp.
    assert float((kx * (torch.arange(9, dtype=torch.float64) - 4)).sum()) < 0


def test_grad_minmax_flag_lr_vs_hr():
    rng = np.random.default_rng(0)
    g = random_alpha(rng, 1, 32, 40)
    g[0, 0, 0], g[0, -1, -1] = 0.0, 1.0  # g spans [0, 1] exactly; 0.5*g spans [0, 0.5]
    gt, pred = t(g), t(0.5 * g)
    assert M.evaluate_sequence(pred, gt, protocol="lr")["Grad"] == pytest.approx(0.0, abs=1e-9)
    assert M.evaluate_sequence(pred, gt, protocol="hr")["Grad"] > 1e-3
    # A constant frame normalises to all zeros.
    assert torch.equal(M.minmax_normalize(torch.full((1, 3, 3), 0.4)), torch.zeros(1, 3, 3))


def test_conn_hand_computed_hole():
    gt = torch.ones(1, 3, 3)
    pred = torch.ones(1, 3, 3)
    pred[0, 1, 1] = 0.0
    # The ring stays connected at every threshold (level 1); the centre drops at t_1 (level 0):
    # phi_g(centre) = 1 - 1 = 0, phi_p(centre) = 1 - 0 = 1 -> Conn = 1 / 1000.
    assert M.evaluate_sequence(pred, gt, protocol="lr")["Conn"] == pytest.approx(1e-3, abs=1e-12)


def test_conn_hand_computed_tie_goes_to_first_component():
    gt = torch.ones(1, 3, 3)
    pred = t([[[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.5, 1.0]]])
    # Two components of size 2 tie for t <= 0.5; the top one (first in raster order) wins and keeps
    # level 1; every other pixel drops at t_1 (level 0). phi_g = 0 there, phi_p = 1 on the five zeros,
    # 0.5 on the 0.5 pixel, 0 on the bottom-right 1 -> 5.5 / 1000.
    assert M.evaluate_sequence(pred, gt, protocol="lr")["Conn"] == pytest.approx(5.5e-3, abs=1e-9)
    assert ref_conn(pred[0].numpy(), gt[0].numpy()) == pytest.approx(5.5e-3, abs=1e-9)


def test_conn_threshold_float64_quirk():
    # float32(0.7) = 0.69999999 is below the arange threshold 0.7000000000000001, so the pixel drops at
    # k=7 and gets level t_6 = 0.6 (a float32 comparison would give level 0.7 and Conn 0.3e-3).
    gt = torch.ones(1, 1, 1)
    pred = torch.full((1, 1, 1), 0.7)
    level = np.float32(0.6000000000000001)
    expected = abs((1 - (1 - level)) - 1.0) / 1000  # phi_g = level, phi_p = 1 (0.7 - 0.6 < 0.15)
    assert M.evaluate_sequence(pred, gt, protocol="lr")["Conn"] == pytest.approx(float(expected), rel=1e-6)
    assert float(expected) == pytest.approx(0.4e-3, rel=1e-6)


def test_connected_components_labels_match_opencv_partition():
    rng = np.random.default_rng(1)
    for _ in range(60):
        h, w = rng.integers(1, 30, size=2)
        m = rng.random((h, w)) < rng.uniform(0.2, 0.8)
        ours = M.connected_components(torch.from_numpy(m)[None])[0].numpy()
        n, lab = cv2.connectedComponents(m.astype(np.uint8), connectivity=4)
        assert (ours >= 0).sum() == m.sum()
        # Same partition: each OpenCV component maps to exactly one of our labels and vice versa.
        pairs = {(int(a), int(b)) for a, b in zip(lab[m], ours[m], strict=True)}
        assert len(pairs) == n - 1 == len({b for _, b in pairs})
        # Our label is the raster index of the component's first pixel.
        for _, b in pairs:
            first = np.flatnonzero((ours == b).ravel())[0]
            assert first == b


def test_largest_component_spiral_and_empty():
    # A one-pixel-wide spiral: a long single component that needs many propagation steps.
    s = np.zeros((15, 15), dtype=bool)
    top, left, bottom, right = 0, 0, 14, 14
    while top <= bottom and left <= right:
        s[top, left : right + 1] = True
        s[top : bottom + 1, right] = True
        s[bottom, left : right + 1] = True
        s[top + 2 : bottom + 1, left] = True
        top, left, bottom, right = top + 2, left + 2, bottom - 2, right - 2
    batch = torch.from_numpy(np.stack([s, np.zeros_like(s)]))
    out = M.largest_component(batch).numpy()
    _, lab, stats, _ = cv2.connectedComponentsWithStats(s.astype(np.uint8), connectivity=4)
    assert (out[0] == (lab == 1 + np.argmax(stats[1:, -1]))).all()
    assert not out[1].any()


# ------------------------------------------------------------------------------- against the reference


@pytest.mark.parametrize("protocol", ["lr", "hr"])
def test_random_clips_match_opencv_reference(protocol):
    rng = np.random.default_rng(7 if protocol == "lr" else 8)
    g = random_alpha(rng, 4, 48, 64)
    p = np.clip(g + rng.normal(0, 0.15, g.shape) * (rng.random(g.shape) < 0.3), 0, 1).astype(np.float32)
    p = (np.round(p * 255) / 255).astype(np.float32)
    p[2] = random_alpha(rng, 1, 48, 64)[0]  # one frame far off: larger, more varied errors
    ours = M.per_frame_metrics(t(p), t(g), protocol=protocol)
    ref = ref_clip(p, g, protocol)
    assert set(ours) == set(ref)
    for k in ref:
        assert np.allclose(ours[k], ref[k], rtol=2e-5, atol=1e-9), (k, ours[k], ref[k])
    assert any(v > 0 for v in ours["Grad"])
    if protocol == "lr":
        assert all(v > 0 for v in ours["Conn"])
    means = M.evaluate_sequence(t(p), t(g), protocol=protocol)
    for k in ref:
        assert means[k] == pytest.approx(float(np.mean(ref[k])), rel=2e-5)


def test_random_unquantised_floats_match_reference_conn():
    rng = np.random.default_rng(11)
    g = np.clip(rng.normal(0.5, 0.4, (2, 20, 24)), 0, 1).astype(np.float32)
    p = np.clip(g + rng.normal(0, 0.1, g.shape), 0, 1).astype(np.float32)
    ours = M.per_frame_metrics(t(p), t(g), protocol="lr")["Conn"]
    ref = [ref_conn(p[i], g[i]) for i in range(2)]
    assert np.allclose(ours, ref, rtol=1e-5, atol=1e-9)


def test_crgnn_pairs_gt_i_with_pred_10i():
    rng = np.random.default_rng(5)
    p = random_alpha(rng, 25, 16, 20)
    g = random_alpha(rng, 4, 16, 20)  # GT frame 3 would pair with prediction 30: past the end, dropped
    per = M.per_frame_metrics(t(p), t(g), protocol="crgnn")
    assert set(per) == {"MAD", "MSE", "Grad", "dtSSD"}
    assert len(per["MAD"]) == 3
    ref = ref_clip(p, g, "crgnn")
    for k in ref:
        assert np.allclose(per[k], ref[k], rtol=2e-5, atol=1e-9), k
    # Same numbers as scoring the sampled predictions with the HR protocol.
    hr = M.per_frame_metrics(t(p[[0, 10, 20]]), t(g[:3]), protocol="hr")
    for k in per:
        assert np.allclose(per[k], hr[k], rtol=1e-12), k
    # Prediction 10 pairs with GT 1: equal there gives zero MAD for that frame only.
    p2 = p.copy()
    p2[10] = g[1]
    per2 = M.per_frame_metrics(t(p2), t(g), protocol="crgnn")
    assert per2["MAD"][1] == 0.0 and per2["MAD"][0] > 0 and per2["MAD"][2] > 0


def test_quantize_alpha_half_to_even():
    a = torch.tensor([0.5 / 255, 1.5 / 255, 2.5 / 255, -0.1, 1.2, 0.3], dtype=torch.float64)
    q = M.quantize_alpha(a)
    assert q.dtype == torch.float32
    assert (q * 255).round().tolist() == [0.0, 2.0, 2.0, 0.0, 255.0, 76.0]
    assert float(q[5]) == float(np.float32(76) / np.float32(255))


def test_aggregate_mean_of_per_index_means_and_700_cutoff():
    clips = [{"MAD": [1.0, 2.0]}, {"MAD": [3.0, 4.0, 5.0]}]
    # per-index means 2, 3, 5 -> 10/3 (a mean of clip means would give 2.75)
    assert M.aggregate_clips(clips)["MAD"] == pytest.approx(10 / 3)
    long = {"MAD": [0.0] * 700 + [1e6] * 5, "dtSSD": [1.0] * 705}
    out = M.aggregate_clips([long])
    assert out == {"MAD": 0.0, "dtSSD": 1.0}
    # Metrics missing from one clip are not reported.
    assert set(M.aggregate_clips([{"MAD": [1.0], "Conn": [2.0]}, {"MAD": [1.0]}])) == {"MAD"}


@pytest.mark.parametrize(
    ("pred", "gt", "message"),
    [
        (torch.zeros(2, 3), torch.zeros(2, 3), "[T,H,W]"),
        (torch.zeros(1, 3, 3), torch.zeros(1, 3, 4), "same frame size"),
        (torch.zeros(2, 3, 3), torch.zeros(1, 3, 3), "one gt frame per predicted frame"),
        (torch.full((1, 3, 3), 1.5), torch.zeros(1, 3, 3), "pred must lie in [0, 1]"),
        (torch.zeros(1, 3, 3), torch.full((1, 3, 3), math.nan), "gt contains NaN"),
        (torch.zeros(1, 3, 3, dtype=torch.uint8), torch.zeros(1, 3, 3), "float tensor"),
    ],
)
def test_bad_inputs_raise_clear_errors(pred, gt, message):
    with pytest.raises((ValueError, TypeError)) as err:
        M.evaluate_sequence(pred, gt, protocol="lr")
    assert message in str(err.value)


def test_unknown_protocol():
    with pytest.raises(ValueError, match="unknown protocol 'xr'"):
        M.evaluate_sequence(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), protocol="xr")
