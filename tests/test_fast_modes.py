"""Fast modes: the full-softmax memory read is the top-k read with k = every token (its exact definition),
and differs from the official top-k when the memory holds more than k tokens."""

from __future__ import annotations

import pytest
import torch
from conftest import ellipse_mask, random_frames

from matanyone2_core import MattingOptions, matte_video
from matanyone2_core.engine.memory import MemoryBank, similarity

T, H, W = 10, 64, 96  # 4x6 = 24 tokens per memory frame: the bank outgrows top_k=30 after two frames


def test_full_read_is_top_k_over_every_token(model):
    clip, mask = random_frames(T, H, W, seed=2), ellipse_mask(H, W)
    full = matte_video(model, clip, mask, options=MattingOptions(warmup=1, erode=3, dilate=3, memory_read="full"))
    every = matte_video(model, clip, mask, options=MattingOptions(warmup=1, erode=3, dilate=3, top_k=4096))
    assert float((full - every).abs().max()) < 1e-5


def test_full_read_is_the_softmax_over_the_bank():
    """The bank's read against the formula: softmax over all N_mem tokens of the similarity, times the values."""
    gen = torch.Generator().manual_seed(0)
    bank = MemoryBank(MattingOptions(memory_read="full"))
    key, shrinkage = torch.randn(1, 8, 5, 6, generator=gen), torch.rand(1, 1, 5, 6, generator=gen) + 0.5
    selection, value = torch.rand(1, 8, 5, 6, generator=gen), torch.randn(2, 1, 4, 5, 6, generator=gen)
    for _ in range(3):  # 90 tokens, three times top_k
        noisy = key + 0.1 * torch.randn(key.shape, generator=gen)
        bank.add(noisy, shrinkage, selection, value, torch.zeros(2, 1, 16, 5))
    query_key, query_selection = torch.randn(1, 8, 5, 6, generator=gen), torch.rand(1, 8, 5, 6, generator=gen)
    read = bank.read(query_key, query_selection)
    keys = torch.cat([bank.permanent.key, bank.working.key], -1)
    values = torch.cat([bank.permanent.value, bank.working.value], -1)  # [N,C,N_mem]
    weights = torch.softmax(similarity(keys, torch.cat([bank.permanent.shrinkage, bank.working.shrinkage], -1),
                                       query_key[0].flatten(1), query_selection[0].flatten(1)), dim=0)  # fmt: skip
    expected = (values @ weights).view(2, 1, 4, 5, 6)
    assert torch.allclose(read, expected, atol=1e-5)
    top = MemoryBank(MattingOptions())
    top.permanent, top.working = bank.permanent, bank.working
    assert float((top.read(query_key, query_selection) - read).abs().max()) > 1e-3  # top-30 of 90: another read


def test_full_read_with_long_term_memory_counts_usage(model):
    clip, mask = random_frames(T, H, W, seed=3), ellipse_mask(H, W)
    options = dict(warmup=0, erode=3, dilate=3, long_term=True, long_term_max_mem_frames=3, long_term_min_mem_frames=2,
                   num_prototypes=8, max_long_term_tokens=40, buffer_tokens=4, mem_every=1)  # fmt: skip
    full = matte_video(model, clip, mask, options=MattingOptions(**options, memory_read="full"))
    every = matte_video(model, clip, mask, options=MattingOptions(**options, top_k=4096))
    assert float((full - every).abs().max()) < 1e-5  # consolidation chose the same prototypes from the same usage


def test_unknown_memory_read_is_refused():
    with pytest.raises(ValueError, match="memory_read must be one of"):
        MattingOptions(memory_read="fast")


def test_batched_encoding_gives_the_same_alphas(model):
    """encode_batch > 1 encodes several frames in one pixel-encoder call; the alphas are those of one at a time."""
    from matanyone2_core.streaming import TensorSource, stream_mattes

    clip, mask = random_frames(T, H, W, seed=4), ellipse_mask(H, W)
    keyframes = {2: torch.roll(mask, 5, dims=1), 8: mask}
    one = MattingOptions(warmup=1, erode=3, dilate=3)
    four = MattingOptions(warmup=1, erode=3, dilate=3, encode_batch=4)
    expected = matte_video(model, clip, mask, anchor=5, keyframes=keyframes, options=one)
    batched = matte_video(model, clip, mask, anchor=5, keyframes=keyframes, options=four)
    assert float((batched - expected).abs().max()) < 1e-5
    streamed = torch.stack([a for _, _, a in stream_mattes(model, TensorSource(clip), mask, anchor=5,
                                                           keyframes=keyframes, options=four)])  # fmt: skip
    assert float((streamed - expected).abs().max()) < 2e-5


def test_step_functions_are_single_graphs_and_compile_gives_the_same_alphas(model, monkeypatch, caplog):
    """No host synchronisation on the hot path: dynamo captures the image encoder and a whole memory-read +
    decoder step as one graph each, with no break (an .item(), nonzero or data-dependent shape would break it);
    compile=True gives the eager alphas, and falls back to eager when the backend fails."""
    import logging

    import torch._dynamo as dynamo

    from matanyone2_core import MattingSession
    from matanyone2_core.engine import compiled

    clip, mask = random_frames(6, 64, 96, seed=6), ellipse_mask(64, 96)
    session = MattingSession(model, MattingOptions(warmup=0, erode=3, dilate=3))
    session.step(clip[0], mask)
    for frame in clip[1:5]:
        session.step(frame)
    group, prepared = session.groups[0], session._frame(clip[5])
    with torch.inference_mode():
        explained = dynamo.explain(model.encode_image)(prepared.image)
        assert (explained.graph_count, explained.graph_break_count) == (1, 0)
        features = model.encode_image(prepared.image)
        explained = dynamo.explain(lambda f: session._segment(group, f, update_sensory=True))(features)
        assert (explained.graph_count, explained.graph_break_count) == (1, 0)

    options = dict(warmup=1, erode=3, dilate=3)
    eager = matte_video(model, clip, mask, options=MattingOptions(**options))
    monkeypatch.setattr(compiled, "BACKEND", "eager")
    dynamo.reset()
    assert torch.equal(matte_video(model, clip, mask, options=MattingOptions(**options, compile=True)), eager)
    monkeypatch.setattr(compiled, "BACKEND", "no-such-backend")
    with caplog.at_level(logging.WARNING, logger="matanyone2"):
        fallback = matte_video(model, clip, mask, options=MattingOptions(**options, compile=True))
    assert torch.equal(fallback, eager) and "running" in caplog.text and "eagerly" in caplog.text
