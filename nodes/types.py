"""Custom ComfyUI socket types of this pack."""

from __future__ import annotations

from comfy_api.latest import io

#: A loaded MatAnyone 2 network, as returned by MA2LoadModel (a `nodes.models.MattingModel`).
MA2Model = io.Custom("MA2_MODEL")

#: A matte evaluator (`evaluator(frames, alpha, seg) -> error [T,H,W]`), as returned by MA2LoadEvaluator.
MA2Evaluator = io.Custom("MA2_EVALUATOR")

#: Masks of several objects over a clip (a `matanyone2_core.segmentation.ObjectMasks`): seeds for matting
#: several people in one pass, or per-object segmentations and alphas.
MA2Objects = io.Custom("MA2_OBJECTS")

#: ComfyUI core's SAM 3 video-tracking output (a dict; see matanyone2_core.segmentation.sam3).
SAM3TrackData = io.Custom("SAM3_TRACK_DATA")

#: A loaded SAM 2 model, as returned by MA2LoadSAM2 (a `nodes.segmentation.Sam2Model`).
MA2Sam2 = io.Custom("MA2_SAM2")
