"""A streaming matting session: one frame in, one alpha out, for clips of any length.

The step semantics follow the official inference core: the first mask is encoded as permanent memory,
the first frame is predicted `warmup + 1` times (each prediction re-seeding the memory), then every
frame is predicted from the memory (top-k read, uncertainty-guided fusion with the previous frame's
mask value), with a memory frame every `mem_every` frames and the sensory memory updated every frame.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..network.model import FrameFeatures, MatAnyone2Network
from .memory import MemoryBank
from .options import MattingOptions, check_options
from .preprocess import internal_size, pad, padding_for, prepare_mask, resize_bilinear, unpad
from .validate import check_callable, check_frame, check_kernels, check_mask, check_model


class MattingSession:
    """Holds all per-clip state on the model's device; `step` returns each alpha on the CPU.

    `close()` releases the state and ends the session: a later `step` raises ValueError (start a new
    session for another clip).
    """

    def __init__(
        self,
        model: MatAnyone2Network,
        options: MattingOptions | None = None,
        *,
        check_interrupt: Callable[[], None] | None = None,
    ):
        """`check_interrupt` is called before every network step (warm-up steps included); it may raise."""
        self.model = check_model(model)
        self.options = check_options(options)
        check_callable(check_interrupt, name="check_interrupt")
        self.check_interrupt = check_interrupt
        self.device = model.device
        self.frame_size: tuple[int, int] | None = None
        self.frames_done = 0
        self.closed = False
        self._reset_state()

    def _reset_state(self) -> None:
        self.memory = MemoryBank(self.options)
        self.curr_ti = -1
        self.last_mem_ti = 0
        self.last_mask: torch.Tensor | None = None  # [1,N,H',W'] at the padded internal size
        self.last_pix_feat: torch.Tensor | None = None
        self.last_mask_value: torch.Tensor | None = None

    def close(self) -> None:
        """Release every tensor the session holds and end it (device memory is freed once nothing else refers
        to it). Closing twice is fine; `step` after `close` raises ValueError."""
        self._reset_state()
        self.frame_size = None
        self.closed = True

    @torch.inference_mode()
    def step(self, frame: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Matte the next frame.

        frame: `[H,W,3]` float in [0,1] (values within `VALUE_TOLERANCE` outside are clamped). mask: `[H,W]`
        in [0,1], required on the first call (the anchor mask); on later calls an optional keyframe mask
        that is stored as permanent memory before the frame is predicted. Masks must not be empty
        (`mask_is_empty`). Every mask is dilated and eroded as configured. Returns the alpha `[H,W]`
        float32 on the CPU. Every input is checked before any state changes, so a refused call leaves the
        session as it was.
        """
        if self.closed:
            raise ValueError("MattingSession is closed; start a new session for another clip")
        first = self.frames_done == 0
        name = f"frame {self.frames_done}"
        frame = check_frame(frame, name=name)
        size = (frame.shape[0], frame.shape[1])
        if self.frame_size is not None and size != self.frame_size:
            raise ValueError(f"{name}: frame size {size} differs from the clip's {self.frame_size}")
        if first and mask is None:
            raise ValueError("MattingSession.step: the first frame needs a mask (the anchor mask)")
        if mask is not None:
            mask = check_mask(mask, size, name="mask" if first else f"keyframe mask at {name}")
        if first:
            check_kernels(self.options, size)

        self.frame_size = size
        image = frame.to(self.device, torch.float32).permute(2, 0, 1)
        if mask is not None:
            mask255 = prepare_mask(mask, self.options.erode, self.options.dilate).to(self.device)
            self._step(image, mask=mask255, force_permanent=not first)
        if first:
            alpha = self._step(image, first_frame_pred=True)
            for _ in range(self.options.warmup):
                alpha = self._step(image, first_frame_pred=True)
        else:
            alpha = self._step(image)
        self.frames_done += 1
        return alpha.float().cpu()

    def _step(
        self,
        image: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        first_frame_pred: bool = False,
        force_permanent: bool = False,
    ) -> torch.Tensor:
        """One official inference step on a `[3,H,W]` image; `mask` is on the 0..255 scale."""
        if self.check_interrupt is not None:
            self.check_interrupt()
        height, width = image.shape[-2:]
        reduced = internal_size(height, width, self.options.max_internal_size)
        if reduced is not None:
            image = resize_bilinear(image, reduced)
            if mask is not None:
                mask = resize_bilinear(mask[None], reduced)[0]

        self.curr_ti += 1
        padding = padding_for(*image.shape[-2:])
        image = pad(image, padding)[None]
        since_memory = self.curr_ti - self.last_mem_ti
        is_memory_frame = since_memory >= self.options.mem_every or mask is not None
        update_sensory = 1 <= since_memory <= self.options.mem_every
        if first_frame_pred:
            self.curr_ti = self.last_mem_ti = 0
            is_memory_frame = update_sensory = True

        frame = self.model.encode_image(image)
        if mask is not None:
            prob = (pad(mask, padding) / 255.0)[None, None]
        else:
            prob = self._segment(frame, update_sensory=update_sensory)

        self.last_mask = prob
        last_pix_feat = frame.pix_feat
        if is_memory_frame or force_permanent:
            if first_frame_pred:
                self.memory.clear_working()
            self._memorize(frame, prob, force_permanent=force_permanent)
        else:
            value, _, _ = self.model.encode_mask(frame, self.memory.sensory, prob, deep_update=False)
            self.last_mask_value = value
        self.last_pix_feat = last_pix_feat

        alpha = unpad(prob[0, 0], padding)
        if reduced is not None:
            alpha = resize_bilinear(alpha[None], (height, width))[0]
        return alpha

    def _memorize(self, frame: FrameFeatures, prob: torch.Tensor, *, force_permanent: bool) -> None:
        self.memory.init_sensory(frame.key, prob.shape[1])
        value, sensory, summaries = self.model.encode_mask(frame, self.memory.sensory, prob, deep_update=True)
        self.memory.add(frame.key, frame.shrinkage, frame.selection, value, summaries, force_permanent=force_permanent)
        self.last_mem_ti = self.curr_ti
        self.memory.sensory = sensory
        self.last_mask_value = value

    def _segment(self, frame: FrameFeatures, *, update_sensory: bool) -> torch.Tensor:
        if not self.memory.engaged:
            raise RuntimeError("MattingSession: no memory to read from (the first step needs a mask)")
        if self.curr_ti == 0:
            pixel_memory = self.last_mask_value
        else:
            readout = self.memory.read(frame.key, frame.selection)
            confidence = self.model.confidence(
                self.last_pix_feat, frame, self.last_mask, readout[:, 0] - self.last_mask_value[:, 0]
            ).unsqueeze(1)
            pixel_memory = readout * confidence + self.last_mask_value * (1 - confidence)
        sensory, alpha = self.model.predict(
            frame, pixel_memory, self.memory.sensory, self.last_mask, self.memory.summaries,
            update_sensory=update_sensory,
        )
        if update_sensory:
            self.memory.sensory = sensory
        return alpha
