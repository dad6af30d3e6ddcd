"""MA2LoadModel: pick (or download) MatAnyone 2 weights and hand them to ComfyUI's model management."""

from __future__ import annotations

import os

import comfy.utils
from comfy_api.latest import io

from . import models
from .schema import advanced, schema
from .types import MA2Model


class MA2LoadModel(io.ComfyNode):
    """Loader node; the network is cached across runs and offloaded by ComfyUI when memory is needed."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="MA2LoadModel",
            display_name="Load MatAnyone 2 Model",
            category="video/matting",
            description=(
                "Loads MatAnyone 2 weights from ComfyUI's models/matanyone folder (more folders "
                "via the extra_model_paths.yaml key 'matanyone'), or downloads the official matanyone2.pth "
                "there. The official weights are under the non-commercial NTU S-Lab License 1.0."
            ),
            search_aliases=["matanyone", "video matting model", "load matting model", "alpha matte model"],
            inputs=[
                io.Combo.Input(
                    "model_name",
                    options=models.weight_choices(),
                    default=models.OFFICIAL_WEIGHTS_FILENAME,
                    tooltip="Weights file in models/matanyone. matanyone2.pth (official) is "
                    "listed even when missing so that it can be downloaded.",
                ),
                io.Boolean.Input(
                    "download_if_missing",
                    default=False,
                    tooltip="Download the official matanyone2.pth into models/matanyone when it is missing "
                    "(checksum-verified; downloading accepts the NTU S-Lab License 1.0, non-commercial).",
                ),
                advanced(
                    io.Combo.Input,
                    "device",
                    options=models.DEVICES,
                    default="auto",
                    tooltip="auto: ComfyUI's compute device (GPU when there is one); cpu: always on the CPU.",
                ),
                advanced(
                    io.Combo.Input,
                    "precision",
                    options=list(models.PRECISIONS),
                    default="fp32",
                    tooltip="Weight and compute precision. fp32 gives the reference result; fp16/bf16 halve "
                    "memory and are faster on recent GPUs, with slightly different alphas (on a CPU use fp32 "
                    "or bf16: fp16 is very slow there).",
                ),
            ],
            outputs=[MA2Model.Output(display_name="model", tooltip="The loaded MatAnyone 2 network.")],
        )

    @classmethod
    def fingerprint_inputs(cls, model_name: str, **_: object) -> str:
        # Re-run the loader when the file on disk changes (or appears), not only when the widgets change.
        path = models.find_weights(model_name)
        if path is None:
            return f"{model_name}:missing"
        stat = os.stat(path)
        return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"

    @classmethod
    def execute(
        cls, model_name: str, download_if_missing: bool = False, device: str = "auto", precision: str = "fp32"
    ) -> io.NodeOutput:
        bar = comfy.utils.ProgressBar(1)

        def on_download(done: int, total: int | None) -> None:
            if total:
                bar.update_absolute(done, total)

        path = models.resolve_weights(model_name, download_if_missing, progress=on_download)
        return io.NodeOutput(models.load_model(path, precision=precision, device=device))
