"""A checkpoint written by `train-matting` is a MatAnyone 2 model for ComfyUI: dropped into models/matanyone, the
real server lists it, MA2LoadModel loads it and the first example workflow mattes with it what the core gives."""

from __future__ import annotations

import shutil

import torch
from comfy_workflows import MATTE_FIRST_FRAME
from ma2_host import Host
from test_comfy_workflows import _reference, _saved_alpha, _with_alpha_probe

TRAINED_NAME = "ma2_finetuned.pth"


def test_a_trained_checkpoint_loads_and_mattes_in_comfyui(host: Host, reference_model, tmp_path) -> None:
    from matanyone2_core import load_matting_model, synthetic
    from matanyone2_core.train import TrainMattingConfig, train_matting

    data = synthetic.write_dataset(tmp_path / "data", clips=1, height=40, width=56, frames=5)[0].parent
    # Two steps from the host's checkpoint, at a learning rate high enough for the weights to change visibly.
    cfg = TrainMattingConfig(init=str(host.checkpoint), out=str(tmp_path / "run"), data=str(data), steps=2,
                             lr=1e-3, lr_warmup=1, batch=1, accum=1, window=3, refs=1, size=(32, 48),
                             dropout_patch=8, warmup=1, erode=2, dilate=2, val_every=0, save_every=0,
                             progress=False)  # fmt: skip
    trained = train_matting(cfg).model_path
    target = host.checkpoint.parent / TRAINED_NAME
    shutil.copyfile(trained, target)
    try:
        assert TRAINED_NAME in host.server.get_json("/models/matanyone")
        options = host.server.object_info()["MA2LoadModel"]["input"]["required"]["model_name"][1]["options"]
        assert TRAINED_NAME in options

        graph = _with_alpha_probe(host.example_graph(MATTE_FIRST_FRAME))
        loader = next(n for n in graph.values() if n["class_type"] == "MA2LoadModel")
        loader["inputs"]["model_name"] = TRAINED_NAME
        result = host.server.run(graph, timeout=240)
        assert result.status == "success", result.error or host.server.log_tail()

        expected = _reference(host, load_matting_model(target), graph)
        alpha = _saved_alpha(host, result)
        assert float((alpha - expected).abs().max()) <= 1 / 255 + 1e-6
        # ...and the server really used the fine-tuned weights, not the checkpoint training started from.
        original = _reference(host, reference_model, graph)
        assert float((expected - original).abs().max()) > 4 / 255
        assert float((alpha - original).abs().max()) > 2 / 255
    finally:
        target.unlink(missing_ok=True)
    assert torch.load(trained, weights_only=True).keys() == reference_model.state_dict().keys()
