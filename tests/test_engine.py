"""Engine behaviour: streaming with bounded memory, anchors and keyframes, precision, bad input."""

from __future__ import annotations

import pytest
import torch
from conftest import ellipse_mask, random_frames

from matanyone2_core import MattingOptions, MattingSession, load_matting_model, matte_video

H, W = 64, 96


@pytest.fixture(scope="module")
def clip():
    return random_frames(9, H, W, seed=5), ellipse_mask(H, W)


def _bank_bytes(session: MattingSession) -> int:
    mem = session.memory
    tensors = [mem.sensory, mem.summaries, session.last_mask, session.last_pix_feat, session.last_mask_value]
    for store in (mem.long, mem.permanent, mem.working):
        tensors += [store.key, store.shrinkage, store.value, store.selection, store.usage, store.life]
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def test_state_stays_bounded_however_long_the_stream(model):
    frames = random_frames(32, H, W, seed=6)
    session = MattingSession(model, MattingOptions(warmup=0))
    sizes = []
    for i, frame in enumerate(frames):
        session.step(frame, ellipse_mask(H, W) if i == 0 else None)
        sizes.append(_bank_bytes(session))
    hw = (H // 16) * (W // 16)
    assert session.memory.permanent.size == hw and session.memory.working.size == 4 * hw
    assert len(set(sizes[20:])) == 1 and sizes[20] > sizes[10]  # flat once the working memory is full
    session.close()
    assert session.memory.working.size == 0 and session.last_mask is None


def test_step_returns_cpu_alpha_in_range(model, clip):
    frames, mask = clip
    session = MattingSession(model, MattingOptions(warmup=1))
    alpha = session.step(frames[0], mask)
    assert alpha.device.type == "cpu" and alpha.dtype == torch.float32 and alpha.shape == (H, W)
    assert 0 <= alpha.min() and alpha.max() <= 1


def test_anchor_runs_both_ways_and_joins_without_a_seam(model, clip):
    frames, mask = clip
    anchor = 4
    both = matte_video(model, frames, mask, warmup=1, anchor=anchor)
    forward = matte_video(model, frames[anchor:], mask, warmup=1)
    backward = matte_video(model, frames[: anchor + 1].flip(0), mask, warmup=1).flip(0)
    assert torch.equal(both[anchor:], forward)
    assert torch.equal(both[:anchor], backward[:anchor])
    assert torch.equal(backward[anchor], forward[0])  # both passes matte the anchor identically


def test_keyframe_reprompts_from_its_frame_on(model, clip):
    frames, mask = clip
    key = torch.zeros(H, W)
    key[8:40, 10:50] = 1
    plain = matte_video(model, frames, mask, warmup=1)
    keyed = matte_video(model, frames, mask, warmup=1, keyframes={5: key})
    assert torch.equal(plain[:5], keyed[:5])
    assert (plain[5:] - keyed[5:]).abs().max() > 1e-3

    session = MattingSession(model, MattingOptions(warmup=1))
    for i in range(5):
        session.step(frames[i], mask if i == 0 else None)
    before = session.memory.permanent.size
    alpha = session.step(frames[5], key)
    assert session.memory.permanent.size == 2 * before  # the keyframe is permanent memory
    assert torch.equal(alpha, keyed[5])


def test_progress_reports_every_frame_and_an_exception_stops_the_run(model, clip):
    frames, mask = clip
    seen = []
    matte_video(model, frames, mask, warmup=0, anchor=3, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(i, len(frames)) for i in range(1, len(frames) + 1)]

    class Stop(Exception):
        pass

    def stop_at_three(done, total):
        if done == 3:
            raise Stop

    with pytest.raises(Stop):
        matte_video(model, frames, mask, warmup=0, progress=stop_at_three)

    steps = []

    def stop_during_warmup():
        steps.append(1)
        if len(steps) == 4:  # the mask step, then warm-up predictions of the anchor frame
            raise Stop

    with pytest.raises(Stop):
        matte_video(model, frames, mask, warmup=10, check_interrupt=stop_during_warmup)
    assert len(steps) == 4


def test_tiny_frames_with_fewer_memory_tokens_than_top_k(model):
    frames = random_frames(4, 32, 48)
    alpha = matte_video(model, frames, ellipse_mask(32, 48), warmup=1)
    assert alpha.shape == (4, 32, 48) and torch.isfinite(alpha).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision_stays_close_to_fp32(weights_path, model, clip, dtype):
    frames, mask = clip
    exact = matte_video(model, frames, mask, warmup=1)
    low = matte_video(load_matting_model(weights_path, dtype=dtype), frames, mask, warmup=1)
    assert low.dtype == torch.float32 and torch.isfinite(low).all()
    assert (low - exact).abs().mean() < 0.02


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(frames=torch.rand(3, H, W)), "frames must be a \\[T,H,W,3\\]"),
        (dict(frames=torch.zeros(3, H, W, 3, dtype=torch.uint8)), "floating point"),
        (dict(frames=torch.rand(0, H, W, 3)), "empty"),
        (dict(first_mask=torch.zeros(H, W)), "first_mask is empty"),
        (dict(first_mask=torch.ones(H + 1, W)), "first_mask must be \\[H,W\\]"),
        (dict(anchor=9), "anchor 9 is out of range for a clip of 9 frames"),
        (dict(keyframes={12: torch.ones(H, W)}), "keyframes index 12 is out of range"),
        (dict(keyframes={0: torch.ones(H, W)}), "is the anchor frame"),
        (dict(keyframes={2: torch.ones(3, 3)}), "keyframes\\[2\\] must be"),
        (dict(erode=-1), "erode must be an int in 0..100"),
        (dict(max_internal_size=-2), "max_internal_size"),
    ],
)
def test_bad_input_is_a_clear_error(model, clip, kwargs, message):
    frames, mask = clip
    args = dict(frames=frames, first_mask=mask)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        matte_video(model, args.pop("frames"), args.pop("first_mask"), **args)


def test_session_rejects_a_first_frame_without_mask_and_size_changes(model, clip):
    frames, mask = clip
    session = MattingSession(model)
    with pytest.raises(ValueError, match="first frame needs a mask"):
        session.step(frames[0])
    session.step(frames[0], mask)
    with pytest.raises(ValueError, match="differs from the clip"):
        session.step(torch.rand(H + 16, W, 3))
