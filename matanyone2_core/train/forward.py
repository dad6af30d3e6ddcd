"""The differentiable multi-frame forward that training optimises: the inference session's own steps, with grad.

`window_forward` drives a `MattingSession` object group step by step exactly as `MattingSession.step` does
(the first frame: its mask encoded as memory, then `warmup + 1` first-frame predictions; every later frame:
top-k memory read, uncertainty-guided fusion, object transformer, decoder, a memory frame every `mem_every`
frames, sensory updates), but outside `inference_mode` and without moving anything to the CPU, so that every
alpha stays differentiable in the network's parameters. Since the steps are the session's own code, what is
trained is what runs: with gradients off the alphas equal `matte_video`'s for the same frames and options.

Reference frames (MatAnyone 2's long-range references): distant frames of the same clip with their ground
truth, encoded as permanent memory (prepended, like inference keyframes) right after the first frame, so that
every later frame of the window reads them. They only add pixel memory and object summaries; the sensory
memory, the last mask and the memory schedule of the window are left as they were.
"""

from __future__ import annotations

import torch
from torch import nn

from ..engine.options import MattingOptions, check_options
from ..engine.preprocess import pad, prepare_mask, resize_bilinear, unpad
from ..engine.session import MattingSession, PreparedFrame
from ..engine.validate import check_kernels
from ..network.model import MatAnyone2Network


def set_training_mode(model: MatAnyone2Network) -> MatAnyone2Network:
    """`model.train()` with every BatchNorm kept in eval mode (frozen running statistics) and all parameters
    trainable.

    The network encodes one frame at a time, so batch statistics would come from a single image; frozen
    statistics also keep the trained network identical to the one inference runs (the usual practice for
    fine-tuning ResNet encoders with small batches). The BatchNorm affine parameters still train.
    """
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
    model.requires_grad_(True)
    return model


def _output(prob: torch.Tensor, frame: PreparedFrame) -> torch.Tensor:
    """Probabilities `[1,1,H',W']` -> alpha `[H,W]` at the caller's size, on the model's device (with grad)."""
    alpha = unpad(prob[:, 0], frame.padding)
    if frame.reduced is not None:
        alpha = resize_bilinear(alpha, frame.size)
    return alpha[0].float()


def memorize_references(session: MattingSession, images: torch.Tensor, alphas: torch.Tensor) -> None:
    """Encode reference frames `[R,H,W,3]` with their alphas `[R,H,W]` (0..1) as permanent memory of the
    session's (single) object group: pixel memory prepended to the permanent store, summaries added to the
    object memory. Needs a session whose first frame has been stepped (its sensory memory exists)."""
    group = session.groups[0]
    memory = group.memory
    if memory.sensory is None:
        raise RuntimeError("memorize_references: step the first frame before adding reference frames")
    for image, alpha in zip(images, alphas, strict=True):
        frame = session._frame(image)
        features = session.model.encode_image(frame.image)
        prob = alpha.to(session.device, torch.float32)[None]
        if frame.reduced is not None:
            prob = resize_bilinear(prob, frame.reduced)
        prob = pad(prob, frame.padding)[:, None]  # [1,1,H',W']
        value, _, summaries = session.model.encode_mask(features, memory.sensory, prob, deep_update=False)
        memory.add(features.key, features.shrinkage, features.selection, value, summaries, force_permanent=True)


def window_forward(
    model: MatAnyone2Network,
    frames: torch.Tensor,
    first_mask: torch.Tensor,
    options: MattingOptions | None = None,
    *,
    ref_images: torch.Tensor | None = None,
    ref_alphas: torch.Tensor | None = None,
) -> torch.Tensor:
    """Alphas `[T,H,W]` (float32, on the model's device, differentiable) of a window `frames` `[T,H,W,3]` in
    0..1 whose first frame has the mask `first_mask` `[H,W]` in 0..1 (8-bit quantised, dilated and eroded as
    `options` says, as at inference). `ref_images` `[R,H,W,3]` / `ref_alphas` `[R,H,W]` are optional
    reference frames (see the module docstring). Runs under the caller's grad mode and autocast.
    """
    options = check_options(options)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"frames must be [T,H,W,3] with T >= 1, got {list(frames.shape)}")
    size = (frames.shape[1], frames.shape[2])
    if tuple(first_mask.shape) != size:
        raise ValueError(f"first_mask must be [H,W] = {list(size)}, got {list(first_mask.shape)}")
    if (ref_images is None) != (ref_alphas is None):
        raise ValueError("ref_images and ref_alphas go together")
    check_kernels(options, size)
    session = MattingSession(model, options)
    group = session.groups[0]
    # The first frame, as MattingSession.step's first call runs it.
    current = session._frame(frames[0])
    anchor = prepare_mask(first_mask, options.erode, options.dilate).to(session.device)
    session._step(group, current, mask=session._prepare_masks([anchor], current))
    prob = session._step(group, current, first_frame_pred=True)
    for _ in range(options.warmup):
        prob = session._step(group, current, first_frame_pred=True)
    alphas = [_output(prob, current)]
    if ref_images is not None and ref_images.shape[0] > 0:
        memorize_references(session, ref_images, ref_alphas)
    for t in range(1, frames.shape[0]):
        current = session._frame(frames[t])
        alphas.append(_output(session._step(group, current), current))
    session.close()
    return torch.stack(alphas)
