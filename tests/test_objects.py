"""Several objects in one pass: `matte_objects` and the multi-object `MattingSession`.

The oracle is our own single-object engine (itself checked against the official code in test_parity.py):
each object's alpha must equal its own `matte_video` run with the same options, its anchor mask and its
keyframes, within 1e-5 in fp32.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import ellipse_mask, random_frames

from matanyone2_core import MattingOptions, MattingSession, matte_objects, matte_video
from matanyone2_core.engine.memory import MemoryBank

TOLERANCE = 1e-5
REPORT = Path(__file__).parent.parent / "test-artifacts" / "objects_parity.txt"
H, W = 48, 64
T = 7


def _box(top: int, left: int, bottom: int, right: int) -> torch.Tensor:
    mask = torch.zeros(H, W)
    mask[top:bottom, left:right] = 1
    return mask


MASKS = torch.stack([ellipse_mask(H, W), _box(4, 4, 30, 28), _box(20, 30, 46, 62)])
KEY_A, KEY_B = _box(8, 10, 40, 50), _box(2, 36, 30, 60)


@pytest.fixture(scope="module")
def frames() -> torch.Tensor:
    return random_frames(T, H, W, seed=7)


class _Counter:
    def __init__(self, stop_at: int | None = None):
        self.calls = 0
        self.stop_at = stop_at

    def __call__(self, *args) -> None:
        self.calls += 1
        if self.calls == self.stop_at:
            raise _Stop


class _Stop(Exception):
    pass


def _own_keyframes(keyframes: dict | None, obj: int) -> dict[int, torch.Tensor]:
    """One object's keyframes out of the per-object format (tensor: empty = none; mapping: present = one)."""
    own = {}
    for index, masks in (keyframes or {}).items():
        if isinstance(masks, torch.Tensor):
            if masks[obj].any():
                own[index] = masks[obj]
        elif obj in masks:
            own[index] = masks[obj]
    return own


def _record(name: str, diffs: list[float]) -> None:
    REPORT.parent.mkdir(exist_ok=True)
    with REPORT.open("a") as f:
        f.write(f"{name}: max |dalpha| per object = {', '.join(f'{d:.3g}' for d in diffs)}\n")


def _assert_each_object_matches_its_own_run(model, frames, n, name, *, keyframes=None, **kwargs):
    together = matte_objects(model, frames, MASKS[:n], keyframes=keyframes, **kwargs)
    assert together.shape == (n, *frames.shape[:3]) and together.dtype == torch.float32
    assert together.device.type == "cpu"
    diffs = []
    for obj in range(n):
        alone = matte_video(model, frames, MASKS[obj], keyframes=_own_keyframes(keyframes, obj), **kwargs)
        diffs.append((together[obj] - alone).abs().max().item())
    _record(name, diffs)
    assert max(diffs) <= TOLERANCE, f"{name}: max |Δα| per object = {[f'{d:.3g}' for d in diffs]}"
    return diffs


# ---------------------------------------------------------------------------------------------- parity


def test_one_object_is_exactly_matte_video(model, frames):
    diffs = _assert_each_object_matches_its_own_run(model, frames, 1, "N=1 warmup 1 anchor 2", warmup=1, anchor=2)
    assert diffs == [0.0]  # N = 1 is the very same computation


@pytest.mark.parametrize("n", [2, 3])
def test_objects_match_their_own_runs_with_warmup(model, frames, n):
    _assert_each_object_matches_its_own_run(model, frames, n, f"N={n} warmup 1", warmup=1)


def test_anchor_in_the_middle_runs_both_passes_per_object(model, frames):
    _assert_each_object_matches_its_own_run(model, frames, 2, "N=2 warmup 0 anchor 3", warmup=0, anchor=3)


def test_keyframes_on_some_objects_only(model, frames):
    keyframes = {
        1: {0: KEY_A},  # backward pass, object 0 only
        4: torch.stack([torch.zeros(H, W), KEY_B, torch.zeros(H, W)]),  # tensor form: object 1 only
        5: {0: KEY_A, 1: KEY_B},  # objects in different groups by then: splits (0, 2), object 1 keyed again
    }
    _assert_each_object_matches_its_own_run(
        model, frames, 3, "N=3 warmup 1 anchor 2 keyframes", keyframes=keyframes, warmup=1, anchor=2
    )


def test_max_internal_size(model, frames):
    _assert_each_object_matches_its_own_run(
        model, frames, 3, "N=3 warmup 1 max_internal_size 40", warmup=1, max_internal_size=40, keyframes={3: {1: KEY_A}}
    )


def test_streaming_session_with_long_term_memory(model):
    # A small long-term memory (working capacity 2 frames, a memory frame every 2) consolidates within 9 frames.
    options = MattingOptions(
        warmup=0,
        long_term=True,
        mem_every=2,
        long_term_max_mem_frames=3,
        long_term_min_mem_frames=2,
        num_prototypes=4,
        max_long_term_tokens=40,
        buffer_tokens=8,
    )
    clip = random_frames(9, H, W, seed=8)
    keyed_at = 5  # object 1 only: splits the group
    session = MattingSession(model, options, num_objects=2)
    together = []
    for i, frame in enumerate(clip):
        masks = MASKS[:2] if i == 0 else ({1: KEY_A} if i == keyed_at else None)
        together.append(session.step(frame, masks))
        if i == keyed_at - 1:
            assert len(session.groups) == 1 and session.memory.long.size > 0  # consolidated, still shared
    assert [g.objects for g in session.groups] == [[1], [0]]
    together = torch.stack(together, 1)
    assert together.shape == (2, 9, H, W)
    diffs = []
    for obj in range(2):
        alone = MattingSession(model, options)
        ref = torch.stack(
            [
                alone.step(f, MASKS[obj] if i == 0 else (KEY_A if i == keyed_at and obj == 1 else None))
                for i, f in enumerate(clip)
            ]
        )
        diffs.append((together[obj] - ref).abs().max().item())
    _record("N=2 long_term streaming keyframe on object 1", diffs)
    assert max(diffs) <= TOLERANCE, f"max |Δα| per object = {[f'{d:.3g}' for d in diffs]}"


# ---------------------------------------------------------------------------------------------- shared work


def test_each_frame_is_encoded_once_per_pass_and_the_top_k_is_shared(model, frames, monkeypatch):
    encodes, mask_batches, reads = _Counter(), [], _Counter()
    read = MemoryBank.read

    def counting_read(self, *args):
        reads()
        return read(self, *args)

    monkeypatch.setattr(MemoryBank, "read", counting_read)
    hooks = [
        model.pixel_encoder.register_forward_hook(lambda *_: encodes()),
        model.mask_encoder.register_forward_hook(lambda m, args, out: mask_batches.append(args[3].shape[0])),
    ]
    try:
        anchor = 3
        matte_video(model, frames, MASKS[0], warmup=2, anchor=anchor)
        single = (encodes.calls, reads.calls)
        encodes.calls = reads.calls = 0
        mask_batches.clear()
        matte_objects(model, frames, MASKS, warmup=2, anchor=anchor)
        assert encodes.calls == (T - anchor) + (anchor + 1)  # once per frame and pass, not once per object or step
        assert (encodes.calls, reads.calls) == single  # one top-k read per frame for all three objects
        assert set(mask_batches) == {3}  # the per-object parts run for the three objects at once

        encodes.calls = reads.calls = 0
        matte_objects(model, frames, MASKS, warmup=2, anchor=anchor, keyframes={5: {1: KEY_A}})
        assert encodes.calls == T + 1  # the keyframe step reuses its frame's encoding too
        assert reads.calls == single[1] + 2  # frames 5 and 6: two groups (object 1 | objects 0, 2), two reads
    finally:
        for hook in hooks:
            hook.remove()


# ---------------------------------------------------------------------------------------------- progress


def test_progress_counts_output_frames_and_interrupts_come_before_every_network_step(model, frames):
    seen = []
    steps = _Counter()
    matte_objects(
        model,
        frames,
        MASKS[:2],
        warmup=1,
        anchor=2,
        keyframes={5: {0: KEY_A}},
        progress=lambda d, t: seen.append((d, t)),
        check_interrupt=steps,
    )
    assert seen == [(i, T) for i in range(1, T + 1)]
    # forward: mask + 2 predictions at the anchor, 4 frames, + 1 keyframe mask step and 1 more group at
    # frames 5 and 6 (the split); backward: 3 at the anchor and 2 frames
    assert steps.calls == (3 + 4 + 1 + 2) + (3 + 2)

    with pytest.raises(_Stop):
        matte_objects(model, frames, MASKS[:2], warmup=0, progress=_Counter(stop_at=3))
    stop = _Counter(stop_at=3)
    with pytest.raises(_Stop):
        matte_objects(model, frames, MASKS[:2], warmup=5, check_interrupt=stop)
    assert stop.calls == 3  # stopped during the warm-up


# ---------------------------------------------------------------------------------------------- bad input


def _keyed(n: int, index: int, mask: torch.Tensor) -> torch.Tensor:
    masks = torch.zeros(n, H, W)
    masks[index] = mask
    return masks


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(masks=MASKS[0]), r"masks must be \[N,H,W\] \(one mask per object\), got a single \[H,W\] mask"),
        (dict(masks=torch.zeros(0, H, W)), r"masks holds no object \(N = 0\)"),
        (dict(masks=[]), r"masks holds no object"),
        (dict(masks=torch.ones(2, H + 1, W)), r"masks must be \[N,H,W\] with \[H,W\] = \[48, 64\]"),
        (dict(masks=torch.stack([MASKS[0], torch.zeros(H, W)])), "masks: object 1's mask is empty"),
        (dict(masks=MASKS[:2] * 255), "masks: object 0's mask has values in .*divide by 255"),
        (dict(masks=[MASKS[0], torch.ones(3, 3)]), r"masks: object 1's mask must be \[H,W\]"),
        (dict(masks="mask.png"), r"masks must be a \[N,H,W\] tensor, a list of \[H,W\] masks or a mapping"),
        (dict(frames=torch.rand(T, H, W)), r"frames must be a \[T,H,W,3\]"),
        (dict(anchor=T), f"anchor {T} is out of range"),
        (dict(keyframes=[MASKS[:2]]), "keyframes must be a mapping"),
        (dict(keyframes={12: MASKS[:2]}), "keyframes index 12 is out of range"),
        (dict(keyframes={0: MASKS[:2]}), "keyframes index 0 is the anchor frame"),
        (dict(keyframes={2: MASKS}), r"keyframes\[2\] holds 3 masks but there are 2 objects"),
        (dict(keyframes={2: {5: KEY_A}}), r"keyframes\[2\]: object index 5 is out of range for 2 objects \(0..1\)"),
        (dict(keyframes={2: {True: KEY_A}}), r"keyframes\[2\]: object index must be an int, got True \(bool\)"),
        (dict(keyframes={2: {1: torch.zeros(H, W)}}), r"keyframes\[2\]: object 1's mask is empty"),
        (dict(keyframes={2: {0: torch.ones(H, 3)}}), r"keyframes\[2\]: object 0's mask must be \[H,W\]"),
        (dict(keyframes={2: _keyed(2, 1, torch.full((H, W), 2.0))}), r"keyframes\[2\]: object 1's mask has values"),
        (dict(erode=-1), "erode must be an int in 0..100"),
        (dict(dilate=80), "dilate kernel 80 is larger than the frame"),
        (dict(progress=3), "progress must be a callable"),
    ],
)
def test_bad_input_is_refused_before_any_network_step(model, frames, kwargs, message):
    args = dict(frames=frames, masks=MASKS[:2], warmup=0)
    args.update(kwargs)
    steps = _Counter()
    with pytest.raises(ValueError, match=message):
        matte_objects(model, args.pop("frames"), args.pop("masks"), check_interrupt=steps, **args)
    assert steps.calls == 0


def test_empty_keyframe_masks_in_a_tensor_mean_no_keyframe(model, frames):
    plain = matte_objects(model, frames[:3], MASKS[:2], warmup=0)
    assert torch.equal(plain, matte_objects(model, frames[:3], MASKS[:2], warmup=0, keyframes={1: _keyed(2, 0, 0)}))


def test_session_checks_masks_before_it_changes_any_state(model, frames):
    with pytest.raises(ValueError, match=r"num_objects must be an int in 1\.\."):
        MattingSession(model, num_objects=0)
    session = MattingSession(model, MattingOptions(warmup=0), num_objects=2)
    with pytest.raises(ValueError, match="the first frame needs the anchor masks, one per object"):
        session.step(frames[0])
    with pytest.raises(ValueError, match=r"masks has no mask for object\(s\) \[1\]"):
        session.step(frames[0], {0: MASKS[0]})
    with pytest.raises(ValueError, match="masks: object 0's mask is empty"):
        session.step(frames[0], torch.zeros(2, H, W))
    assert session.frames_done == 0 and not session.memory.engaged

    first = session.step(frames[0], MASKS[:2])
    assert first.shape == (2, H, W)
    state = (session.curr_ti, session.memory.permanent.size, len(session.groups))
    with pytest.raises(ValueError, match=r"keyframe masks at frame 1 holds 3 masks but there are 2 objects"):
        session.step(frames[1], MASKS)
    with pytest.raises(ValueError, match="keyframe masks at frame 1: object 1's mask is empty"):
        session.step(frames[1], {0: KEY_A, 1: torch.zeros(H, W)})
    assert (session.curr_ti, session.memory.permanent.size, len(session.groups)) == state
    session.step(frames[1], {1: KEY_A})
    assert [g.objects for g in session.groups] == [[1], [0]]
    with pytest.raises(RuntimeError, match="2 object groups"):
        session.memory  # noqa: B018 -- the property raises
    session.close()
    assert len(session.groups) == 1 and not session.groups[0].memory.engaged
