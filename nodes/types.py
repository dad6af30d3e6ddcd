"""Custom ComfyUI socket types of this pack."""

from __future__ import annotations

from comfy_api.latest import io

#: A loaded MatAnyone 2 network, as returned by MA2LoadModel (a `nodes.models.MattingModel`).
MA2Model = io.Custom("MA2_MODEL")

#: A matte evaluator (`evaluator(frames, alpha, seg) -> error [T,H,W]`), as returned by MA2LoadEvaluator.
MA2Evaluator = io.Custom("MA2_EVALUATOR")
