"""Foreground estimation (`matanyone2_core.foreground`): against pymatting's `estimate_foreground_ml` (an
independent implementation of the same multi-level method), against the exact foreground of synthetic clips,
and its contract (exact opaque pixels, range, streaming, the compositing equation, input checks). CPU only."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from matanyone2_core import estimate_foreground
from matanyone2_core import foreground as fg_module
from matanyone2_core.compositing import composite
from matanyone2_core.synthetic import make_clip


@pytest.fixture(scope="module")
def clip():
    return make_clip(48, 64, 3, seed=0)


@pytest.fixture(scope="module")
def clip_fb(clip):
    return estimate_foreground(clip.frames, clip.alpha, return_background=True)


def _band(alpha: torch.Tensor) -> torch.Tensor:
    return (alpha > 0) & (alpha < 1)


def _pymatting(frame: torch.Tensor, alpha: torch.Tensor, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    pymatting = pytest.importorskip("pymatting", reason="pymatting (the reference implementation) is not installed")
    f, b = pymatting.estimate_foreground_ml(
        frame.double().numpy(), alpha.double().numpy(), return_background=True, **kwargs
    )
    return torch.from_numpy(np.asarray(f, dtype=np.float32)), torch.from_numpy(np.asarray(b, dtype=np.float32))


# --- against pymatting ------------------------------------------------------------------------------------------


def test_constants_are_pymattings_defaults():
    pymatting = pytest.importorskip("pymatting", reason="pymatting (the reference implementation) is not installed")
    defaults = {k: p.default for k, p in inspect.signature(pymatting.estimate_foreground_ml).parameters.items()}
    assert defaults["regularization"] == fg_module.REGULARIZATION
    assert defaults["gradient_weight"] == fg_module.GRADIENT_WEIGHT
    assert defaults["n_small_iterations"] == fg_module.SMALL_ITERATIONS
    assert defaults["n_big_iterations"] == fg_module.BIG_ITERATIONS
    assert defaults["small_size"] == fg_module.SMALL_SIZE


# (size, seed): a 48x64 frame and a non-square odd-sized one.
SIZES = [((48, 64), 0), ((37, 53), 1)]


@pytest.mark.parametrize(("size", "seed"), SIZES)
def test_converged_solution_matches_pymatting(size, seed):
    """With enough iterations both solvers reach the minimiser of the same cost: the solve (`project=False`)
    agrees closely with pymatting wherever F matters (0 < alpha < 1). Measured (pymatting 1.1.16, per channel
    value, 48x64 / 37x53): max |dF| 2.0e-3 / 1.1e-3, mean 4.6e-5 / 2.1e-5; max |dB| 1.8e-3 / 1.3e-3, mean
    3.0e-5 / 1.6e-5. The small rest is pymatting's float32 rounding in nearly singular pixels (alpha edges with
    tiny gradients): converged, our float32 solve is within 2e-6 of the same solve in float64, pymatting's
    within 2e-3. Tolerance: max 5e-3, mean 3e-4."""
    c = make_clip(*size, 1, seed=seed)
    frame, alpha = c.frames[0], c.alpha[0]
    f_ref, b_ref = _pymatting(frame, alpha, n_small_iterations=50, n_big_iterations=50)
    f, b = estimate_foreground(
        frame[None], alpha, small_iterations=50, big_iterations=50, project=False, return_background=True
    )
    band = _band(alpha)
    assert band.sum() > 100
    df = (f[0] - f_ref).abs()[band]
    db = (b[0] - b_ref).abs()[band]
    assert df.max() < 5e-3 and df.mean() < 3e-4, (df.max(), df.mean())
    assert db.max() < 5e-3 and db.mean() < 3e-4, (db.max(), db.mean())
    # Opaque pixels (alpha > 0 as a whole): the same solve, so the same colours there too.
    assert (f[0] - f_ref).abs()[alpha > 0].max() < 5e-3


@pytest.mark.parametrize(("size", "seed"), SIZES)
def test_default_settings_agree_with_pymatting(size, seed):
    """With the default iterations (2 on the large levels) neither solver has converged, and the sweep order
    (ours red-black, pymatting's raster) shows. Measured in the band 0 < alpha < 1, frames 0-1 of these clips
    (pymatting 1.1.16, per channel value):

    * the solve (`project=False`): max |dF| 0.038-0.090, mean 0.0045-0.0057; tolerance max 0.15, mean 0.01;
    * the default output (`project=True`, exact compositing equation, which pymatting does not impose):
      max |dF| 0.17-0.25, mean 0.014-0.016; tolerance max 0.35, mean 0.025.
    """
    c = make_clip(*size, 2, seed=seed)
    for t in range(2):
        frame, alpha = c.frames[t], c.alpha[t]
        band = _band(alpha)
        f_ref, _ = _pymatting(frame, alpha)
        raw = (estimate_foreground(frame[None], alpha, project=False)[0] - f_ref).abs()[band]
        assert raw.max() < 0.15 and raw.mean() < 0.01, (t, raw.max(), raw.mean())
        projected = (estimate_foreground(frame[None], alpha)[0] - f_ref).abs()[band]
        assert projected.max() < 0.35 and projected.mean() < 0.025, (t, projected.max(), projected.mean())


def _band_errors(clip, t: int) -> tuple[torch.Tensor, float, float]:
    """(band mask, MAE of the plain frame, MAE of the premultiplied frame) against the exact F of frame t."""
    alpha = clip.alpha[t]
    band = _band(alpha)
    exact, frame = clip.foreground[t][band], clip.frames[t][band]
    err_plain = float((frame - exact).abs().mean())
    err_prem = float((frame * alpha[band][:, None] - exact).abs().mean())
    return band, err_plain, err_prem


def test_ours_beats_premultiplied_and_plain_frame(clip, clip_fb):
    """In the semi-transparent band our F is far closer to the exact F than the frame itself or the frame times
    alpha (today's premultiplied output, read as a foreground colour), and the projection onto the compositing
    equation brings it closer still. Measured MAE, frames 0-2: plain 0.16-0.17, premultiplied 0.20, ours
    0.041-0.054, ours project=False 0.048-0.060."""
    f, _ = clip_fb
    for t in range(clip.frames.shape[0]):
        band, err_plain, err_prem = _band_errors(clip, t)
        exact = clip.foreground[t][band]
        err_ours = float((f[t][band] - exact).abs().mean())
        raw = estimate_foreground(clip.frames[t : t + 1], clip.alpha[t], project=False)[0]
        err_raw = float((raw[band] - exact).abs().mean())
        for err in (err_ours, err_raw):
            assert err < 0.5 * min(err_plain, err_prem), (t, err_ours, err_raw, err_plain, err_prem)
        assert err_ours < err_raw, (t, err_ours, err_raw)


def test_pymatting_beats_premultiplied_and_plain_frame(clip):
    """The reference does as well (measured MAE 0.049-0.060), so the comparison above is not an artefact of ours."""
    for t in range(clip.frames.shape[0]):
        band, err_plain, err_prem = _band_errors(clip, t)
        f_ref, _ = _pymatting(clip.frames[t], clip.alpha[t])
        err_ref = float((f_ref[band] - clip.foreground[t][band]).abs().mean())
        assert err_ref < 0.5 * min(err_plain, err_prem), (t, err_ref, err_plain, err_prem)


def test_composite_onto_new_background_is_closer_to_the_truth(clip, clip_fb):
    """Composited onto a new colour, our F is three times closer (measured band MAE 0.014 against 0.043) to the
    composite of the exact F than today's premultiplied frames."""
    f, _ = clip_fb
    new_bg = torch.tensor([0.1, 0.8, 0.3]).expand(1, *clip.frames.shape[1:3], 3)
    truth = composite(clip.foreground, clip.alpha, new_bg, premultiplied=False)
    ours = composite(f, clip.alpha, new_bg, premultiplied=False)
    today = composite(clip.frames * clip.alpha[..., None], clip.alpha, new_bg, premultiplied=True)
    band = _band(clip.alpha)
    err_ours = (ours - truth).abs()[band].mean()
    err_today = (today - truth).abs()[band].mean()
    assert err_ours < 0.5 * err_today, (err_ours, err_today)


# --- contract --------------------------------------------------------------------------------------------------


def test_opaque_and_clear_pixels_are_exact(clip, clip_fb):
    f, b = clip_fb
    opaque = clip.alpha == 1
    clear = clip.alpha == 0
    assert opaque.sum() > 100 and clear.sum() > 100
    assert torch.equal(f[opaque], clip.frames[opaque])
    assert torch.equal(b[clear], clip.frames[clear])


def test_output_shape_range_and_type(clip, clip_fb):
    f, b = clip_fb
    for out in (f, b):
        assert out.shape == clip.frames.shape
        assert out.dtype == torch.float32 and out.device.type == "cpu"
        assert out.min() >= 0 and out.max() <= 1
    assert isinstance(estimate_foreground(clip.frames[:1], clip.alpha[:1]), torch.Tensor)


def test_background_satisfies_the_compositing_equation(clip, clip_fb):
    """alpha F + (1 - alpha) B reproduces the frame in the band (the projection; float32 rounding is all that
    is left, measured max 6e-8). The solve alone misses it at steep alpha edges (measured max 0.17, mean 0.014
    here; pymatting's result the same), which is why the projection is there."""
    f, b = clip_fb
    a = clip.alpha[..., None]
    band = _band(clip.alpha)
    residual = (a * f + (1 - a) * b - clip.frames).abs()[band]
    assert residual.max() < 1e-5, residual.max()
    f_raw, b_raw = estimate_foreground(clip.frames, clip.alpha, project=False, return_background=True)
    raw = (a * f_raw + (1 - a) * b_raw - clip.frames).abs()[band]
    assert raw.max() > 0.05 and raw.mean() > 5e-3, (raw.max(), raw.mean())


def test_streaming_frame_by_frame_equals_one_call(clip, clip_fb):
    f, b = clip_fb
    for t in range(clip.frames.shape[0]):
        f_t, b_t = estimate_foreground(clip.frames[t : t + 1], clip.alpha[t], return_background=True)
        assert torch.equal(f_t[0], f[t]) and torch.equal(b_t[0], b[t])


def test_one_matte_for_every_frame_and_progress(clip):
    calls = []
    shared = estimate_foreground(clip.frames, clip.alpha[1], progress=lambda done, total: calls.append((done, total)))
    repeated = estimate_foreground(clip.frames, clip.alpha[1].expand_as(clip.alpha))
    assert torch.equal(shared, repeated)
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_tiny_and_odd_frames():
    gen = torch.Generator().manual_seed(0)
    for h, w in ((1, 1), (1, 7), (5, 1), (3, 2)):
        frames = torch.rand(2, h, w, 3, generator=gen)
        alpha = torch.rand(2, h, w, generator=gen)
        f, b = estimate_foreground(frames, alpha, return_background=True)
        assert f.shape == frames.shape and torch.isfinite(f).all() and torch.isfinite(b).all()


def test_uniform_alpha_is_handled():
    """Constant alpha (no edges): all-clear, all-opaque and all-half mattes give finite, in-range results."""
    frames = torch.rand(1, 16, 20, 3, generator=torch.Generator().manual_seed(1))
    for value in (0.0, 0.5, 1.0):
        f, b = estimate_foreground(frames, torch.full((16, 20), value), return_background=True)
        assert torch.isfinite(f).all() and f.min() >= 0 and f.max() <= 1
        if value == 1.0:
            assert torch.equal(f, frames)
        if value == 0.0:
            assert torch.equal(b, frames)


# --- input checks ----------------------------------------------------------------------------------------------


def _frames(t: int = 2, h: int = 8, w: int = 10) -> torch.Tensor:
    return torch.rand(t, h, w, 3, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize(
    ("frames", "alpha", "kwargs", "match"),
    [
        (_frames()[..., :2], torch.rand(2, 8, 10), {}, r"frames must be a \[T,H,W,3\]"),
        (_frames() * 255, torch.rand(2, 8, 10), {}, r"frames: frame 0 .*0\.\.255"),
        (_frames().index_fill(0, torch.tensor([1]), float("nan")), torch.rand(2, 8, 10), {}, "frame 1 contains NaN"),
        (_frames().int(), torch.rand(2, 8, 10), {}, "frames must be floating point"),
        ("frames", torch.rand(2, 8, 10), {}, "frames must be a"),
        (_frames(), torch.rand(2, 8, 11), {}, r"alpha must be \[T,H,W\] = \[2, 8, 10\]"),
        (_frames(), torch.rand(3, 8, 10), {}, r"alpha must be \[T,H,W\]"),
        (_frames(), torch.rand(2, 8, 10, 1), {}, r"alpha must be \[T,H,W\]"),
        (_frames(), [[0.5]], {}, "alpha must be a"),
        (_frames(), torch.rand(2, 8, 10) * 255, {}, r"alpha\[0\] has values .*outside 0\.\.1"),
        (_frames(), torch.rand(8, 10) + 2, {}, r"alpha has values"),
        (_frames(), torch.full((2, 8, 10), float("nan")), {}, r"alpha\[0\] contains NaN"),
        (_frames(), torch.rand(2, 8, 10), {"method": "closed_form"}, "method must be one of multilevel"),
        (_frames(), torch.rand(2, 8, 10), {"regularization": 0.0}, "regularization must be > 0"),
        (_frames(), torch.rand(2, 8, 10), {"regularization": float("inf")}, "regularization must be a finite"),
        (_frames(), torch.rand(2, 8, 10), {"gradient_weight": -1.0}, "gradient_weight must be >= 0"),
        (_frames(), torch.rand(2, 8, 10), {"big_iterations": 2.0}, "big_iterations must be an int"),
        (_frames(), torch.rand(2, 8, 10), {"small_iterations": 10**6}, "small_iterations must be an int in 0..1000"),
        (_frames(), torch.rand(2, 8, 10), {"small_size": 0}, "small_size must be an int"),
        (_frames(), torch.rand(2, 8, 10), {"return_background": 1}, "return_background must be True or False"),
        (_frames(), torch.rand(2, 8, 10), {"project": None}, "project must be True or False"),
        (_frames(), torch.rand(2, 8, 10), {"progress": "yes"}, "progress must be a callable"),
        (_frames(), torch.rand(2, 8, 10), {"device": "nonsense"}, "device 'nonsense' is not a device name"),
    ],
)
def test_bad_inputs_raise_naming_the_input(frames, alpha, kwargs, match):
    with pytest.raises(ValueError, match=match):
        estimate_foreground(frames, alpha, **kwargs)


def test_checks_run_before_any_work():
    """A bad matte late in the clip is refused before the first frame is solved (progress never called)."""
    alpha = torch.rand(2, 8, 10)
    alpha[1, 0, 0] = 1.5
    calls = []
    with pytest.raises(ValueError, match=r"alpha\[1\]"):
        estimate_foreground(_frames(), alpha, progress=lambda done, total: calls.append(done))
    assert calls == []
