"""The streaming path: lazy sources (folders, video files with seeking, trim windows), the streamed engine
(equal to matte_video, anchors in the middle and keyframes on both sides), and the encoders (lossless alpha,
RGBA, audio copied or transcoded, nothing left behind on failure)."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from conftest import ellipse_mask, random_frames
from PIL import Image

from matanyone2_core import matte_video
from matanyone2_core.__main__ import main
from matanyone2_core.engine.options import MattingOptions
from matanyone2_core.io import to_uint8
from matanyone2_core.streaming import (
    AudioTrack,
    FolderSource,
    TensorSource,
    VideoFileSource,
    VideoSink,
    matte_to_files,
    reversed_frames,
    stream_mattes,
)

T, H, W = 9, 48, 64
FPS = Fraction(12)


@pytest.fixture(scope="module")
def frames8() -> np.ndarray:
    return to_uint8(random_frames(T, H, W, seed=5))


def _write_video(path, frames8, codec="png", audio=None):
    sink = VideoSink(path, fps=FPS, size=(H, W), codec=codec, audio=audio)
    for frame in frames8:
        sink.write(frame)
    return sink.close()


def _tone(seconds: float, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.25 * np.sin(2 * np.pi * 330 * t))[None].astype(np.float32)


def _decode(path, fmt="rgb24"):
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format=fmt) for f in container.decode(video=0)])


def test_video_source_seeks_frame_exactly_and_reads_backward(tmp_path, frames8):
    lossless = VideoFileSource(_write_video(tmp_path / "clip.mov", frames8))
    assert (lossless.count, lossless.size, lossless.fps) == (T, (H, W), FPS)
    assert np.array_equal(to_uint8(torch.stack(list(lossless.frames()))), frames8)
    # h264 with inter frames: every seek lands on the asked frame (decoded from its key frame on)
    lossy = VideoFileSource(_write_video(tmp_path / "clip.mp4", frames8, codec="h264"))
    forward = torch.stack(list(lossy.frames()))
    assert forward.shape == (T, H, W, 3)
    for chunk in (1, 4, 20):
        backward = list(reversed_frames(lossy, 2, T, chunk=chunk))
        assert [i for i, _ in backward] == list(range(T - 1, 1, -1))
        assert all(torch.equal(frame, forward[i]) for i, frame in backward)
    assert torch.equal(torch.stack(list(lossy.frames(3, 6))), forward[3:6])


def test_trim_window_selects_the_frames_inside_it(tmp_path, frames8):
    path = _write_video(tmp_path / "clip.mov", frames8)
    window = VideoFileSource(path, start_time=2 / 12, duration=4 / 12)  # frames 2..5 at 12 fps
    assert window.count == 4 and window.window[0] == pytest.approx(2 / 12)
    assert np.array_equal(to_uint8(torch.stack(list(window.frames()))), frames8[2:6])


@pytest.mark.parametrize("kind", ["folder", "video", "tensor"])
def test_streamed_mattes_equal_matte_video(tmp_path, model, frames8, kind):
    if kind == "folder":
        (tmp_path / "f").mkdir()
        for i, f in enumerate(frames8):
            Image.fromarray(f).save(tmp_path / "f" / f"{i:03d}.png")
        source = FolderSource(tmp_path / "f")
    elif kind == "video":
        source = VideoFileSource(_write_video(tmp_path / "clip.mov", frames8))
    else:
        source = TensorSource(torch.from_numpy(frames8).float() / 255)
    clip = torch.from_numpy(frames8).float() / 255
    mask, key = ellipse_mask(H, W), torch.roll(ellipse_mask(H, W), 6, dims=1)
    keyframes = {1: key, 7: key}  # one before the anchor (backward pass), one after it
    expected = matte_video(model, clip, mask, anchor=4, keyframes=keyframes, warmup=1, erode=3, dilate=3)
    seen = []
    out = list(stream_mattes(model, source, mask, anchor=4, keyframes=keyframes, chunk=3,
                             options=MattingOptions(warmup=1, erode=3, dilate=3),
                             progress=lambda done, total: seen.append((done, total))))  # fmt: skip
    assert [t for t, _, _ in out] == list(range(T))
    assert all(torch.equal(frame, clip[t]) for t, frame, _ in out)
    alphas = torch.stack([a for _, _, a in out])
    assert float((alphas - expected).abs().max()) <= 1 / 65535  # the backward pass went through the 16-bit spill
    assert torch.equal(alphas[4:], expected[4:])  # the forward pass itself is exact
    assert seen[-1] == (T + 1, T + 1)  # the anchor is matted by both passes


def test_bad_inputs_are_refused_before_decoding(tmp_path, model, frames8):
    source = TensorSource(torch.from_numpy(frames8).float() / 255)
    with pytest.raises(ValueError, match="mask"):
        stream_mattes(model, source, torch.ones(H + 1, W))
    with pytest.raises(ValueError, match="anchor"):
        stream_mattes(model, source, ellipse_mask(H, W), anchor=T)
    with pytest.raises(ValueError, match="keyframes"):
        stream_mattes(model, source, ellipse_mask(H, W), keyframes={2: torch.zeros(H, W)})
    with pytest.raises(FileNotFoundError, match="video file not found"):
        VideoFileSource(tmp_path / "none.mp4")
    (tmp_path / "text.mp4").write_text("not a video")
    with pytest.raises(ValueError, match="not a readable video"):
        VideoFileSource(tmp_path / "text.mp4")


def test_files_are_lossless_rgba_with_audio(tmp_path, model, frames8):
    src = _write_video(tmp_path / "clip.mov", frames8, audio=AudioTrack(samples=_tone(T / 12), sample_rate=16000))
    source = VideoFileSource(src)
    out = tmp_path / "out"
    out.mkdir()
    mask = ellipse_mask(H, W)
    result = matte_to_files(model, source, mask, out, "shot", codec="png", foreground_colors="frame", anchor=2,
                            png_sequence=True, audio=AudioTrack.from_file(src),
                            options=MattingOptions(warmup=1, erode=3, dilate=3))  # fmt: skip
    expected = matte_video(model, torch.from_numpy(frames8).float() / 255, mask, anchor=2, warmup=1, erode=3, dilate=3)
    alpha = _decode(result.alpha_video, "gray")
    assert np.abs(alpha.astype(int) - to_uint8(expected).astype(int)).max() <= 1
    rgba = _decode(result.foreground_video, "rgba")
    assert np.array_equal(rgba[..., 3], alpha) and np.array_equal(rgba[..., :3], frames8)
    pngs = sorted((result.png_folder / "pha").glob("*.png"))
    assert len(pngs) == T and np.array_equal(np.asarray(Image.open(pngs[5])), alpha[5])
    with av.open(str(result.foreground_video)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"  # copied as it was
    assert sorted(p.name for p in out.iterdir()) == ["shot_alpha.mov", "shot_foreground.mov", "shot_png"]


def test_pcm_audio_is_transcoded_for_mp4_and_prores_has_alpha(tmp_path, model, frames8):
    src = tmp_path / "pcm.mov"
    with av.open(str(src), "w") as container:  # a source whose audio mp4 cannot take as it is
        video = container.add_stream("png", rate=12)
        video.width, video.height, video.pix_fmt = W, H, "rgb24"
        audio = container.add_stream("pcm_s16le", rate=16000)
        audio.layout = "mono"
        for i, f in enumerate(frames8):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        pcm = (_tone(T / 12) * 32767).astype(np.int16)
        chunk = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        chunk.sample_rate = 16000
        container.mux(audio.encode(chunk))
        container.mux(audio.encode(None))
        container.mux(video.encode(None))
    out = tmp_path / "out"
    out.mkdir()
    options = MattingOptions(warmup=0, erode=3, dilate=3)
    result = matte_to_files(model, VideoFileSource(src), ellipse_mask(H, W), out, "a", codec="h264",
                            audio=AudioTrack.from_file(src), options=options)  # fmt: skip
    with av.open(str(result.foreground_video)) as container:
        assert [s.codec_context.name for s in container.streams] == ["h264", "aac"]
        assert sum(1 for _ in container.decode(video=0)) == T
    prores = matte_to_files(model, VideoFileSource(src), ellipse_mask(H, W), out, "p", codec="prores4444",
                            options=options)  # fmt: skip
    with av.open(str(prores.foreground_video)) as container:
        assert container.streams.video[0].codec_context.pix_fmt.startswith("yuva444p")


def test_failures_leave_nothing_under_the_final_names(tmp_path, model, frames8):
    source = TensorSource(torch.from_numpy(frames8).float() / 255)
    out = tmp_path / "out"
    out.mkdir()
    calls = []

    def interrupt() -> None:
        calls.append(1)
        if len(calls) > 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        matte_to_files(model, source, ellipse_mask(H, W), out, "x", png_sequence=True, check_interrupt=interrupt,
                       options=MattingOptions(warmup=0, erode=3, dilate=3))  # fmt: skip
    assert list(out.iterdir()) == []
    (out / "y_alpha.mp4").write_bytes(b"")
    with pytest.raises(FileExistsError, match="y_alpha.mp4"):
        matte_to_files(model, source, ellipse_mask(H, W), out, "y")
    with pytest.raises(ValueError, match="mask"):
        matte_to_files(model, source, torch.zeros(H, W), out, "z")
    assert sorted(p.name for p in out.iterdir()) == ["y_alpha.mp4"]


def test_cli_anchor_runs_backward_from_a_video(tmp_path, weights_path, model, frames8):
    path = _write_video(tmp_path / "clip.mov", frames8)
    mask = ellipse_mask(H, W)
    Image.fromarray(to_uint8(mask)).save(tmp_path / "mask.png")
    code = main(["matte", "--frames", str(path), "--mask", str(tmp_path / "mask.png"), "--weights", str(weights_path),
                 "--out", str(tmp_path / "out"), "--anchor", "3", "--warmup", "1", "--erode", "3", "--dilate", "3",
                 "--device", "cpu", "--no-foreground"])  # fmt: skip
    assert code == 0
    expected = matte_video(model, torch.from_numpy(frames8).float() / 255, mask, anchor=3, warmup=1, erode=3,
                           dilate=3)  # fmt: skip
    written = np.stack([np.asarray(Image.open(tmp_path / "out" / "pha" / f"{i:04d}.png")) for i in range(T)])
    assert np.abs(written.astype(int) - to_uint8(expected).astype(int)).max() <= 1
    assert np.array_equal(written[3:], to_uint8(expected[3:]))


def test_crop_mattes_only_the_box_and_subject_box_holds_the_masks(tmp_path, model, frames8):
    from matanyone2_core.streaming import subject_box

    clip = torch.from_numpy(frames8).float() / 255
    mask = torch.zeros(H, W)
    mask[10:30, 20:44] = 1
    box = (4, 40, 12, 56)
    options = MattingOptions(warmup=1, erode=3, dilate=3)
    out = torch.stack([a for _, _, a in stream_mattes(model, TensorSource(clip), mask, anchor=2, crop=box,
                                                       options=options)])  # fmt: skip
    top, bottom, left, right = box
    expected = matte_video(model, clip[:, top:bottom, left:right], mask[top:bottom, left:right], anchor=2, warmup=1,
                           erode=3, dilate=3)  # fmt: skip
    assert float((out[:, top:bottom, left:right] - expected).abs().max()) <= 1 / 65535
    outside = torch.ones(H, W, dtype=torch.bool)
    outside[top:bottom, left:right] = False
    assert float(out[:, outside].abs().max()) == 0.0
    with pytest.raises(ValueError, match="crop"):
        stream_mattes(model, TensorSource(clip), mask, crop=(0, H + 1, 0, W))
    with pytest.raises(ValueError, match="mask inside the crop"):
        stream_mattes(model, TensorSource(clip), mask, crop=(32, 48, 0, 8), options=options)

    found = subject_box(model, TensorSource(clip), mask, options=options)
    assert found[0] <= 10 and found[1] >= 30 and found[2] <= 20 and found[3] >= 44  # the mask, with a margin
    assert 0 <= found[0] < found[1] <= H and 0 <= found[2] < found[3] <= W
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = matte_to_files(model, TensorSource(clip), mask, out_dir, "c", codec="png", subject_crop=True,
                            foreground_colors="frame", options=options)  # fmt: skip
    assert result.crop == found
    written = _decode(result.alpha_video, "gray")
    top, bottom, left, right = found
    inside = matte_video(model, clip[:, top:bottom, left:right], mask[top:bottom, left:right], warmup=1, erode=3,
                         dilate=3)  # fmt: skip
    assert np.array_equal(written[:, top:bottom, left:right], to_uint8(inside))
