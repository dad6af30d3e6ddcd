"""Checkpoint reading and verification, multi-object reduction, and the atomic weights download."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from weights import random_state_dict

from matanyone2_core import CheckpointError, download_official_weights, load_matting_model
from matanyone2_core.checkpoint import check_tensor_values


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def test_pth_and_safetensors_load_the_same_weights(tmp_path, state_dict, model):
    save_file(state_dict, str(tmp_path / "w.safetensors"))
    other = load_matting_model(tmp_path / "w.safetensors")
    assert _same_weights(model, other)
    assert not model.training
    assert all(torch.equal(v, state_dict[k]) for k, v in model.state_dict().items())


def test_multi_object_checkpoint_is_reduced_like_the_official_loader(tmp_path, state_dict):
    multi = dict(state_dict)
    conv1 = state_dict["mask_encoder.conv1.weight"]
    multi["mask_encoder.conv1.weight"] = torch.cat([conv1, torch.ones(64, 1, 7, 7)], 1)
    compress = state_dict["pixel_fuser.sensory_compress.weight"]
    multi["pixel_fuser.sensory_compress.weight"] = torch.cat([compress, torch.ones(256, 1, 1, 1)], 1)
    torch.save(multi, tmp_path / "multi.pth")
    net = load_matting_model(tmp_path / "multi.pth")
    assert torch.equal(net.mask_encoder.conv1.weight, state_dict["mask_encoder.conv1.weight"])
    assert torch.equal(net.pixel_fuser.sensory_compress.weight, compress)


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda s: s.pop("mask_decoder.pred_mat.bias"), "1 missing key(s): mask_decoder.pred_mat.bias"),
        (lambda s: s.__setitem__("extra.weight", torch.zeros(1)), "1 unexpected key(s): extra.weight"),
        (
            lambda s: s.__setitem__("key_proj.d_proj.bias", torch.zeros(2)),
            "key_proj.d_proj.bias (2,) (expected (1,))",
        ),
    ],
)
def test_strict_loading_names_the_file_and_the_offending_keys(tmp_path, state_dict, edit, expected):
    broken = dict(state_dict)
    edit(broken)
    path = tmp_path / "broken.pth"
    torch.save(broken, path)
    with pytest.raises(CheckpointError) as err:
        load_matting_model(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_other_model_text_file_truncated_file_and_pickled_objects_are_refused(tmp_path, state_dict):
    other = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.bias": torch.zeros(10)}, other)
    with pytest.raises(CheckpointError, match="does not look like a MatAnyone"):
        load_matting_model(other)

    text = tmp_path / "notes.pth"
    text.write_text("not weights")
    with pytest.raises(CheckpointError, match="not a readable MatAnyone checkpoint"):
        load_matting_model(text)

    full = tmp_path / "full.pth"
    torch.save(state_dict, full)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=str(truncated)):
        load_matting_model(truncated)

    trunc_st = tmp_path / "truncated.safetensors"
    save_file(state_dict, str(tmp_path / "ok.safetensors"))
    trunc_st.write_bytes((tmp_path / "ok.safetensors").read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated"):
        load_matting_model(trunc_st)

    evil = tmp_path / "evil.pth"
    torch.save({"payload": Path("/")}, evil)  # an arbitrary pickled object, never unpickled
    with pytest.raises(CheckpointError, match=str(evil)):
        load_matting_model(evil)

    with pytest.raises(CheckpointError, match="no such weights file"):
        load_matting_model(tmp_path / "missing.pth")


class _Handler(http.server.BaseHTTPRequestHandler):
    payload = b""

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def weights_server():
    _Handler.payload = bytes(range(256)) * 4096 * 3  # 3 MiB
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/matanyone2.pth", _Handler.payload
    server.shutdown()


def test_download_is_atomic_checks_the_checksum_and_reports_progress(tmp_path, weights_server):
    url, payload = weights_server
    seen = []
    path = download_official_weights(
        tmp_path, url=url, sha256=hashlib.sha256(payload).hexdigest(), progress=lambda d, t: seen.append((d, t))
    )
    assert path == tmp_path / "matanyone2.pth" and path.read_bytes() == payload
    assert seen[-1] == (len(payload), len(payload)) and len(seen) >= 3
    assert [p.name for p in tmp_path.iterdir()] == ["matanyone2.pth"]

    other = tmp_path / "bad"
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        download_official_weights(other, url=url, sha256="0" * 64)
    assert list(other.iterdir()) == []  # nothing half-written


def test_download_offline_names_the_url_and_where_to_put_the_file(tmp_path):
    url = "http://127.0.0.1:9/matanyone2.pth"  # the discard port: nothing listens
    with pytest.raises(CheckpointError) as err:
        download_official_weights(tmp_path / "models", url=url, timeout=5)
    assert url in str(err.value) and str(tmp_path / "models" / "matanyone2.pth") in str(err.value)
    assert list((tmp_path / "models").iterdir()) == []


def test_precision_option_keeps_protected_parts_in_fp32(weights_path):
    half = load_matting_model(weights_path, dtype=torch.float16)
    assert half.pix_feat_proj.weight.dtype == torch.float16
    assert half.mask_decoder.pred_mat.weight.dtype == torch.float32
    assert half.object_summarizer.feature_pred[0].weight.dtype == torch.float32
    with pytest.raises(ValueError, match="dtype"):
        load_matting_model(weights_path, dtype=torch.int8)


def test_random_state_dict_is_deterministic():
    a, b = random_state_dict(3), random_state_dict(3)
    assert all(torch.equal(a[k], b[k]) for k in a)


def _set(key: str, make):
    def edit(state: dict[str, torch.Tensor]) -> None:
        state[key] = make(state[key])

    return edit


@pytest.mark.parametrize(
    "edits, expected",
    [
        (
            [_set("pix_feat_proj.weight", lambda t: t.index_fill(0, torch.tensor([3]), float("nan")))],
            "1 tensor(s) contain NaN or infinite values: pix_feat_proj.weight",
        ),
        (
            [
                _set("key_proj.d_proj.bias", lambda t: t + float("inf")),
                _set("mask_decoder.pred_mat.bias", lambda t: t - float("inf")),
            ],
            "2 tensor(s) contain NaN or infinite values: key_proj.d_proj.bias, mask_decoder.pred_mat.bias",
        ),
        (
            [_set("pix_feat_proj.weight", lambda t: (t * 100).to(torch.int32))],
            "1 tensor(s) of an unusable dtype: pix_feat_proj.weight (torch.int32, expected floating point)",
        ),
        (
            [_set("pix_feat_proj.bias", lambda t: t.to(torch.complex64))],
            "pix_feat_proj.bias (torch.complex64, expected floating point)",
        ),
        ([_set("pix_feat_proj.bias", lambda t: t > 0)], "pix_feat_proj.bias (torch.bool, expected floating point)"),
        (
            [_set("pixel_encoder.bn1.num_batches_tracked", lambda t: t.float())],
            "pixel_encoder.bn1.num_batches_tracked (torch.float32, expected torch.int64)",
        ),
    ],
)
def test_tensors_with_nan_or_a_wrong_dtype_are_refused_naming_the_keys(state_dict, model, edits, expected):
    broken = dict(state_dict)
    for edit in edits:
        edit(broken)
    with pytest.raises(CheckpointError) as err:
        check_tensor_values(broken, model.state_dict(), "some/file.pth")
    assert str(err.value).startswith("some/file.pth: ") and expected in str(err.value)


@pytest.mark.parametrize(
    "edit, expected",
    [
        (_set("pix_feat_proj.weight", lambda t: t * float("nan")), "contain NaN or infinite values: pix_feat_proj"),
        (_set("pix_feat_proj.weight", lambda t: t.to(torch.int32)), "unusable dtype: pix_feat_proj.weight"),
    ],
)
def test_load_matting_model_refuses_such_a_file(tmp_path, state_dict, edit, expected):
    broken = dict(state_dict)
    edit(broken)
    path = tmp_path / "broken.pth"
    torch.save(broken, path)
    with pytest.raises(CheckpointError) as err:
        load_matting_model(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_reduced_precision_storage_and_int64_buffers_still_load(tmp_path, state_dict):
    assert state_dict["pixel_encoder.bn1.num_batches_tracked"].dtype == torch.int64  # the official layout
    for dtype in (torch.float16, torch.bfloat16):
        stored = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state_dict.items()}
        save_file(stored, str(tmp_path / "w.safetensors"))
        net = load_matting_model(tmp_path / "w.safetensors")
        assert net.pix_feat_proj.weight.dtype == torch.float32
        assert torch.equal(net.pix_feat_proj.weight, stored["pix_feat_proj.weight"].float())
