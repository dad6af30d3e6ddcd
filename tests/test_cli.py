"""`python -m matanyone2_core matte` end to end on a tiny clip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from conftest import ellipse_mask, random_frames
from PIL import Image

from matanyone2_core import matte_video
from matanyone2_core.io import to_uint8

ROOT = Path(__file__).parent.parent


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "matanyone2_core", *args], cwd=ROOT, capture_output=True, text=True)


def test_matte_writes_alpha_and_foreground_pngs_equal_to_the_api(tmp_path, weights_path, model):
    frames = random_frames(4, 48, 64)
    frames8 = torch.from_numpy(to_uint8(frames))
    (tmp_path / "frames").mkdir()
    for i, f in enumerate(frames8.numpy()):
        Image.fromarray(f).save(tmp_path / "frames" / f"{i:05d}.png")
    Image.fromarray(to_uint8(ellipse_mask(48, 64))).save(tmp_path / "mask.png")

    done = _run("matte", "--frames", str(tmp_path / "frames"), "--mask", str(tmp_path / "mask.png"),
                "--weights", str(weights_path), "--out", str(tmp_path / "out"), "--warmup", "1", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    assert "4/4" in done.stderr  # the progress bar reached the end

    expected = matte_video(model, frames8.float() / 255, ellipse_mask(48, 64), warmup=1)
    for i in range(4):
        alpha = np.asarray(Image.open(tmp_path / "out" / "pha" / f"{i:04d}.png"))
        assert np.array_equal(alpha, to_uint8(expected[i]))
        rgba = np.asarray(Image.open(tmp_path / "out" / "fgr" / f"{i:04d}.png"))
        assert rgba.shape == (48, 64, 4) and np.array_equal(rgba[..., 3], alpha)


def test_missing_inputs_are_reported_without_a_traceback(tmp_path, weights_path):
    done = _run("matte", "--frames", str(tmp_path / "nowhere"), "--mask", str(tmp_path / "m.png"),
                "--weights", str(weights_path), "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and "mask file not found" in done.stderr and "Traceback" not in done.stderr
