"""Engine options (being written)."""
from dataclasses import dataclass


@dataclass(frozen=True)
class MattingOptions:
    warmup: int = 10
    erode: int = 10
    dilate: int = 10
    max_internal_size: int = -1
    long_term: bool = False
