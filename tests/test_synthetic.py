"""Synthetic clips: determinism, layout, the exact compositing equation and the matting hard cases."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from matanyone2_core.synthetic import MASK_FILENAME, SyntheticClip, make_clip, write_clip, write_dataset

H, W, T = 96, 128, 6


@pytest.fixture(scope="module")
def clip() -> SyntheticClip:
    return make_clip(H, W, T, seed=0)


def thin_pixels(alpha: torch.Tensor) -> torch.Tensor:
    """Pixels of a structure one pixel thick: alpha >= 0.5 with both vertical or both horizontal
    neighbours <= 0.25."""
    p = F.pad(alpha, (1, 1, 1, 1))
    c, up, down, left, right = p[:, 1:-1, 1:-1], p[:, :-2, 1:-1], p[:, 2:, 1:-1], p[:, 1:-1, :-2], p[:, 1:-1, 2:]
    vertical = (c >= 0.5) & (up <= 0.25) & (down <= 0.25)
    horizontal = (c >= 0.5) & (left <= 0.25) & (right <= 0.25)
    return vertical | horizontal


def test_shapes_dtypes_ranges(clip):
    assert clip.frames.shape == (T, H, W, 3)
    assert clip.foreground.shape == (T, H, W, 3)
    assert clip.background.shape == (T, H, W, 3)
    assert clip.alpha.shape == (T, H, W)
    assert clip.first_mask.shape == (H, W)
    for x in (clip.frames, clip.foreground, clip.background, clip.alpha, clip.first_mask):
        assert x.dtype == torch.float32
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    # The subject is fully opaque somewhere and absent elsewhere.
    assert float(clip.alpha.max()) == 1.0 and float(clip.alpha.min()) == 0.0


def test_compositing_equation_is_exact(clip):
    a = clip.alpha[..., None]
    assert torch.equal(clip.frames, clip.foreground * a + clip.background * (1 - a))


def test_first_mask_is_frame0_alpha_binarised(clip):
    assert set(torch.unique(clip.first_mask).tolist()) == {0.0, 1.0}
    assert torch.equal(clip.first_mask, (clip.alpha[0] >= 0.5).float())
    assert 0.05 < float(clip.first_mask.mean()) < 0.5


def test_deterministic_by_seed():
    a, b = make_clip(40, 56, 3, seed=5), make_clip(40, 56, 3, seed=5)
    for name in ("frames", "alpha", "foreground", "background", "first_mask"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_different_seeds_differ():
    a, b = make_clip(40, 56, 2, seed=1), make_clip(40, 56, 2, seed=2)
    assert float((a.alpha - b.alpha).abs().mean()) > 0.01
    assert float((a.background - b.background).abs().mean()) > 0.02


def test_one_pixel_strands_exist(clip):
    thin = thin_pixels(clip.alpha)
    assert int(thin.sum()) >= 20
    assert all(int(n) >= 1 for n in thin.sum(dim=(1, 2)))
    # They are hair, not the body's edge: far from the (eroded) opaque core.
    core = clip.alpha >= 0.99
    near_core = F.max_pool2d(core.float()[:, None], 7, stride=1, padding=3)[:, 0] > 0
    assert int((thin & ~near_core).sum()) >= 10


def test_semi_transparent_region(clip):
    semi = (clip.alpha[0] > 0.25) & (clip.alpha[0] < 0.75)
    # The veil: hundreds of mid-alpha pixels, many more than a one-pixel soft edge gives.
    assert int(semi.sum()) >= 300
    ys, xs = torch.nonzero(semi, as_tuple=True)
    assert int(xs.max() - xs.min()) > 10 and int(ys.max() - ys.min()) > 5


def test_subject_and_background_move(clip):
    for t in range(T - 1):
        assert float((clip.alpha[t + 1] - clip.alpha[t]).abs().mean()) > 0.005
        assert float((clip.background[t + 1] - clip.background[t]).abs().mean()) > 0.005
        assert float((clip.frames[t + 1] - clip.frames[t]).abs().mean()) > 0.01


def test_motion_blur_softens_the_moving_edge():
    # Averaging sub-frame positions leaves more partial-alpha pixels than one sharp position would.
    blurred = make_clip(64, 96, 3, seed=4).alpha
    partial = ((blurred > 0.02) & (blurred < 0.98)).float().mean()
    assert float(partial) > 0.03


def test_other_sizes_and_lengths():
    c = make_clip(16, 200, 1, seed=9)
    assert c.frames.shape == (1, 16, 200, 3)
    c = make_clip(120, 40, 2, seed=9)
    assert c.alpha.shape == (2, 120, 40)


@pytest.mark.parametrize(("args", "name"), [((8, 64, 2), "height"), ((64, 64, 0), "frames"), ((64, 6.5, 2), "width")])
def test_bad_arguments(args, name):
    with pytest.raises(ValueError, match=name):
        make_clip(*args)


def test_write_clip_layout_and_values(tmp_path):
    c = make_clip(32, 48, 3, seed=2)
    folder = write_clip(c, tmp_path / "clip")
    for sub in ("com", "pha", "fgr", "bgr"):
        assert sorted(p.name for p in (folder / sub).iterdir()) == ["0000.png", "0001.png", "0002.png"]
    pha = np.asarray(Image.open(folder / "pha" / "0001.png"))
    assert pha.dtype == np.uint8 and pha.shape == (32, 48)
    assert np.array_equal(pha, np.round(c.alpha[1].numpy() * 255).astype(np.uint8))
    com = np.asarray(Image.open(folder / "com" / "0002.png"))
    assert com.shape == (32, 48, 3)
    assert np.array_equal(com, np.round(c.frames[2].numpy() * 255).astype(np.uint8))
    mask = np.asarray(Image.open(folder / MASK_FILENAME))
    assert np.array_equal(mask, c.first_mask.numpy().astype(np.uint8) * 255)


def test_write_dataset_resumes_and_rejects_other_settings(tmp_path):
    clips = write_dataset(tmp_path, clips=2, height=24, width=32, frames=2, seed=3)
    assert [p.name for p in clips] == ["clip_0000", "clip_0001"]
    assert json.loads((tmp_path / "synthetic.json").read_text())["seed"] == 3
    # clip 1 is seed 4
    pha = np.asarray(Image.open(clips[1] / "pha" / "0000.png"))
    assert np.array_equal(pha, np.round(make_clip(24, 32, 2, seed=4).alpha[0].numpy() * 255).astype(np.uint8))
    stamp = (clips[0] / "com" / "0000.png").stat().st_mtime_ns
    write_dataset(tmp_path, clips=2, height=24, width=32, frames=2, seed=3)
    assert (clips[0] / "com" / "0000.png").stat().st_mtime_ns == stamp  # complete clips are kept
    with pytest.raises(ValueError, match="already holds synthetic clips"):
        write_dataset(tmp_path, clips=2, height=24, width=40, frames=2, seed=3)
