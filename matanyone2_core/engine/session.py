"""A streaming matting session: one frame in, one alpha (or one alpha per object) out, for clips of any length.

The step semantics follow the official inference core: the first mask is encoded as permanent memory,
the first frame is predicted `warmup + 1` times (each prediction re-seeding the memory), then every
frame is predicted from the memory (top-k read, uncertainty-guided fusion with the previous frame's
mask value), with a memory frame every `mem_every` frames and the sensory memory updated every frame.

Several objects are matted in one pass, each exactly as its own single-object session would matte it:
objects run along the batch axis of the per-object network parts (mask encoder, sensory and object
memory, object transformer, decoder, uncertainty predictor), so no object sees another. Each frame is
encoded once (pixel encoder, key projection) for all objects. Objects whose memory schedule is identical
(the same keyframes so far) form a group with one memory bank, hence one top-k read per frame; a keyframe
for only some objects of a group splits it, each part keeping the history they shared.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..network.model import FrameFeatures, MatAnyone2Network
from .auto_size import resolve_internal_size
from .compiled import compiled_network
from .memory import MemoryBank
from .options import MattingOptions, check_options
from .preprocess import internal_size, pad, padding_for, prepare_mask, resize_bilinear, unpad
from .validate import (
    check_callable,
    check_frame,
    check_int,
    check_kernels,
    check_mask,
    check_model,
    check_object_masks,
)


@dataclass
class ObjectGroup:
    """Objects sharing one memory schedule: their memory bank and the state carried from step to step.

    `objects` are the session's object indices in the order of the batch axis of every per-object tensor.
    """

    objects: list[int]
    memory: MemoryBank
    curr_ti: int = -1
    last_mem_ti: int = 0
    last_mask: torch.Tensor | None = None  # [n,1,H',W'] at the padded internal size
    last_pix_feat: torch.Tensor | None = None  # [1,256,h,w], the previous step's frame
    last_mask_value: torch.Tensor | None = None  # [n,1,C,h,w]

    def select(self, positions: list[int]) -> ObjectGroup:
        """The group of the objects at `positions` (of the batch axis), with the same history."""

        def part(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[positions]

        return ObjectGroup(
            objects=[self.objects[p] for p in positions],
            memory=self.memory.select_objects(positions),
            curr_ti=self.curr_ti,
            last_mem_ti=self.last_mem_ti,
            last_mask=part(self.last_mask),
            last_pix_feat=self.last_pix_feat,
            last_mask_value=part(self.last_mask_value),
        )


@dataclass
class PreparedFrame:
    """One frame as the network sees it: resized, padded, and (after the first network step) encoded."""

    image: torch.Tensor  # [1,3,H',W'] padded
    size: tuple[int, int]  # the caller's (H, W)
    reduced: tuple[int, int] | None  # the internal (H, W) when max_internal_size applies
    padding: tuple[int, int, int, int]
    features: FrameFeatures | None = None


class MattingSession:
    """Holds all per-clip state on the model's device; `step` returns each alpha on the CPU.

    With `num_objects=None` (the default) the session mattes one object: `step(frame, mask [H,W])` returns
    `[H,W]`. With `num_objects=N` it mattes N objects at once: `step(frame, masks)` returns `[N,H,W]`, each
    object's alpha equal (up to float rounding) to its own single-object session given that object's masks.

    `close()` releases the state and ends the session: a later `step` raises ValueError (start a new
    session for another clip).
    """

    def __init__(
        self,
        model: MatAnyone2Network,
        options: MattingOptions | None = None,
        *,
        check_interrupt: Callable[[], None] | None = None,
        num_objects: int | None = None,
    ):
        """`check_interrupt` is called before every network step (warm-up steps included); it may raise."""
        self.model = check_model(model)
        self.options = check_options(options)
        check_callable(check_interrupt, name="check_interrupt")
        self.check_interrupt = check_interrupt
        self.multi_object = num_objects is not None
        self.num_objects = 1 if num_objects is None else check_int(num_objects, name="num_objects", low=1)
        self.device = model.device
        self.frame_size: tuple[int, int] | None = None
        self.internal_limit: int | None = None  # max_internal_size, resolved ("auto") on the first frame
        self.frames_done = 0
        self.closed = False
        self.net = compiled_network(self.model) if self.options.compile else self.model
        self._reset_state()

    def _reset_state(self) -> None:
        self.groups: list[ObjectGroup] = [ObjectGroup(list(range(self.num_objects)), MemoryBank(self.options))]

    # The single-group state under the names a single-object session has always had.
    def _only_group(self) -> ObjectGroup:
        if len(self.groups) != 1:
            raise RuntimeError(
                f"MattingSession holds {len(self.groups)} object groups (objects with different keyframes); "
                "read session.groups"
            )
        return self.groups[0]

    @property
    def memory(self) -> MemoryBank:
        return self._only_group().memory

    @property
    def curr_ti(self) -> int:
        return self._only_group().curr_ti

    @property
    def last_mem_ti(self) -> int:
        return self._only_group().last_mem_ti

    @property
    def last_mask(self) -> torch.Tensor | None:
        return self._only_group().last_mask

    @property
    def last_pix_feat(self) -> torch.Tensor | None:
        return self._only_group().last_pix_feat

    @property
    def last_mask_value(self) -> torch.Tensor | None:
        return self._only_group().last_mask_value

    def close(self) -> None:
        """Release every tensor the session holds and end it (device memory is freed once nothing else refers
        to it). Closing twice is fine; `step` after `close` raises ValueError."""
        self._reset_state()
        self.frame_size = None
        self.closed = True

    @torch.inference_mode()
    def prepare(self, frames: Sequence[torch.Tensor] | torch.Tensor) -> list[PreparedFrame]:
        """Check, resize, pad and encode several frames `[H,W,3]` in one batched pixel-encoder call (what the
        encoder computes does not depend on memory); pass the results to `step` in order. Same alphas as
        stepping the raw frames (up to the float rounding of a batched convolution); faster on a GPU."""
        if self.closed:
            raise ValueError("MattingSession is closed; start a new session for another clip")
        prepared = []
        for k, frame in enumerate(frames):
            frame = check_frame(frame, name=f"frame {self.frames_done + k}")
            size = (frame.shape[0], frame.shape[1])
            expected = self.frame_size or (prepared[0].size if prepared else size)
            if size != expected:
                raise ValueError(f"frame {self.frames_done + k}: frame size {size} differs from the clip's {expected}")
            prepared.append(self._frame(frame))
        if prepared:
            for item, features in zip(prepared, self.model.encode_images(torch.cat([p.image for p in prepared])),
                                      strict=True):  # fmt: skip
                item.features = features
        return prepared

    @torch.inference_mode()
    def step(self, frame: torch.Tensor | PreparedFrame, mask: Any = None) -> torch.Tensor:
        """Matte the next frame.

        frame: `[H,W,3]` float in [0,1] (values within `VALUE_TOLERANCE` outside are clamped).

        One object: mask `[H,W]` in [0,1], required on the first call (the anchor mask); on later calls an
        optional keyframe mask that is stored as permanent memory before the frame is predicted. Masks must
        not be empty (`mask_is_empty`). Returns the alpha `[H,W]`.

        N objects (`num_objects=N`): on the first call the anchor masks, a `[N,H,W]` tensor (or a list of
        N `[H,W]` masks), none empty. On later calls optional keyframe masks: a `[N,H,W]` tensor whose empty
        masks mean "no keyframe for that object", or a mapping {object index: `[H,W]` mask}. Returns `[N,H,W]`.

        Every mask is dilated and eroded as configured. Alphas are float32 on the CPU. Every input is checked
        before any state changes, so a refused call leaves the session as it was.
        """
        if self.closed:
            raise ValueError("MattingSession is closed; start a new session for another clip")
        first = self.frames_done == 0
        name = f"frame {self.frames_done}"
        if isinstance(frame, PreparedFrame):
            size = frame.size
        else:
            frame = check_frame(frame, name=name)
            size = (frame.shape[0], frame.shape[1])
        if self.frame_size is not None and size != self.frame_size:
            raise ValueError(f"{name}: frame size {size} differs from the clip's {self.frame_size}")
        if first and mask is None:
            what = "the anchor masks, one per object" if self.multi_object else "a mask (the anchor mask)"
            raise ValueError(f"MattingSession.step: the first frame needs {what}")
        if mask is None:
            masks: dict[int, torch.Tensor] = {}
        elif self.multi_object:
            masks = check_object_masks(
                mask,
                size,
                count=self.num_objects,
                name="masks" if first else f"keyframe masks at {name}",
                require_all=first,
            )
        else:
            masks = {0: check_mask(mask, size, name="mask" if first else f"keyframe mask at {name}")}
        if first:
            check_kernels(self.options, size)

        self.frame_size = size
        prepared = {
            i: prepare_mask(m, self.options.erode, self.options.dilate).to(self.device) for i, m in masks.items()
        }
        if prepared and not first:
            self._split_groups(set(prepared))
        current = frame if isinstance(frame, PreparedFrame) else self._frame(frame)
        alphas = []
        for group in self.groups:
            keyed = [prepared[i] for i in group.objects if i in prepared]
            if keyed:  # the whole group: groups were just split along the keyed objects
                self._step(group, current, mask=self._prepare_masks(keyed, current), force_permanent=not first)
            alpha = self._step(group, current, first_frame_pred=first)
            for _ in range(self.options.warmup if first else 0):
                alpha = self._step(group, current, first_frame_pred=True)
            alphas.append(self._output(alpha, current))
        self.frames_done += 1
        if not self.multi_object:
            return alphas[0][0]
        if len(self.groups) == 1 and self.groups[0].objects == list(range(self.num_objects)):
            return alphas[0]
        out = torch.empty(self.num_objects, *size, dtype=torch.float32)
        for group, alpha in zip(self.groups, alphas, strict=True):
            out[group.objects] = alpha
        return out

    def _split_groups(self, keyed: set[int]) -> None:
        """Split every group that has keyframes for some of its objects only: from here on, the keyed objects
        and the others follow different memory schedules."""
        groups = []
        for group in self.groups:
            inside = [p for p, i in enumerate(group.objects) if i in keyed]
            if 0 < len(inside) < len(group.objects):
                outside = [p for p, i in enumerate(group.objects) if i not in keyed]
                groups += [group.select(inside), group.select(outside)]
            else:
                groups.append(group)
        self.groups = groups

    def _frame(self, frame: torch.Tensor) -> PreparedFrame:
        """The frame resized to the internal size and padded; encoded later, by the first network step."""
        if self.device.type == "cuda" and frame.device.type == "cpu":
            frame = frame.pin_memory()  # page-locked: the copy below runs asynchronously, overlapping the GPU
        image = frame.to(self.device, torch.float32, non_blocking=True).permute(2, 0, 1)
        height, width = image.shape[-2:]
        if self.internal_limit is None:
            self.internal_limit = resolve_internal_size(self.options.max_internal_size, height, width, self.device,
                                                        self.model.compute_dtype)  # fmt: skip
        reduced = internal_size(height, width, self.internal_limit)
        if reduced is not None:
            image = resize_bilinear(image, reduced)
        padding = padding_for(*image.shape[-2:])
        return PreparedFrame(pad(image, padding)[None], (height, width), reduced, padding)

    def _prepare_masks(self, masks: list[torch.Tensor], frame: PreparedFrame) -> torch.Tensor:
        """0..255 masks `[H,W]` -> probabilities `[n,1,H',W']` at the padded internal size."""
        stacked = torch.stack(masks)
        if frame.reduced is not None:
            stacked = resize_bilinear(stacked, frame.reduced)
        return (pad(stacked, frame.padding) / 255.0)[:, None]

    def _output(self, prob: torch.Tensor, frame: PreparedFrame) -> torch.Tensor:
        """Probabilities `[n,1,H',W']` -> alphas `[n,H,W]` float32 on the CPU at the caller's size."""
        alpha = unpad(prob[:, 0], frame.padding)
        if frame.reduced is not None:
            alpha = resize_bilinear(alpha, frame.size)
        return alpha.float().cpu()

    def _step(
        self,
        group: ObjectGroup,
        frame: PreparedFrame,
        *,
        mask: torch.Tensor | None = None,
        first_frame_pred: bool = False,
        force_permanent: bool = False,
    ) -> torch.Tensor:
        """One official inference step of `group` on `frame`; `mask` `[n,1,H',W']` in [0,1]. Returns the
        probabilities `[n,1,H',W']`."""
        if self.check_interrupt is not None:
            self.check_interrupt()
        if frame.features is None:  # once per frame, whatever the number of steps and groups
            frame.features = self.net.encode_image(frame.image)
        features = frame.features

        group.curr_ti += 1
        since_memory = group.curr_ti - group.last_mem_ti
        is_memory_frame = since_memory >= self.options.mem_every or mask is not None
        update_sensory = 1 <= since_memory <= self.options.mem_every
        if first_frame_pred:
            group.curr_ti = group.last_mem_ti = 0
            is_memory_frame = update_sensory = True

        prob = mask if mask is not None else self._segment(group, features, update_sensory=update_sensory)
        group.last_mask = prob
        if is_memory_frame or force_permanent:
            if first_frame_pred:
                group.memory.clear_working()
            self._memorize(group, features, prob, force_permanent=force_permanent)
        else:
            value, _, _ = self.net.encode_mask(features, group.memory.sensory, prob, deep_update=False)
            group.last_mask_value = value
        group.last_pix_feat = features.pix_feat
        return prob

    def _memorize(self, group: ObjectGroup, frame: FrameFeatures, prob: torch.Tensor, *, force_permanent: bool) -> None:
        memory = group.memory
        memory.init_sensory(frame.key, prob.shape[0])
        value, sensory, summaries = self.net.encode_mask(frame, memory.sensory, prob, deep_update=True)
        memory.add(frame.key, frame.shrinkage, frame.selection, value, summaries, force_permanent=force_permanent)
        group.last_mem_ti = group.curr_ti
        memory.sensory = sensory
        group.last_mask_value = value

    def _segment(self, group: ObjectGroup, frame: FrameFeatures, *, update_sensory: bool) -> torch.Tensor:
        memory = group.memory
        if not memory.engaged:
            raise RuntimeError("MattingSession: no memory to read from (the first step needs a mask)")
        if group.curr_ti == 0:
            pixel_memory = group.last_mask_value
        else:
            readout = memory.read(frame.key, frame.selection)  # [n,1,C,h,w]: one top-k for the group
            # The fusion weight is per object (objects along the batch axis), as each object's own run has it.
            confidence = self.net.confidence(
                group.last_pix_feat, frame, group.last_mask, readout[:, 0] - group.last_mask_value[:, 0]
            ).unsqueeze(1)
            pixel_memory = readout * confidence + group.last_mask_value * (1 - confidence)
        sensory, alpha = self.net.predict(
            frame, pixel_memory, memory.sensory, group.last_mask, memory.summaries, update_sensory=update_sensory
        )
        if update_sensory:
            memory.sensory = sensory
        return alpha
