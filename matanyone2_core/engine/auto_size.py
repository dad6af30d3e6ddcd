"""The memory-aware internal size (`max_internal_size=0`, "auto"): the largest short side whose matting fits
the memory free on the device, chosen once per clip from the frame size and logged.

The estimate is linear in the internal pixel count: `BYTES_PER_PIXEL` device bytes per internal pixel for one
step with a full working memory (features of the frame, the memory bank's keys and values, the decoder's
activations, the attention of one query chunk), measured as the growth of peak host memory between 240x426
and 480x864 on the CPU (fp32: about 2.1 KiB per pixel; bf16/fp16 about 60 % of that), times `SAFETY` for the
allocator's fragmentation and the convolution workspaces a GPU adds. The model's own weights are already on
the device when the free memory is read. Full resolution is kept whenever it fits (then the result is the
exact one); otherwise the short side is the largest multiple of 16 that fits, never below `MIN_SIDE`.
"""

from __future__ import annotations

import logging
import math

import torch

log = logging.getLogger("matanyone2")

BYTES_PER_PIXEL = {torch.float32: 2200.0, torch.bfloat16: 1320.0, torch.float16: 1320.0}
SAFETY = 1.5
MIN_SIDE = 240
AUTO = 0  # the max_internal_size value that asks for this


def free_memory(device: torch.device) -> int | None:
    """Bytes free for tensors on `device` (CUDA: the driver's free memory plus what PyTorch has cached but
    not in use; CPU: MemAvailable from /proc/meminfo), or None when unknown."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def fit_internal_size(height: int, width: int, free_bytes: int | None, dtype: torch.dtype = torch.float32) -> int:
    """`max_internal_size` for a `height x width` clip given `free_bytes`: -1 (full resolution) when it fits or
    the free memory is unknown, else the largest short side (multiple of 16, at least `MIN_SIDE`) that fits."""
    if free_bytes is None:
        return -1
    per_pixel = BYTES_PER_PIXEL.get(dtype, BYTES_PER_PIXEL[torch.float32]) * SAFETY
    budget_pixels = free_bytes / per_pixel
    if height * width <= budget_pixels:
        return -1
    short = min(height, width)
    side = short * math.sqrt(budget_pixels / (height * width))
    return max(MIN_SIDE, int(side // 16) * 16)


def resolve_internal_size(max_internal_size: int, height: int, width: int, device: torch.device,
                          dtype: torch.dtype) -> int:  # fmt: skip
    """`max_internal_size` as given, or for AUTO the fitted size (logged once)."""
    if max_internal_size != AUTO:
        return max_internal_size
    free = free_memory(device)
    chosen = fit_internal_size(height, width, free, dtype)
    free_text = "unknown" if free is None else f"{free / 2**30:.1f} GiB"
    if chosen == -1:
        log.info("MatAnyone 2: %dx%d fits in the free memory on %s (%s): full resolution", width, height, device,
                 free_text)  # fmt: skip
    else:
        log.info("MatAnyone 2: %dx%d does not fit in the free memory on %s (%s): matting at short side %d",
                 width, height, device, free_text, chosen)  # fmt: skip
    return chosen
