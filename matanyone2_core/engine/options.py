"""The engine's options: one small frozen dataclass passed down instead of loose arguments.

Every option is bounded so that a typo (a warm-up of 10**6, a 5000-pixel kernel) is an immediate error
rather than hours of silent work. The limits are named constants, part of the public API.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .validate import check_bool, check_int, describe

#: Extra predictions of the anchor frame (official default 10).
MAX_WARMUP = 1000
#: Erode / dilate kernel side in pixels (official default 10); a kernel must also fit in the frame.
MAX_KERNEL = 100
#: `max_internal_size`: -1 (off), 0 (auto: what fits the free device memory, `engine.auto_size`) or a short
#: side of 1..MAX_INTERNAL_SIZE pixels.
MAX_INTERNAL_SIZE = 8192
#: Working-memory frames (`max_mem_frames`, `long_term_*_mem_frames`); memory grows linearly with them.
MAX_MEMORY_FRAMES = 100
#: `mem_every`: a memory frame at most every this many frames.
MAX_MEM_EVERY = 1000
#: `top_k` memory tokens read per query pixel.
MAX_TOP_K = 4096
#: Long-term memory: `num_prototypes`, `max_long_term_tokens`, `buffer_tokens`.
MAX_LONG_TERM_TOKENS = 1_000_000
#: `query_chunk`: query pixels per memory-read chunk (the attention's peak memory grows with it).
MAX_QUERY_CHUNK = 1 << 20

#: `encode_batch`: frames encoded together (their features stay on the device until stepped).
MAX_ENCODE_BATCH = 64
#: How the memory is read: the official top-k softmax, or a softmax over all tokens (no top-k: one matrix
#: product, no sort, no gather; faster on GPUs, a small deviation from the official alphas).
MEMORY_READS = ("topk", "full")

# (low, high) for each int option; max_internal_size also allows -1.
LIMITS: dict[str, tuple[int, int]] = {
    "warmup": (0, MAX_WARMUP),
    "erode": (0, MAX_KERNEL),
    "dilate": (0, MAX_KERNEL),
    "max_internal_size": (1, MAX_INTERNAL_SIZE),
    "mem_every": (1, MAX_MEM_EVERY),
    "max_mem_frames": (1, MAX_MEMORY_FRAMES),
    "top_k": (1, MAX_TOP_K),
    "long_term_max_mem_frames": (1, MAX_MEMORY_FRAMES),
    "long_term_min_mem_frames": (1, MAX_MEMORY_FRAMES),
    "num_prototypes": (1, MAX_LONG_TERM_TOKENS),
    "max_long_term_tokens": (1, MAX_LONG_TERM_TOKENS),
    "buffer_tokens": (0, MAX_LONG_TERM_TOKENS),
    "query_chunk": (1, MAX_QUERY_CHUNK),
    "encode_batch": (1, MAX_ENCODE_BATCH),
}


@dataclass(frozen=True)
class MattingOptions:
    """Inference settings; the defaults are the official ones.

    Every int option must be a real int (not a float, not a bool) within `LIMITS` (warm-up 0..MAX_WARMUP,
    erode/dilate 0..MAX_KERNEL, max_internal_size -1 or 1..MAX_INTERNAL_SIZE, ...); a ValueError names the
    option, the allowed range and the value otherwise. Kernels are also checked against the frame size
    once it is known (`validate.check_kernels`).
    """

    warmup: int = 10  # extra predictions of the first frame before its alpha is kept
    erode: int = 10  # elliptical kernel size for the first-mask erosion (0 = off)
    dilate: int = 10  # elliptical kernel size for the first-mask dilation (0 = off)
    max_internal_size: int = -1  # resize so the short side is at most this inside (-1 = off, 0 = auto)
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
    memory_read: str = "topk"  # "topk" (official) or "full": softmax over every memory token (a fast mode)
    encode_batch: int = 1  # frames whose pixel features are encoded in one batched call (GPU speed; same alphas)
    compile: bool = False  # torch.compile the network's steps (CUDA graphs on a GPU), eager where that fails

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("long_term", "compile"):
                checked = check_bool(value, name=f.name)
            elif f.name == "memory_read":
                if value not in MEMORY_READS:
                    raise ValueError(f"memory_read must be one of {MEMORY_READS}, got {describe(value)}")
                checked = value
            else:
                low, high = LIMITS[f.name]
                also = (-1, 0) if f.name == "max_internal_size" else ()
                checked = check_int(value, name=f.name, low=low, high=high, also=also)
            object.__setattr__(self, f.name, checked)  # normalised (numpy ints -> int); still frozen to callers
        if self.long_term:
            if self.long_term_min_mem_frames >= self.long_term_max_mem_frames:
                raise ValueError("long_term_min_mem_frames must be below long_term_max_mem_frames")
            if self.num_prototypes + self.buffer_tokens >= self.max_long_term_tokens:
                raise ValueError("max_long_term_tokens must exceed num_prototypes + buffer_tokens")


def check_options(options: Any, *, name: str = "options") -> MattingOptions:
    """`options` itself when it is a MattingOptions, the official defaults for None; anything else is refused."""
    if options is None:
        return MattingOptions()
    if not isinstance(options, MattingOptions):
        raise ValueError(f"{name} must be a MattingOptions or None, got {describe(options)}")
    return options
