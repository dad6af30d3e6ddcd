"""Streaming: clips decoded lazily from files, matted frame by frame and encoded while they go, with host
memory independent of the clip's length."""

from .matte import FOREGROUND_COLORS, StreamResult, matte_to_files, stream_mattes, subject_box
from .sink import VIDEO_CODECS, AudioTrack, VideoSink
from .source import FolderSource, FrameSource, TensorSource, VideoFileSource, open_source, reversed_frames

__all__ = [
    "FOREGROUND_COLORS",
    "VIDEO_CODECS",
    "AudioTrack",
    "FolderSource",
    "FrameSource",
    "StreamResult",
    "TensorSource",
    "VideoFileSource",
    "VideoSink",
    "matte_to_files",
    "open_source",
    "reversed_frames",
    "stream_mattes",
    "subject_box",
]
