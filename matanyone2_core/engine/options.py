"""The engine's options: one small frozen dataclass passed down instead of loose arguments."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MattingOptions:
    """Inference settings; the defaults are the official ones."""

    warmup: int = 10  # extra predictions of the first frame before its alpha is kept
    erode: int = 10  # elliptical kernel size for the first-mask erosion (0 = off)
    dilate: int = 10  # elliptical kernel size for the first-mask dilation (0 = off)
    max_internal_size: int = -1  # resize so the short side is at most this inside (-1 = off)
    long_term: bool = False  # long-term memory with prototype consolidation
    mem_every: int = 5
    max_mem_frames: int = 5  # working memory, the permanent first frame included
    top_k: int = 30
    long_term_max_mem_frames: int = 10
    long_term_min_mem_frames: int = 5
    num_prototypes: int = 128
    max_long_term_tokens: int = 10000
    buffer_tokens: int = 2000
    query_chunk: int = 4096  # query pixels per memory-read chunk (bounds the attention's peak memory)

    def __post_init__(self) -> None:
        for name in ("warmup", "erode", "dilate"):
            if getattr(self, name) < 0:
                raise ValueError(f"MattingOptions.{name} must be >= 0, got {getattr(self, name)}")
        if self.max_internal_size == 0 or self.max_internal_size < -1:
            raise ValueError(
                f"MattingOptions.max_internal_size must be -1 (off) or a positive size, got {self.max_internal_size}"
            )
        for name in ("mem_every", "max_mem_frames", "top_k", "query_chunk", "num_prototypes"):
            if getattr(self, name) < 1:
                raise ValueError(f"MattingOptions.{name} must be >= 1, got {getattr(self, name)}")
        if self.long_term and self.long_term_min_mem_frames >= self.long_term_max_mem_frames:
            raise ValueError("MattingOptions.long_term_min_mem_frames must be below long_term_max_mem_frames")
