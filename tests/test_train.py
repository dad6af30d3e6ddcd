"""Fine-tuning the matting network: the training forward is the inference forward, the loop learns, checkpoints
load, resume is exact, the data stream does what it says, bad input is refused before anything is written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from weights import official_key_shapes

from matanyone2_core import load_matting_model
from matanyone2_core.__main__ import main
from matanyone2_core.engine.options import MattingOptions
from matanyone2_core.engine.video import matte_video
from matanyone2_core.io import to_uint8
from matanyone2_core.synthetic import make_clip, write_dataset
from matanyone2_core.train import (
    LossWeights,
    TrainMattingConfig,
    WindowSamples,
    WindowSpec,
    find_matting_clips,
    find_segmentation_clips,
    patch_dropout,
    segmentation_losses,
    set_training_mode,
    train_matting,
    window_forward,
)
from matanyone2_core.train.loop import MODEL_NAME, STATE_NAME, read_train_state
from matanyone2_core.train.losses import matting_losses, trimap

H, W = 32, 48
FAST = {"warmup": 1, "erode": 2, "dilate": 2}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("train") / "data", clips=2, height=40, width=56, frames=6)[0].parent


@pytest.fixture(scope="module")
def val(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("val") / "val"
    return write_dataset(root, clips=1, height=H, width=W, frames=3, seed=50)[0].parent


@pytest.fixture(scope="module")
def seg_data(tmp_path_factory) -> Path:
    """One segmentation-only clip (images/ + masks/, masks 0/255) made from a synthetic clip."""
    root = tmp_path_factory.mktemp("seg") / "seg"
    clip = make_clip(40, 56, 5, seed=7)
    for sub, tensors in (("images", clip.frames), ("masks", (clip.alpha >= 0.5).float())):
        (root / "walk" / sub).mkdir(parents=True)
        for i, t in enumerate(tensors):
            Image.fromarray(to_uint8(t)).save(root / "walk" / sub / f"{i:05d}.png")
    return root


def fresh_model(weights_path: Path):
    return set_training_mode(load_matting_model(weights_path))


def config(tmp_path: Path, weights_path: Path, data: Path, **overrides) -> TrainMattingConfig:
    values = {"init": str(weights_path), "out": str(tmp_path / "run"),
              "data": None if data is None else str(data), "steps": 3, "lr": 1e-4,
              "lr_warmup": 1, "batch": 1, "accum": 1, "window": 3, "refs": 1, "size": (H, W), "dropout_patch": 8,
              "boundary": 2, "val_every": 0, "save_every": 0, "progress": False, **FAST}  # fmt: skip
    values.update(overrides)
    return TrainMattingConfig(**values)


# ------------------------------------------------------------------------------------------------ forward


def test_training_forward_is_the_inference_forward(weights_path):
    model = fresh_model(weights_path)
    clip = make_clip(H, W, 5, seed=3)
    # A memory frame every 2 frames and 2 working-memory frames: reads, memory frames and trimming all happen.
    options = MattingOptions(mem_every=2, max_mem_frames=2, **FAST)
    expected = matte_video(model, clip.frames, clip.first_mask, options=options)
    with torch.no_grad():
        alphas = window_forward(model, clip.frames, clip.first_mask, options)
    assert alphas.shape == (5, H, W)
    assert float((alphas.cpu() - expected).abs().max()) <= 1e-5
    # With gradients on: the same values, and a gradient reaching the encoders, memory and decoder.
    alphas = window_forward(model, clip.frames, clip.first_mask, options)
    assert float((alphas.detach() - expected).abs().max()) <= 1e-5
    (alphas - clip.alpha).abs().mean().backward()
    for name in ("pixel_encoder.conv1.weight", "key_proj.key_proj.weight", "mask_encoder.conv1.weight",
                 "temp_sparity.conv1x1_v2.weight", "object_transformer.query_init.weight",
                 "mask_decoder.pred_mat.weight"):  # fmt: skip
        grad = model.get_parameter(name).grad
        assert grad is not None and float(grad.abs().sum()) > 0, name
    # BatchNorm statistics stay frozen: the trained network is the one inference runs.
    assert not model.pixel_encoder.bn1.training and model.training


def test_reference_frames_are_read_from_memory(weights_path):
    model = fresh_model(weights_path)
    clip = make_clip(H, W, 6, seed=4)
    options = MattingOptions(**FAST)
    with torch.no_grad():
        plain = window_forward(model, clip.frames[:3], clip.first_mask, options)
        with_ref = window_forward(model, clip.frames[:3], clip.first_mask, options,
                                  ref_images=clip.frames[5:6], ref_alphas=clip.alpha[5:6])  # fmt: skip
    # The first frame is predicted before the references are stored; the later ones read them.
    assert torch.equal(plain[0], with_ref[0])
    assert float((plain[1:] - with_ref[1:]).abs().max()) > 1e-4


# --------------------------------------------------------------------------------------------------- loop


def test_a_few_steps_lower_the_loss_and_the_checkpoint_loads_strictly(tmp_path, weights_path, data, val):
    # One clip, no augmentation, the whole clip as the window: every step sees the same window.
    clip_root = data / "clip_0000"
    cfg = config(tmp_path, weights_path, clip_root, steps=6, window=6, refs=0, max_stride=1, scale_max=1.0,
                 flip=False, jitter=0.0, size=(40, 56), lr=2e-4, val=str(val), val_every=4)  # fmt: skip
    result = train_matting(cfg)
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 6 and all(np.isfinite(losses))
    assert losses[-1] < 0.9 * losses[0], losses
    # Validation before the first step, at step 4 and after the last, with the benchmark's metrics.
    assert [v["step"] for v in result.validations] == [0, 4, 6]
    assert {"MAD", "Grad", "dtSSD"} <= set(result.validations[-1])
    assert (tmp_path / "run" / "validation" / "step_000006.json").is_file()
    # model.pth: exactly the official keys, loaded strictly, holding the trained (changed) weights.
    state = torch.load(result.model_path, weights_only=True)
    assert set(state) == set(official_key_shapes())
    loaded = load_matting_model(result.model_path)
    initial = load_matting_model(weights_path)
    key = "mask_decoder.pred_mat.weight"
    assert torch.equal(loaded.state_dict()[key], state[key])
    assert not torch.equal(loaded.state_dict()[key], initial.state_dict()[key])


def test_resume_gives_the_same_next_step(tmp_path, weights_path, data):
    straight = train_matting(config(tmp_path / "a", weights_path, data, steps=3, refs=1, dropout_ratio=0.3))
    cut = config(tmp_path / "b", weights_path, data, steps=3, refs=1, dropout_ratio=0.3, stop_after=2)
    first = train_matting(cut)
    assert first.steps_done == 2 and read_train_state(tmp_path / "b" / "run" / STATE_NAME)["step"] == 2
    cut.stop_after, cut.resume = None, True
    second = train_matting(cut)
    assert second.steps_done == 3
    assert [h["loss"] for h in second.history] == [h["loss"] for h in straight.history]
    a = torch.load(tmp_path / "a" / "run" / MODEL_NAME, weights_only=True)
    b = torch.load(tmp_path / "b" / "run" / MODEL_NAME, weights_only=True)
    worst = max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())
    assert worst <= 1e-6
    # A resumed run must keep the trajectory's settings.
    cut.lr = 3e-4
    with pytest.raises(ValueError, match="cannot resume with different training settings: --lr"):
        train_matting(cut)


# --------------------------------------------------------------------------------------------------- data


def test_patch_dropout_blanks_the_stated_fraction_of_patches():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(3, H, W, 3, generator=gen) * 0.9 + 0.05
    alphas = torch.rand(3, H, W, generator=gen) * 0.9 + 0.05
    for ratio, patch in ((0.25, 8), (0.5, 10), (0.0, 8)):
        out, out_alpha, kept = patch_dropout(images, alphas, ratio, patch, np.random.default_rng(1))
        gh, gw = -(-H // patch), -(-W // patch)
        for i in range(3):
            grid = kept[i, ::patch, ::patch]
            assert grid.shape == (gh, gw)
            assert int((~grid).sum()) == round(ratio * gh * gw)
            # Whole patches: the kept map is constant on every patch.
            assert torch.equal(kept[i], grid.repeat_interleave(patch, 0).repeat_interleave(patch, 1)[:H, :W])
        assert torch.equal(out[~kept], torch.zeros_like(out[~kept])) and bool((out_alpha[~kept] == 0).all())
        assert torch.equal(out[kept], images[kept]) and torch.equal(out_alpha[kept], alphas[kept])
    # Each reference draws its own patches.
    _, _, kept = patch_dropout(images, alphas, 0.5, 8, np.random.default_rng(2))
    assert not torch.equal(kept[0], kept[1])


def test_dropout_touches_only_the_reference_frames(data):
    clips = find_matting_clips(data)
    spec = WindowSpec(window=3, refs=2, size=(H, W), dropout_ratio=0.5, dropout_patch=8)
    dropped = WindowSamples(clips, [], spec, seed=5)
    clean = WindowSamples(clips, [], WindowSpec(window=3, refs=2, size=(H, W), dropout_ratio=0.0), seed=5)
    for index in range(3):
        a, b = dropped[index], clean[index]
        assert torch.equal(a["frames"], b["frames"]) and torch.equal(a["alphas"], b["alphas"])
        # Dropped patches are black with alpha 0; every other pixel is the clean sample's.
        zero = (a["ref_images"] == 0).all(-1) & (a["ref_alphas"] == 0)
        assert torch.equal(a["ref_images"][~zero], b["ref_images"][~zero])
        assert torch.equal(a["ref_alphas"][~zero], b["ref_alphas"][~zero])
        patches = zero.unflatten(1, (H // 8, 8)).unflatten(3, (W // 8, 8)).all(4).all(2)  # [R,4,6]
        assert [int(p.sum()) for p in patches] == [12, 12]  # half of the 24 patches of each reference
        assert not bool((b["ref_images"] == 0).all(-1).any())  # (a clean frame has no black pixel)


def _write_static_clip(root: Path, frames: int = 6) -> Path:
    """A clip whose frames (and alphas) are all the same picture: any per-frame difference after augmentation
    would be an inconsistency across the window."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:56]
    image = np.stack([xx / 56, yy / 40, rng.random((40, 56))], axis=-1)
    alpha = ((yy - 20) ** 2 / 150 + (xx - 28) ** 2 / 300 < 1).astype(np.float64) * 0.8 + 0.1 * (xx / 56)
    for sub, array in (("com", image), ("pha", alpha)):
        (root / "static" / sub).mkdir(parents=True)
        for i in range(frames):
            Image.fromarray(to_uint8(torch.from_numpy(array))).save(root / "static" / sub / f"{i:04d}.png")
    return root


def test_augmentation_is_the_same_for_every_frame_of_a_window_and_seeded(tmp_path):
    clips = find_matting_clips(_write_static_clip(tmp_path))
    spec = WindowSpec(window=3, refs=2, size=(24, 32), dropout_ratio=0.0, scale=(1.0, 2.0), jitter=0.3)
    samples = WindowSamples(clips, [], spec, seed=0)
    seen = []
    for index in range(6):
        s = samples[index]
        for key, ref in (("frames", "ref_images"), ("alphas", "ref_alphas")):
            everything = torch.cat([s[key], s[ref]])
            assert torch.equal(everything, everything[:1].expand_as(everything)), (index, key)
        seen.append(s["frames"][0])
        again = WindowSamples(clips, [], spec, seed=0)[index]
        assert torch.equal(again["frames"], s["frames"]) and torch.equal(again["ref_alphas"], s["ref_alphas"])
    # ...while different windows get different augmentations.
    assert sum(not torch.equal(seen[0], x) for x in seen[1:]) >= 4
    assert not torch.equal(WindowSamples(clips, [], spec, seed=1)[0]["frames"], samples[0]["frames"])


def test_windows_and_references_come_from_one_clip_in_order(data):
    samples = WindowSamples(find_matting_clips(data), [], WindowSpec(window=3, refs=2, max_stride=2), seed=0)
    clip = samples.matting[0]
    for index in range(20):
        window, refs = samples.indices(clip, np.random.default_rng([0, index]))
        assert len(window) == 3 and window == sorted(window)
        assert len(set(np.diff(window))) == 1 and 1 <= window[1] - window[0] <= 2
        assert len(refs) == 2 and not set(refs) & set(range(window[0], window[-1] + 1))


# ------------------------------------------------------------------------------------------- segmentation


def test_segmentation_data_trains_with_l_eval(tmp_path, weights_path, seg_data):
    clips = find_segmentation_clips(seg_data)
    assert len(clips) == 1 and len(clips[0]) == 5
    sample = WindowSamples([], clips, WindowSpec(window=3, refs=0, size=(H, W)), seed=0)[0]
    assert set(sample["alphas"].unique().tolist()) <= {0.0, 1.0}
    model = fresh_model(weights_path)
    alphas = window_forward(model, sample["frames"], sample["first_mask"], MattingOptions(**FAST))
    terms = segmentation_losses(alphas, sample["alphas"], sample["frames"], LossWeights(), boundary=2)
    assert float(terms["eval"].detach()) > 0 and float(terms["seg"].detach()) > 0
    terms["total"].backward()
    assert float(model.get_parameter("mask_decoder.pred_mat.weight").grad.abs().sum()) > 0

    # L_eval's gradient reaches the alphas of the band only.
    leaf = alphas.detach().clone().requires_grad_(True)
    only_eval = segmentation_losses(leaf, sample["alphas"], sample["frames"], LossWeights(seg=0.0), boundary=2)
    only_eval["total"].backward()
    _, _, band = trimap(sample["alphas"], 2)
    assert float(leaf.grad[~band].abs().max()) == 0 and float(leaf.grad[band].abs().max()) > 0

    result = train_matting(config(tmp_path, weights_path, data=None, seg_data=str(seg_data), steps=1, refs=0))
    assert result.history[0]["segmentation_windows"] == 1 and np.isfinite(result.history[0]["eval"])


def test_matting_losses_vanish_at_the_ground_truth():
    clip = make_clip(H, W, 3, seed=2)
    exact = matting_losses(clip.alpha, clip.alpha)
    assert all(float(v) == 0 for v in exact.values())
    off = matting_losses((clip.alpha + 0.1).clamp(0, 1), clip.alpha)
    assert float(off["l1"]) > 0 and float(off["total"]) > 0


# ------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"data": "/nonexistent/clips"}, "--data /nonexistent/clips: no such folder"),
        ({"window": 6}, "--window 6 with --refs 1 needs clips of at least 7 frames; the longest"),
        ({"lr": -1.0}, "--lr must be a number in 0..1"),
        ({"dropout_ratio": 1.0}, "--dropout-ratio must be below 1"),
        ({"scale_min": 2.0, "scale_max": 1.5}, "--scale-min 2.0 is above --scale-max 1.5"),
        ({"size": (16, 16), "erode": 20}, "--size 16x16: erode kernel 20 is larger than the frame"),
        ({"batch": 0}, "--batch must be an integer >= 1"),
        ({"init": "/nonexistent/w.pth"}, "--init /nonexistent/w.pth: no such file"),
        ({"data": None}, "give --data"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(tmp_path, weights_path, data, overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        train_matting(config(tmp_path, weights_path, **{"data": data, **overrides}))
    assert not (tmp_path / "run").exists()


def test_cli_errors_are_one_line_and_write_nothing(tmp_path, weights_path, data, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["train-matting", "--data", str(empty), "--init", str(weights_path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --data") and "no matting clips" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / STATE_NAME).write_bytes(b"x")
    code = main(["train-matting", "--data", str(data), "--init", str(weights_path), "--out", str(tmp_path / "o"),
                 "--size", "32x48", "--window", "3"])  # fmt: skip
    assert code == 2 and "already holds a training run" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ distributed


def test_two_processes_take_the_step_of_one_process_with_twice_the_batch(tmp_path, weights_path, data):
    """torchrun on the CPU (gloo): rank r draws the windows a single process with `--batch 2` draws at batch
    position r, and the gradients are averaged, so the weights after the step agree. Three processes start
    (about 20 s of CPU): run with MA2_TEST_TORCHRUN=1."""
    if os.environ.get("MA2_TEST_TORCHRUN") != "1":
        pytest.skip("set MA2_TEST_TORCHRUN=1 to launch torchrun (two gloo processes)")
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    common = ["--data", str(data), "--init", str(weights_path), "--steps", "1", "--lr", "1e-4", "--lr-warmup", "1",
              "--accum", "1", "--window", "2", "--refs", "1", "--size", "32x48", "--dropout-patch", "8",
              "--warmup", "1", "--erode", "2", "--dilate", "2", "--val-every", "0", "--quiet"]  # fmt: skip
    assert main(["train-matting", "--out", str(tmp_path / "one"), "--batch", "2", *common]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
               "matanyone2_core", "train-matting", "--out", str(tmp_path / "two"), "--batch", "1", "--device", "cpu",
               *common]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    one = torch.load(tmp_path / "one" / MODEL_NAME, weights_only=True)
    two = torch.load(tmp_path / "two" / MODEL_NAME, weights_only=True)
    start = torch.load(weights_path, weights_only=True)
    key = "mask_decoder.pred_mat.weight"
    assert not torch.equal(one[key], start[key])
    worst = max(float((one[k].double() - two[k].double()).abs().max()) for k in one if one[k].is_floating_point())
    assert worst <= 1e-6
    assert read_train_state(tmp_path / "two" / STATE_NAME)["world"] == 2
