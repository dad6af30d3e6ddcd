"""Video files written frame by frame (PyAV): written under a temporary name and renamed when complete, with
the source's audio interleaved as the video goes (copied when the container takes its codec, else AAC).

Codecs (`VIDEO_CODECS`): `h264` (.mp4, yuv420p, CRF 16: small, plays everywhere, lossy; odd sizes are padded
by one repeated row/column, as yuv420p needs even sizes), `png` (.mov, lossless, RGB/RGBA/grey), `prores4444`
(.mov, ProRes 4444 with a 10-bit alpha channel, for compositing applications).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

VIDEO_CODECS = {"h264": ".mp4", "png": ".mov", "prores4444": ".mov"}
# audio codecs each container takes as they are (anything else is transcoded to AAC)
COPYABLE_AUDIO = {
    ".mp4": {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"},
    ".mov": {"aac", "mp3", "ac3", "alac", "pcm_s16le", "pcm_s24le", "pcm_f32le", "pcm_s16be", "pcm_s24be"},
}


def partial_video_name(path: Path) -> Path:
    """The temporary name a video is written under (same folder and extension, hidden)."""
    return path.with_name(f".{path.stem}.partial{path.suffix}")


class AudioTrack:
    """Audio to carry into an output: the first audio stream of a file (within a time window), or samples."""

    def __init__(self, file: Any = None, *, window: tuple[float, float] = (0.0, 0.0), samples: Any = None,
                 sample_rate: int | None = None):  # fmt: skip
        self.file, self.window, self.samples, self.sample_rate = file, window, samples, sample_rate

    @classmethod
    def from_file(cls, file: Any, window: tuple[float, float] = (0.0, 0.0)) -> AudioTrack | None:
        """The file's audio, or None when it has none."""
        import av

        with av.open(file) as probe:
            has_audio = bool(probe.streams.audio)
        if hasattr(file, "seek"):
            file.seek(0)
        return cls(file, window=window) if has_audio else None


class VideoSink:
    """Encode frames `[H,W,C]` uint8 (C = 1 grey, 3 RGB or 4 RGBA) into `path` at `fps`."""

    def __init__(self, path: str | Path, *, fps: Fraction, size: tuple[int, int], codec: str = "h264",
                 channels: int = 3, audio: AudioTrack | None = None):  # fmt: skip
        import av

        if codec not in VIDEO_CODECS:
            raise ValueError(f"codec must be one of {sorted(VIDEO_CODECS)}, got {codec!r}")
        self.av, self.path, self.codec, self.channels = av, Path(path), codec, channels
        self.size, self.fps, self.index = size, Fraction(fps), 0
        self.tmp = partial_video_name(self.path)
        self.container = av.open(str(self.tmp), "w")
        height, width = size
        try:
            if codec == "h264":
                stream = self.container.add_stream("libx264", rate=self.fps)
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "16", "preset": "veryfast"}
                self.padded = (height + height % 2, width + width % 2)
            elif codec == "png":
                stream = self.container.add_stream("png", rate=self.fps)
                stream.pix_fmt = {1: "gray", 3: "rgb24", 4: "rgba"}[channels]
                self.padded = size
            else:
                stream = self.container.add_stream("prores_ks", rate=self.fps)
                stream.pix_fmt = "yuva444p10le" if channels == 4 else "yuv444p10le"
                stream.options = {"profile": "4"}  # 4444
                self.padded = size
            stream.height, stream.width = self.padded
            self.stream = stream
            self.audio_out, self.audio_packets, self.next_audio = None, None, None
            if audio is not None:
                self._open_audio(audio)
        except BaseException:
            self.abort()
            raise

    # -- audio --------------------------------------------------------------------------------------------

    def _open_audio(self, audio: AudioTrack) -> None:
        if audio.samples is not None:
            self.audio_out = self.container.add_stream("aac", rate=int(audio.sample_rate))
            self.audio_packets = self._encode_samples(audio.samples, int(audio.sample_rate))
        else:
            self.audio_in = self.av.open(audio.file)
            source = self.audio_in.streams.audio[0]
            start, duration = audio.window
            self.audio_lo = (source.start_time or 0) + int(start / source.time_base)
            self.audio_hi = self.audio_lo + int(duration / source.time_base) if duration > 0 else None
            if source.codec_context.name in COPYABLE_AUDIO.get(self.path.suffix, set()):
                self.audio_out = self.container.add_stream_from_template(source)
                self.audio_packets = self._copy_packets(source)
            else:
                self.audio_out = self.container.add_stream("aac", rate=source.codec_context.sample_rate)
                self.audio_packets = self._transcode(source)
        self.next_audio = next(self.audio_packets, None)

    def _in_window(self, pts: int | None) -> bool:
        return pts is not None and pts >= self.audio_lo and (self.audio_hi is None or pts < self.audio_hi)

    def _copy_packets(self, source) -> Iterator[Any]:
        for packet in self.audio_in.demux(source):
            if packet.size == 0 or not self._in_window(packet.pts):
                continue
            packet.pts -= self.audio_lo
            packet.dts = None if packet.dts is None else packet.dts - self.audio_lo
            packet.stream = self.audio_out
            yield packet

    def _transcode(self, source) -> Iterator[Any]:
        for frame in self.audio_in.decode(source):
            if not self._in_window(frame.pts):
                continue
            frame.pts = None  # the encoder numbers its own samples
            yield from self.audio_out.encode(frame)
        yield from self.audio_out.encode(None)

    def _encode_samples(self, samples: Any, rate: int) -> Iterator[Any]:
        """`samples` `[C,S]` float in -1..1 (e.g. ComfyUI AUDIO's waveform[0]) as AAC, 1024 samples a frame."""
        data = np.ascontiguousarray(np.asarray(samples, dtype=np.float32))
        if data.ndim == 1:
            data = data[None]
        layout = "mono" if data.shape[0] == 1 else "stereo"
        data = data[:2]
        for begin in range(0, data.shape[1], 1024):
            frame = self.av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, begin : begin + 1024]),
                                                    format="fltp", layout=layout)  # fmt: skip
            frame.sample_rate = rate
            yield from self.audio_out.encode(frame)
        yield from self.audio_out.encode(None)

    def _mux_audio_until(self, seconds: float | None) -> None:
        """Mux the audio packets up to `seconds` (None: all), keeping audio and video interleaved."""
        while self.next_audio is not None:
            packet = self.next_audio
            if seconds is not None and packet.pts is not None and float(packet.pts * packet.time_base) > seconds:
                return
            self.container.mux(packet)
            self.next_audio = next(self.audio_packets, None)

    # -- video --------------------------------------------------------------------------------------------

    def write(self, image: np.ndarray) -> None:
        """Append one frame `[H,W,C]` uint8."""
        if image.ndim == 2:
            image = image[..., None]
        if image.shape[:2] != tuple(self.size) or image.dtype != np.uint8:
            raise ValueError(f"frame {self.index}: expected uint8 {self.size} frames, got {image.dtype} {image.shape}")
        if self.padded != tuple(self.size):
            image = np.pad(image, ((0, self.padded[0] - image.shape[0]), (0, self.padded[1] - image.shape[1]), (0, 0)),
                           mode="edge")  # fmt: skip
        if self.codec == "png" and self.channels == 1:
            frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(image[..., 0]), format="gray")
        else:
            if image.shape[-1] == 1:
                image = np.repeat(image, 3, axis=-1)
            frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgba" if image.shape[-1] == 4
                                                    else "rgb24")  # fmt: skip
        frame.pts = self.index
        frame.time_base = Fraction(1) / self.fps
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.index += 1
        if self.audio_out is not None:
            self._mux_audio_until(self.index / self.fps)

    def close(self) -> Path:
        """Flush, finish the file and rename it into place; returns the path."""
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        if self.audio_out is not None:
            self._mux_audio_until(self.index / self.fps)  # audio longer than the video is cut
        self.container.close()
        self._close_audio()
        os.replace(self.tmp, self.path)
        return self.path

    def _close_audio(self) -> None:
        if getattr(self, "audio_in", None) is not None:
            self.audio_in.close()
            self.audio_in = None

    def abort(self) -> None:
        """Stop and remove the partial file (nothing is left at `path`)."""
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - a half-written container may refuse to close cleanly
            pass
        self._close_audio()
        self.tmp.unlink(missing_ok=True)
