"""Masks of several objects over a clip: what segmenters hand to matting (seeds) and to the evaluator."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ObjectMasks:
    """Masks of N objects on consecutive clip frames: `masks` `[N,T,H,W]` float32 in 0..1 on the CPU, whose
    frame 0 is clip frame `first_frame` (T = 1 for masks made on one frame, T = the clip's length for a
    tracked clip)."""

    masks: torch.Tensor
    first_frame: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.masks, torch.Tensor) or self.masks.ndim != 4 or 0 in self.masks.shape:
            shape = list(self.masks.shape) if isinstance(self.masks, torch.Tensor) else type(self.masks).__name__
            raise ValueError(f"object masks must be [N,T,H,W] with N, T >= 1, got {shape}")
        if isinstance(self.first_frame, bool) or not isinstance(self.first_frame, int) or self.first_frame < 0:
            raise ValueError(f"first_frame must be an int >= 0, got {self.first_frame!r}")
        self.masks = self.masks.detach().to(device="cpu", dtype=torch.float32)

    @property
    def count(self) -> int:
        return self.masks.shape[0]

    @property
    def frames(self) -> range:
        """The clip frames these masks cover."""
        return range(self.first_frame, self.first_frame + self.masks.shape[1])

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.masks.shape[-2:])

    def at(self, frame: int) -> torch.Tensor:
        """Every object's mask on clip frame `frame`, `[N,H,W]`."""
        if frame not in self.frames:
            covered = f"frame {self.first_frame}" if len(self.frames) == 1 else \
                f"frames {self.frames.start}..{self.frames.stop - 1}"  # fmt: skip
            raise ValueError(f"the object masks cover {covered}, not frame {frame}")
        return self.masks[:, frame - self.first_frame]

    def union(self) -> torch.Tensor:
        """The union (pixel-wise max) of the objects, `[T,H,W]`."""
        return self.masks.amax(dim=0)

    def select(self, index: int) -> torch.Tensor:
        """Object `index`'s masks `[T,H,W]`."""
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < self.count:
            raise ValueError(f"object index {index!r} is out of range: there are {self.count} object(s) "
                             f"(0..{self.count - 1})")  # fmt: skip
        return self.masks[index]
