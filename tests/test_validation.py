"""Bad input to the core API is a ValueError naming the input and the problem, raised before any work."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import ellipse_mask, random_frames

from matanyone2_core import (
    MAX_KERNEL,
    MAX_WARMUP,
    VALUE_TOLERANCE,
    MattingOptions,
    MattingSession,
    load_matting_model,
    matte_video,
    resolve_device,
)
from matanyone2_core.engine.validate import check_frames, check_index, check_mask, mask_is_empty
from matanyone2_core.network.model import MatAnyone2Network

H, W = 32, 48


@pytest.fixture(scope="module")
def clip():
    return random_frames(4, H, W, seed=7), ellipse_mask(H, W)


class _Counter:
    """A check_interrupt hook that counts network steps."""

    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1


# ---------------------------------------------------------------------------------------------- frames


def _with(frames: torch.Tensor, index: int, value: float) -> torch.Tensor:
    frames = frames.clone()
    frames[index, 3, 4, 1] = value
    return frames


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda f: f * 255, r"frames: frame 0 has values in .*outside 0\.\.1 .*divide by 255"),
        (lambda f: f * 2 - 1, r"frames: frame 0 has values in -.*outside 0\.\.1 .*\(x \+ 1\) / 2"),
        (lambda f: _with(f, 3, float("nan")), "frames: frame 3 contains NaN or infinite values"),
        (lambda f: _with(f, 2, float("inf")), "frames: frame 2 contains NaN or infinite values"),
        (lambda f: _with(f, 3, -float("inf")), "frames: frame 3 contains NaN or infinite values"),
        (lambda f: _with(f, 1, 1 + 3 * VALUE_TOLERANCE), "frames: frame 1 has values in"),
        (lambda f: _with(f, 3, -3 * VALUE_TOLERANCE), "frames: frame 3 has values in"),
        (lambda f: torch.empty(f.shape, device="meta"), "meta device"),
        (lambda f: (f * 255).to(torch.uint8), "floating point"),
        (lambda f: f > 0.5, "floating point"),
        (lambda f: f.to(torch.complex64), "floating point"),
        (lambda f: f[:, :0], "size 0x48"),
        (lambda f: f.numpy(), r"must be a \[T,H,W,3\] float .* tensor, got array"),
    ],
)
def test_bad_frames_are_refused_before_the_first_network_step(model, clip, make, message):
    frames, mask = clip
    steps = _Counter()
    with pytest.raises(ValueError, match=message):
        matte_video(model, make(frames), mask, warmup=0, check_interrupt=steps)
    assert steps.calls == 0


def test_the_clip_check_names_the_first_bad_frame_and_reads_non_contiguous_clips():
    frames = random_frames(6, H, W)
    rgba = torch.cat([frames, torch.ones(6, H, W, 1)], -1)
    rgba[4, 0, 0, 2] = float("nan")
    rgba[5, 0, 0, 0] = 7.0
    with pytest.raises(ValueError, match="images: frame 4 contains NaN"):
        check_frames(rgba[..., :3], name="images")  # the node's slice of an RGBA batch: a strided view
    check_frames(frames.transpose(1, 2))  # any layout of a good clip passes


def test_overshoot_within_the_tolerance_is_clamped_and_changes_nothing(model, clip):
    frames, mask = clip
    over = frames[:2].clone()
    over[0, :4] = 1 + VALUE_TOLERANCE / 2
    over[1, -4:] = -VALUE_TOLERANCE / 2
    clamped = over.clamp(0, 1)
    assert torch.equal(matte_video(model, over, mask, warmup=0), matte_video(model, clamped, mask, warmup=0))
    assert over.max() > 1  # the caller's tensor is not modified


# ---------------------------------------------------------------------------------------------- model


@pytest.mark.parametrize(
    "bad, message",
    [
        ("matanyone2.pth", "got a path; load it first"),
        (None, "got None"),
        ({"pix_feat_proj.weight": torch.zeros(1)}, "a state dict"),
        (torch.nn.Linear(2, 2), "got a Linear module"),
        (42, r"got 42 \(int\)"),
    ],
)
def test_model_must_be_a_loaded_network(clip, bad, message):
    frames, mask = clip
    with pytest.raises(ValueError, match=f"model must be a loaded MatAnyone 2 network.*{message}"):
        matte_video(bad, frames, mask)
    with pytest.raises(ValueError, match=f"model must be a loaded MatAnyone 2 network.*{message}"):
        MattingSession(bad)


def test_a_network_without_weights_is_refused():
    with torch.device("meta"):
        empty = MatAnyone2Network()
    with pytest.raises(ValueError, match="meta device"):
        MattingSession(empty)


# ---------------------------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(warmup=2.5), r"warmup must be an int in 0\.\.1000, got 2\.5 \(float\)"),
        (dict(warmup=True), r"warmup must be an int in 0\.\.1000, got True \(bool\)"),
        (dict(warmup=10**6), r"warmup must be an int in 0\.\.1000, got 1000000"),
        (dict(warmup="10"), r"warmup must be an int .*got '10' \(str\)"),
        (dict(erode=-1), r"erode must be an int in 0\.\.100"),
        (dict(erode=MAX_KERNEL + 1), r"erode must be an int in 0\.\.100, got 101"),
        (dict(dilate=False), r"dilate must be an int .*bool"),
        (dict(max_internal_size="512"), r"max_internal_size must be an int in -1 or 0 or 1\.\.8192, got '512'"),
        (dict(max_internal_size=512.0), "max_internal_size must be an int"),
        (dict(max_internal_size=-2), "max_internal_size must be an int in -1 or 0 or 1..8192, got -2"),
        (dict(max_internal_size=-2), "max_internal_size must be an int"),
        (dict(max_internal_size=10**5), "max_internal_size must be an int"),
        (dict(long_term=1), r"long_term must be True or False, got 1 \(int\)"),
        (dict(long_term="yes"), "long_term must be True or False"),
        (dict(mem_every=0), "mem_every must be an int in 1.."),
        (dict(top_k=1.5), "top_k must be an int"),
        (dict(max_mem_frames=10**4), "max_mem_frames must be an int in 1..100"),
        (dict(query_chunk=None), "query_chunk must be an int"),
        (dict(long_term=True, long_term_min_mem_frames=10), "long_term_min_mem_frames must be below"),
        (dict(long_term=True, buffer_tokens=9900), "max_long_term_tokens must exceed"),
    ],
)
def test_options_of_the_wrong_type_or_absurd_values_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MattingOptions(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(warmup=2.5), "warmup must be an int"),
        (dict(warmup=MAX_WARMUP * 1000), "warmup must be an int"),
        (dict(anchor=1.0), r"anchor must be an int frame index, got 1\.0 \(float\)"),
        (dict(anchor=True), "anchor must be an int frame index, got True"),
        (dict(anchor="1"), "anchor must be an int frame index, got '1'"),
        (dict(anchor=-1), "anchor -1 is out of range"),
        (dict(keyframes={"3": torch.ones(H, W)}), "keyframes index must be an int frame index, got '3'"),
        (dict(keyframes={2.0: torch.ones(H, W)}), "keyframes index must be an int frame index"),
        (dict(keyframes=[torch.ones(H, W)]), r"keyframes must be a mapping \{frame index: mask\}, got \[tensor"),
        (dict(keyframes={2: torch.zeros(H, W)}), r"keyframes\[2\] is empty"),
        (dict(keyframes={2: torch.full((H, W), 0.001)}), r"keyframes\[2\] is empty"),  # rounds to 0 in 8 bits
        (dict(keyframes={2: torch.ones(H, W) * 255}), r"keyframes\[2\] has values in 255..255"),
        (dict(first_mask=torch.full((H, W), float("nan"))), "first_mask contains NaN"),
        (dict(first_mask=ellipse_mask(H, W) * 255), "first_mask has values in 0..255"),
        (dict(first_mask=torch.full((H, W), 1 / 600)), "first_mask is empty"),
        (dict(first_mask=ellipse_mask(H, W).numpy()), "first_mask must be a .* tensor, got array"),
        (dict(first_mask=torch.ones(H, W, dtype=torch.complex64)), "first_mask must be real-valued"),
        (dict(erode=H + 1), rf"erode kernel {H + 1} is larger than the frame \({H}x{W} HxW\); use at most {H}"),
        (dict(dilate=40), "dilate kernel 40 is larger than the frame"),
        (dict(options=dict(warmup=1)), r"options must be a MattingOptions or None, got \{'warmup': 1\} \(dict\)"),
        (dict(options=MattingOptions(erode=60)), "erode kernel 60 is larger than the frame"),
        (dict(progress=3), "progress must be a callable or None"),
        (dict(check_interrupt="stop"), "check_interrupt must be a callable or None"),
    ],
)
def test_bad_arguments_to_matte_video_are_refused_before_any_work(model, clip, kwargs, message):
    frames, mask = clip
    args = dict(first_mask=mask, warmup=0)
    args.update(kwargs)
    steps = _Counter()
    if "check_interrupt" not in kwargs:
        args["check_interrupt"] = steps
    with pytest.raises(ValueError, match=message):
        matte_video(model, frames, args.pop("first_mask"), **args)
    assert steps.calls == 0


def test_options_keep_the_official_defaults_stay_frozen_and_take_numpy_ints():
    defaults = MattingOptions()
    assert (defaults.warmup, defaults.erode, defaults.dilate, defaults.max_internal_size) == (10, 10, 10, -1)
    assert (defaults.mem_every, defaults.max_mem_frames, defaults.top_k, defaults.long_term) == (5, 5, 30, False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        defaults.warmup = 3
    opts = MattingOptions(warmup=np.int64(3), long_term=np.bool_(True), max_internal_size=np.int32(480))
    assert opts.warmup == 3 and type(opts.warmup) is int and opts.long_term is True
    assert type(opts.max_internal_size) is int and MattingOptions(warmup=MAX_WARMUP).warmup == MAX_WARMUP


def test_check_index_takes_the_callers_name():
    assert check_index(np.int64(2), name="anchor_frame", count=3) == 2
    with pytest.raises(ValueError, match=r"anchor_frame 3 is out of range for a clip of 3 frames \(0\.\.2\)"):
        check_index(3, name="anchor_frame", count=3)
    with pytest.raises(ValueError, match="anchor_frame must be >= 0"):
        check_index(-1, name="anchor_frame", count=None)


def test_masks_are_checked_with_the_callers_name():
    assert mask_is_empty(torch.full((4, 4), 0.5 / 255)) and not mask_is_empty(torch.full((4, 4), 0.6 / 255))
    assert check_mask(torch.ones(1, 4, 4, dtype=torch.bool), (4, 4)).shape == (4, 4)
    with pytest.raises(ValueError, match=r"mask must be \[H,W\] = \[4, 5\] like the frames, got \[4, 4\]"):
        check_mask(torch.ones(4, 4), (4, 5))
    with pytest.raises(ValueError, match="mask is on the meta device"):
        check_mask(torch.ones(4, 4, device="meta"), (4, 4))
    assert check_mask(torch.zeros(4, 4), (4, 4), require_subject=False).shape == (4, 4)


# ---------------------------------------------------------------------------------------------- session


def test_session_checks_each_frame_before_it_changes_any_state(model, clip):
    frames, mask = clip
    reference = MattingSession(model, MattingOptions(warmup=0))
    expected = [reference.step(f, mask if i == 0 else None) for i, f in enumerate(frames)]

    session = MattingSession(model, MattingOptions(warmup=0))
    with pytest.raises(ValueError, match="frame 0 contains NaN or infinite values"):
        session.step(_with(frames, 0, float("nan"))[0], mask)
    with pytest.raises(ValueError, match="first frame needs a mask"):
        session.step(frames[0])
    with pytest.raises(ValueError, match="mask is empty"):
        session.step(frames[0], torch.zeros(H, W))
    with pytest.raises(ValueError, match="erode kernel 40 is larger than the frame"):
        MattingSession(model, MattingOptions(erode=40)).step(frames[0], mask)
    assert session.frame_size is None and session.frames_done == 0 and not session.memory.engaged

    out = [session.step(frames[0], mask), session.step(frames[1])]
    memory = (session.memory.permanent.size, session.memory.working.size, session.curr_ti)
    bad = [
        (frames[2] * 255, "frame 2 has values in"),
        (_with(frames, 2, float("inf"))[2], "frame 2 contains NaN or infinite"),
        (torch.rand(H + 16, W, 3), r"frame 2: frame size \(48, 48\) differs from the clip's \(32, 48\)"),
        (frames[2].to(torch.float16).to("meta"), "frame 2 is on the meta device"),
        (frames[2].double().numpy(), r"frame 2 must be a \[H,W,3\] float"),
    ]
    for frame, message in bad:
        with pytest.raises(ValueError, match=message):
            session.step(frame)
    with pytest.raises(ValueError, match="keyframe mask at frame 2 is empty"):
        session.step(frames[2], torch.zeros(H, W))
    assert (session.memory.permanent.size, session.memory.working.size, session.curr_ti) == memory
    assert session.frames_done == 2
    out += [session.step(f) for f in frames[2:]]
    assert all(torch.equal(a, b) for a, b in zip(out, expected, strict=True))  # the refusals left no trace


def test_step_after_close_says_the_session_is_closed(model, clip):
    frames, mask = clip
    session = MattingSession(model, MattingOptions(warmup=0))
    session.step(frames[0], mask)
    session.close()
    session.close()  # closing twice is fine
    with pytest.raises(ValueError, match="MattingSession is closed"):
        session.step(frames[1])
    with pytest.raises(ValueError, match="MattingSession is closed"):
        session.step(frames[0], mask)


def test_session_refuses_bad_options_and_hooks(model):
    with pytest.raises(ValueError, match="options must be a MattingOptions or None"):
        MattingSession(model, {"warmup": 0})
    with pytest.raises(ValueError, match="check_interrupt must be a callable or None"):
        MattingSession(model, check_interrupt=True)


# ---------------------------------------------------------------------------------------------- devices


NO_SUCH_DEVICE = "x" if torch.cuda.is_available() else "cuda"  # plain "cuda" is only unusable without a GPU


@pytest.mark.parametrize("device", ["gpu", "banana", "cuda:7", "meta", NO_SUCH_DEVICE])
def test_unusable_devices_name_the_device_and_what_is_available(device):
    with pytest.raises(ValueError) as err:
        resolve_device(device)
    message = str(err.value)
    assert f"'{device}'" in message and "available: cpu" in message
    if device.startswith("cuda") and not torch.cuda.is_available():
        assert "CUDA is not available" in message
    if device == "cuda:7" and torch.cuda.is_available():
        assert "no CUDA device 7" in message


def test_resolve_device_accepts_names_and_devices_and_refuses_other_types():
    assert resolve_device("cpu") == torch.device("cpu") == resolve_device(torch.device("cpu"))
    with pytest.raises(ValueError, match=r"device must be a device name .*got 0 \(int\)"):
        resolve_device(0)


def test_load_matting_model_refuses_an_unusable_device_before_reading(tmp_path):
    # The file does not exist: the device error must come first (no time spent reading weights).
    with pytest.raises(ValueError, match="device 'cuda:7'.*available: cpu"):
        load_matting_model(tmp_path / "missing.pth", device="cuda:7")
    with pytest.raises(ValueError, match="device 'banana' is not a device name"):
        load_matting_model(tmp_path / "missing.pth", device="banana")
