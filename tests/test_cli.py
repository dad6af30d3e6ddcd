"""`python -m matanyone2_core matte` end to end on a tiny clip, and every bad input refused before writing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ellipse_mask, random_frames
from PIL import Image

from matanyone2_core import matte_video
from matanyone2_core.__main__ import main
from matanyone2_core.io import read_mask, to_uint8

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
    assert done.returncode == 2 and "frames not found" in done.stderr and "Traceback" not in done.stderr


# ------------------------------------------------------------------------------------- bad input, in process

CLIP_H, CLIP_W, CLIP_T = 32, 48, 4


def _write_clip(folder: Path, count: int = CLIP_T, height: int = CLIP_H, width: int = CLIP_W) -> torch.Tensor:
    frames = torch.from_numpy(to_uint8(random_frames(count, height, width, seed=3)))
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames.numpy()):
        Image.fromarray(f).save(folder / f"{i:05d}.png")
    return frames


def _write_mask(path: Path, mask: torch.Tensor) -> Path:
    Image.fromarray(to_uint8(mask)).save(path)
    return path


@pytest.fixture
def inputs(tmp_path):
    _write_clip(tmp_path / "frames")
    return dict(frames=tmp_path / "frames", mask=_write_mask(tmp_path / "mask.png", ellipse_mask(CLIP_H, CLIP_W)))


def _main(capsys, weights_path, inputs, *extra: str, out: Path | None = None) -> tuple[int, str]:
    out = out if out is not None else inputs["frames"].parent / "out"
    args = ["matte", "--frames", str(inputs["frames"]), "--mask", str(inputs["mask"]), "--weights", str(weights_path),
            "--out", str(out), "--warmup", "0", "--erode", "3", "--dilate", "3", "--device", "cpu", *extra]
    code = main(args)
    return code, capsys.readouterr().err


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize(
    "setup, expected",
    [
        (lambda p: Image.new("RGB", (CLIP_W, CLIP_H + 2)).save(p / "frames" / "00002.png"),
         f"00002.png is {CLIP_H + 2}x{CLIP_W} (HxW) but 00000.png is {CLIP_H}x{CLIP_W}; all frames must have one size"),
        (lambda p: (p / "frames" / "00002.png").write_text("not an image"), "00002.png is not a readable image"),
        (lambda p: (p / "frames" / "00001.png").write_bytes((p / "frames" / "00001.png").read_bytes()[:-30]),
         "00001.png is not a readable image"),
        (lambda p: _write_mask(p / "mask.png", torch.zeros(CLIP_H, CLIP_W)), "mask.png is empty"),
        (lambda p: _write_mask(p / "mask.png", torch.ones(CLIP_H + 1, CLIP_W)),
         f"mask.png must be [H,W] = [{CLIP_H}, {CLIP_W}] like the frames, got [{CLIP_H + 1}, {CLIP_W}]"),
        (lambda p: (p / "mask.png").write_text("no"), "mask.png is not a readable image"),
    ],
)
def test_bad_frames_and_masks_are_refused_before_anything_is_written(capsys, tmp_path, weights_path, inputs, setup,
                                                                      expected):
    setup(tmp_path)
    code, err = _main(capsys, weights_path, inputs)
    assert code == 2 and expected in _one_error_line(err)
    assert not (tmp_path / "out").exists()


def test_keyframes_are_checked_against_the_clip(capsys, tmp_path, weights_path, inputs):
    key = _write_mask(tmp_path / "key.png", ellipse_mask(CLIP_H, CLIP_W))
    black = _write_mask(tmp_path / "black.png", torch.zeros(CLIP_H, CLIP_W))
    small = _write_mask(tmp_path / "small.png", torch.ones(8, 8))
    cases = [
        (["--keyframe", f"9:{key}"], "--keyframe index 9 is out of range for a clip of 4 frames (0..3)"),
        (["--keyframe", f"0:{key}"], "--keyframe index 0 is the anchor frame"),
        (["--keyframe", f"2:{key}", "--keyframe", f"2:{key}"], "--keyframe 2 is given twice"),
        (["--keyframe", f"2:{black}"], f"--keyframe 2 mask {black} is empty"),
        (["--keyframe", f"1:{small}"], f"--keyframe 1 mask {small} must be [H,W] = [{CLIP_H}, {CLIP_W}]"),
        (["--keyframe", f"x:{key}"], "--keyframe expects INDEX:MASK.png"),
        (["--keyframe", f"2:{tmp_path / 'none.png'}"], "mask file not found"),
    ]
    for extra, expected in cases:
        code, err = _main(capsys, weights_path, inputs, *extra)
        assert code == 2 and expected in _one_error_line(err), (extra, err)
    assert not (tmp_path / "out").exists()


def test_bad_options_and_devices_are_refused(capsys, tmp_path, weights_path, inputs):
    cases = [
        (["--warmup", "5000"], "warmup must be an int in 0..1000, got 5000"),
        (["--erode", "40"], f"erode kernel 40 is larger than the frame ({CLIP_H}x{CLIP_W} HxW)"),
        (["--max-internal-size", "-2"], "max_internal_size must be an int in -1 or 0 or 1..8192"),
        (["--device", "cuda:7"], "--device 'cuda:7'"),
        (["--device", "banana"], "--device 'banana' is not a device name; available: cpu"),
    ]
    for extra, expected in cases:
        code, err = _main(capsys, weights_path, inputs, *extra)
        assert code == 2 and expected in _one_error_line(err), (extra, err)
    assert not (tmp_path / "out").exists()


def test_unusable_output_paths_are_refused(capsys, tmp_path, weights_path, inputs):
    (tmp_path / "file").write_text("x")
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "pha").write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir()
    cases = [
        (tmp_path / "file", "is a file, not a folder"),
        (tmp_path / "file" / "out", "is inside"),
        (tmp_path / "odd", "pha is a file, not a folder"),
    ]
    if os.geteuid() == 0:  # root writes through permission bits; /proc refuses new files even to root
        cases.append((Path("/proc/ma2-out"), "is not writable"))
    else:
        locked.chmod(0o500)
        cases.append((locked / "out", "is not writable"))
    try:
        for out, expected in cases:
            code, err = _main(capsys, weights_path, inputs, out=out)
            assert code == 2 and expected in _one_error_line(err), (out, err)
    finally:
        locked.chmod(0o700)
    assert not (tmp_path / "odd" / "fgr").exists() and list(locked.iterdir()) == []


def test_frames_of_another_run_are_refused_unless_overwrite_removes_them(capsys, tmp_path, weights_path, inputs):
    out = tmp_path / "out"
    for kind in ("pha", "fgr"):
        (out / kind).mkdir(parents=True)
        for i in (0, 7):  # 7: a frame the new, shorter run would not replace
            Image.new("L", (5, 5)).save(out / kind / f"{i:04d}.png")
    (out / "pha" / "notes.txt").write_text("keep me")
    (out / "readme.md").write_text("keep me")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))

    code, err = _main(capsys, weights_path, inputs)
    assert code == 2 and "already holds 4 frame file(s) of another run" in _one_error_line(err)
    assert "--overwrite" in err
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # nothing touched

    code, err = _main(capsys, weights_path, inputs, "--overwrite")
    assert code == 0, err
    for kind in ("pha", "fgr"):
        assert sorted(p.name for p in (out / kind).glob("*.png")) == [f"{i:04d}.png" for i in range(CLIP_T)]
        assert Image.open(out / kind / "0000.png").size == (CLIP_W, CLIP_H)  # new frames, not the 5x5 ones
    assert (out / "pha" / "notes.txt").exists() and (out / "readme.md").exists()


def test_ctrl_c_exits_130_with_one_line_and_only_complete_files(capsys, tmp_path, weights_path, inputs, monkeypatch):
    saves = []
    real_save = Image.Image.save

    def save(self, fp, *args, **kwargs):
        saves.append(fp)
        if len(saves) == 4:  # the second frame's foreground: half a file, then Ctrl-C
            Path(fp).write_bytes(b"\x89PNG half")
            raise KeyboardInterrupt
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)
    code, err = _main(capsys, weights_path, inputs)
    assert code == 130
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("\r")]
    assert lines[-1] == f"interrupted: stopped after 1 frame(s); {tmp_path / 'out'} holds only complete files"
    files = sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert files == [Path("fgr/0000.png"), Path("pha/0000.png"), Path("pha/0001.png")]  # no partial file left
    for f in files:
        assert Image.open(tmp_path / "out" / f).size == (CLIP_W, CLIP_H)
    assert ".partial" in str(saves[3]) and saves[3].parent == tmp_path / "out" / "fgr"  # written beside, renamed


def test_a_real_sigint_stops_the_cli_with_130(tmp_path, weights_path):
    _write_clip(tmp_path / "frames", 300, 32, 32)
    _write_mask(tmp_path / "mask.png", ellipse_mask(32, 32))
    out = tmp_path / "out"
    args = ["matte", "--frames", str(tmp_path / "frames"), "--mask", str(tmp_path / "mask.png"), "--weights",
            str(weights_path), "--out", str(out), "--warmup", "0", "--erode", "3", "--dilate", "3", "--device", "cpu"]
    proc = subprocess.Popen([sys.executable, "-m", "matanyone2_core", *args], cwd=ROOT, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    while not (out / "pha" / "0001.png").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.rstrip().splitlines()[-1].startswith("interrupted: stopped after")
    written = sorted((out / "pha").iterdir())
    assert 2 <= len(written) < 300 and all(p.suffix == ".png" for p in written)
    for p in written:
        Image.open(p).load()  # every file left is complete


def test_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit) as done:
        main(["matte", "--help"])
    assert done.value.code == 0
    shown = capsys.readouterr().out
    for text in ("exit codes:", "130", "interrupted (Ctrl-C)", "--overwrite", "alpha channel"):
        assert text in shown


def test_benchmark_refuses_an_unusable_device(capsys, tmp_path, weights_path):
    code = main(["benchmark", "--dataset", "synthetic", "--root", str(tmp_path / "data"), "--weights",
                 str(weights_path), "--device", "gpu"])
    assert code == 2 and "--device 'gpu' is not a device name" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "data").exists()


# ------------------------------------------------------------------------------------------------ mask files


def test_mask_files_read_a_cut_outs_alpha_and_grey_otherwise(tmp_path):
    subject = to_uint8(ellipse_mask(CLIP_H, CLIP_W))
    colours = np.random.default_rng(0).integers(0, 256, (CLIP_H, CLIP_W, 3), dtype=np.uint8)
    expected = torch.from_numpy(subject.astype(np.float32) / 255)

    Image.fromarray(np.dstack([colours, subject]), mode="RGBA").save(tmp_path / "cutout.png")
    assert torch.equal(read_mask(tmp_path / "cutout.png"), expected)  # alpha = subject, colours ignored
    Image.fromarray(np.dstack([np.zeros_like(subject), subject]), mode="LA").save(tmp_path / "la.png")
    assert torch.equal(read_mask(tmp_path / "la.png"), expected)
    palette = Image.fromarray(subject // 255, mode="L").convert("P")
    palette.info["transparency"] = 0
    palette.save(tmp_path / "palette.png", transparency=0)
    assert torch.equal(read_mask(tmp_path / "palette.png"), expected)

    # Fully opaque RGBA (a painted mask saved with an alpha channel) is read as grey: white = subject.
    opaque = np.dstack([np.repeat(subject[..., None], 3, -1), np.full_like(subject, 255)])
    Image.fromarray(opaque, mode="RGBA").save(tmp_path / "opaque.png")
    assert torch.equal(read_mask(tmp_path / "opaque.png"), expected)
    Image.fromarray(subject, mode="L").save(tmp_path / "grey.png")
    assert torch.equal(read_mask(tmp_path / "grey.png"), expected)


def test_anchors_mode_writes_the_apis_anchor_passes(tmp_path, weights_path, model):
    """--keyframe-mode anchors --blend linear writes what matte_video(keyframe_mode="anchors") returns."""
    frames = random_frames(5, 48, 64, seed=3)
    frames8 = torch.from_numpy(to_uint8(frames))
    (tmp_path / "frames").mkdir()
    for i, f in enumerate(frames8.numpy()):
        Image.fromarray(f).save(tmp_path / "frames" / f"{i:05d}.png")
    first, key = ellipse_mask(48, 64), torch.roll(ellipse_mask(48, 64), shifts=8, dims=1)
    Image.fromarray(to_uint8(first)).save(tmp_path / "mask.png")
    Image.fromarray(to_uint8(key)).save(tmp_path / "key.png")
    code = main(["matte", "--frames", str(tmp_path / "frames"), "--mask", str(tmp_path / "mask.png"), "--weights",
                 str(weights_path), "--out", str(tmp_path / "out"), "--warmup", "1", "--device", "cpu",
                 "--keyframe", f"4:{tmp_path / 'key.png'}", "--keyframe-mode", "anchors", "--blend", "linear"])
    assert code == 0
    expected = matte_video(model, frames8.float() / 255, read_mask(tmp_path / "mask.png"), warmup=1,
                           keyframes={4: read_mask(tmp_path / "key.png")}, keyframe_mode="anchors", blend="linear")
    reprompt = matte_video(model, frames8.float() / 255, read_mask(tmp_path / "mask.png"), warmup=1,
                           keyframes={4: read_mask(tmp_path / "key.png")})
    written = np.stack([np.asarray(Image.open(tmp_path / "out" / "pha" / f"{i:04d}.png")) for i in range(5)])
    assert np.array_equal(written, to_uint8(expected))
    assert not np.array_equal(written[1:4], to_uint8(reprompt[1:4]))  # the keyframe changed the frames before it
