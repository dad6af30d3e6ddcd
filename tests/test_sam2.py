"""SAM 2 / 2.1 through the optional `sam2` package: optional import, variants, strict loading, hydra-free build,
image and video segmentation from prompts or seed masks, bounded video state, and the atomic download.

Random SAM 2.1 tiny weights (tests/sam2_weights.py) at image_size 256 keep this file fast on two cores; random
weights give arbitrary masks, so the tests check shapes, determinism and plumbing, not mask quality.
"""

from __future__ import annotations

import hashlib
import http.server
import importlib.util
import inspect
import logging
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from matanyone2_core import CheckpointError
from matanyone2_core.segmentation import sam2_backend as B
from matanyone2_core.segmentation.prompts import ObjectPrompt

if not B.sam2_available():
    pytest.skip(f"the optional sam2 package is not installed ({B.SAM2_INSTALL_COMMAND})", allow_module_level=True)

from conftest import random_frames  # noqa: E402
from sam2_weights import random_sam2_state_dict, sam2_2_0_state_dict, write_sam2_checkpoint  # noqa: E402

# The package's own warnings: no CUDA extension (hole filling skipped on the CPU), torch.jit.script deprecated.
pytestmark = pytest.mark.filterwarnings("ignore:cannot import name '_C':UserWarning", "ignore::FutureWarning")

ROOT = Path(__file__).resolve().parent.parent
SIZE = 256  # reduced model input size: same weights, ~20x faster than 1024 on the CPU


@pytest.fixture(scope="session")
def sam2_state() -> dict[str, torch.Tensor]:
    return random_sam2_state_dict("tiny", seed=0)


@pytest.fixture(scope="session")
def sam2_path(tmp_path_factory, sam2_state) -> Path:
    return write_sam2_checkpoint(tmp_path_factory.mktemp("sam2") / "sam2.1_hiera_tiny.pt", sam2_state)


@pytest.fixture(scope="session")
def segmenter(sam2_path) -> B.Sam2Segmenter:
    return B.load_sam2(sam2_path, image_size=SIZE)


def point(x: float, y: float, *more: tuple[float, float, int]) -> ObjectPrompt:
    coords = [[x, y]] + [[mx, my] for mx, my, _ in more]
    labels = [1] + [lab for _, _, lab in more]
    return ObjectPrompt(torch.tensor(coords, dtype=torch.float32), torch.tensor(labels, dtype=torch.int64))


def box(x0: float, y0: float, x1: float, y1: float, *points: tuple[float, float, int]) -> ObjectPrompt:
    coords = torch.tensor([[x, y] for x, y, _ in points], dtype=torch.float32).reshape(-1, 2)
    labels = torch.tensor([lab for _, _, lab in points], dtype=torch.int64)
    return ObjectPrompt(coords, labels, torch.tensor([x0, y0, x1, y1]))


def rect_masks(height: int, width: int, *rects: tuple[int, int, int, int]) -> torch.Tensor:
    masks = torch.zeros(len(rects), height, width)
    for i, (y0, y1, x0, x1) in enumerate(rects):
        masks[i, y0:y1, x0:x1] = 1
    return masks


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a > 0.5, b > 0.5
    return float((a & b).sum() / (a | b).sum())


# ------------------------------------------------------------------------------------------ optional import


def test_importing_our_module_imports_no_sam2_and_importing_sam2_leaves_hydra_as_it_was():
    code = (
        "import sys\n"
        "import matanyone2_core.segmentation.sam2_backend as b\n"
        "assert 'sam2' not in sys.modules and 'training' not in sys.modules, 'imported eagerly'\n"
        "assert b.sam2_available()\n"
        "from hydra.core.global_hydra import GlobalHydra\n"
        "b._import_sam2()\n"
        "assert 'sam2.sam2_video_predictor' in sys.modules\n"
        "assert not GlobalHydra.instance().is_initialized(), 'import sam2 left hydra initialised'\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_without_sam2_a_clear_import_error_gives_the_install_command(monkeypatch, sam2_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sam2" else real(name, *a))
    assert not B.sam2_available()
    for call in (B.require_sam2, lambda: B.load_sam2(sam2_path)):
        with pytest.raises(ImportError) as err:
            call()
        assert "SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2==1.1.0" in str(err.value)
        assert "missing here: sam2" in str(err.value)


def test_no_name_of_ours_shadows_the_packages_sam2_installs():
    for folder in (ROOT, ROOT / "tests", ROOT / "benchmarks", ROOT / "matanyone2_core"):
        for name in ("sam2", "sam2.py", "training", "training.py"):
            assert not (folder / name).exists(), folder / name
    for package in ("sam2", "training"):  # sam2 ships a top-level `training` package too
        spec = importlib.util.find_spec(package)
        assert spec is not None and ROOT not in Path(spec.origin).resolve().parents


# ------------------------------------------------------------------------------------------ variants and loading


def test_variant_table_matches_the_installed_package_configs(sam2_state):
    from omegaconf import OmegaConf
    from sam2.modeling.backbones.hieradet import Hiera

    package = Path(B._import_sam2().__file__).parent
    assert [v for v in B.SAM2_VARIANTS if B.SAM2_VARIANTS[v].version == "2.1"] == [
        "tiny",
        "small",
        "base_plus",
        "large",
    ]
    default_stages = inspect.signature(Hiera.__init__).parameters["stages"].default
    for variant in B.SAM2_VARIANTS.values():
        base = "092824" if variant.version == "2.1" else "072824"
        assert variant.url == f"https://dl.fbaipublicfiles.com/segment_anything_2/{base}/{variant.filename}"
        trunk = OmegaConf.load(package / variant.config).model.image_encoder.trunk
        assert trunk.embed_dim == variant.trunk_width
        assert sum(trunk.get("stages", default_stages)) == variant.trunk_blocks
    assert B.SAM2_VARIANTS["tiny"].filename == "sam2.1_hiera_tiny.pt" and len(sam2_state) == 471
    assert B.get_sam2_variant("sam2.1_hiera_large.pt") is B.SAM2_VARIANTS["large"]
    assert B.get_sam2_variant("sam2_hiera_small") is B.SAM2_VARIANTS["sam2.0_small"]
    with pytest.raises(ValueError, match="variant must be one of tiny, small"):
        B.get_sam2_variant("huge")


def test_load_detects_the_variant_and_loads_every_tensor(segmenter, sam2_state, sam2_path):
    assert segmenter.variant is B.SAM2_VARIANTS["tiny"] and segmenter.image_size == SIZE
    assert segmenter.path == sam2_path and segmenter.compute_dtype == torch.float32
    assert not segmenter.model.training
    loaded = segmenter.model.state_dict()
    assert loaded.keys() == sam2_state.keys() and all(torch.equal(loaded[k], sam2_state[k]) for k in sam2_state)
    assert type(segmenter.model).__name__ == "SAM2VideoPredictor" and segmenter.model.fill_hole_area == 8


def test_sam2_0_files_load_as_sam2_0_and_are_refused_for_a_2_1_variant(tmp_path, segmenter, sam2_state):
    old = write_sam2_checkpoint(tmp_path / "sam2_hiera_tiny.pt", sam2_2_0_state_dict(sam2_state))
    with pytest.raises(CheckpointError) as err:
        B.load_sam2(old, variant="tiny")
    message = str(err.value)
    assert message.startswith(f"{old}: a SAM 2.0 tiny checkpoint, but variant 'tiny' is SAM 2.1 tiny")
    assert "obj_ptr_tpos_proj.weight" in message and "variant='sam2.0_tiny'" in message
    loaded = B.load_sam2(old, image_size=SIZE)
    assert loaded.variant.name == "sam2.0_tiny" and len(loaded.model.state_dict()) == 468
    with pytest.raises(CheckpointError, match="a SAM 2.1 tiny checkpoint, but variant 'sam2.0_tiny' is SAM 2.0"):
        B.load_sam2(segmenter.path, variant="sam2.0_tiny")


def _edited(state: dict[str, torch.Tensor], edit) -> dict[str, torch.Tensor]:
    state = dict(state)
    edit(state)
    return state


REFUSALS = [
    ("bare", lambda s: s, "a bare SAM 2 state dict, not a SAM 2 checkpoint"),
    ("matanyone", lambda s: {"pix_feat_proj.weight": torch.zeros(2, 2)}, "a bare state dict of another model"),
    ("sam1", lambda s: {"image_encoder.patch_embed.proj.weight": torch.zeros(2)}, "a SAM 1 (segment-anything)"),
    ("foreign", lambda s: {"model": {"conv1.weight": torch.zeros(1)}}, "not a SAM 2 checkpoint: no SAM 2 image"),
    ("no_model", lambda s: {"state_dict": {}, "epoch": 3}, "no 'model' entry (its keys: state_dict, epoch)"),
    ("missing", lambda s: {"model": _edited(s, lambda d: d.pop("mask_downsample.bias"))}, "1 missing key(s): mask_"),
    ("extra", lambda s: {"model": {**s, "head.weight": torch.zeros(1)}}, "1 unexpected key(s): head.weight"),
    (
        "shape",
        lambda s: {"model": {**s, "no_mem_embed": torch.zeros(1, 1, 8)}},
        "no_mem_embed (1, 1, 8) (expected (1, 1, 256))",
    ),
    (
        "nan",
        lambda s: {"model": {**s, "no_mem_embed": torch.full((1, 1, 256), float("nan"))}},
        "1 tensor(s) contain NaN or infinite values: no_mem_embed",
    ),
    (
        "unknown_size",
        lambda s: {"model": {**s, B._PATCH_EMBED_KEY: torch.zeros(128, 3, 7, 7)}},
        "unknown size (image encoder width 128, 12 blocks)",
    ),
]


@pytest.mark.parametrize("name, make, expected", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_unusable_files_are_refused_naming_the_file_and_the_problem(
    tmp_path, segmenter, sam2_state, name, make, expected
):
    path = tmp_path / f"{name}.pt"
    torch.save(make(sam2_state), path)
    with pytest.raises(CheckpointError) as err:
        B.load_sam2(path, image_size=SIZE)
    assert str(err.value).startswith(f"{path}: ") and expected in str(err.value), str(err.value)


def test_truncated_text_missing_and_wrong_variant_files_are_refused(tmp_path, segmenter):
    truncated = tmp_path / "truncated.pt"
    data = segmenter.path.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    del data
    text = tmp_path / "notes.pt"
    text.write_text("not weights")
    for path in (truncated, text):
        with pytest.raises(CheckpointError, match="not a readable SAM 2 checkpoint") as err:
            B.load_sam2(path)
        assert str(err.value).startswith(f"{path}: ")
    with pytest.raises(CheckpointError, match="no such SAM 2 weights file"):
        B.load_sam2(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"a SAM 2.1 tiny checkpoint .* not SAM 2.1 small; pass variant='tiny'"):
        B.load_sam2(segmenter.path, variant="small")


def test_bad_load_options_fail_before_reading(tmp_path):
    missing = tmp_path / "never-read.pt"
    with pytest.raises(ValueError, match="dtype must be one of"):
        B.load_sam2(missing, dtype=torch.int8)
    with pytest.raises(ValueError, match="image_size must be a multiple of 32"):
        B.load_sam2(missing, image_size=300)
    with pytest.raises(ValueError, match="image_size must be None or an int"):
        B.load_sam2(missing, image_size=64)
    with pytest.raises(ValueError, match="variant must be one of"):
        B.load_sam2(missing, variant="giant")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            B.load_sam2(missing, device="cuda")


def test_building_leaves_hydra_global_state_and_the_rng_as_they_were(sam2_path):
    from hydra import initialize
    from hydra.core.global_hydra import GlobalHydra
    from sam2.build_sam import build_sam2

    hydra_state = GlobalHydra.instance()
    hydra_state.clear()  # as another node does after its own load (CineStyle's MatAnyone 2 node)
    with pytest.raises(AssertionError, match="GlobalHydra is not initialized"):
        build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", device="cpu")  # the official builder needs it
    rng = torch.random.get_rng_state()
    assert B.load_sam2(sam2_path, image_size=SIZE).variant.name == "tiny"
    assert not hydra_state.is_initialized()
    assert torch.equal(torch.random.get_rng_state(), rng)  # the random init ran on a forked generator

    try:
        initialize(version_base=None).__enter__()  # hydra taken by another node, with a config path of its own
        owner = hydra_state.hydra
        B.load_sam2(sam2_path, image_size=SIZE)
        assert hydra_state.is_initialized() and hydra_state.hydra is owner
    finally:
        hydra_state.clear()


def test_the_hydra_free_build_is_the_official_builders_model(segmenter, sam2_path):
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from sam2.build_sam import build_sam2_video_predictor

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module("sam2", version_base="1.2"):  # what `import sam2` would have set up
            official = build_sam2_video_predictor(
                "configs/sam2.1/sam2.1_hiera_t.yaml", str(sam2_path), device="cpu",
                hydra_overrides_extra=[f"++model.image_size={SIZE}"],
            )  # fmt: skip
    finally:
        GlobalHydra.instance().clear()

    def settings(module: torch.nn.Module) -> dict:
        return {k: v for k, v in vars(module).items() if isinstance(v, (bool, int, float, str))}

    ours = segmenter.model
    assert type(official) is type(ours) and settings(official) == settings(ours)
    assert settings(official.sam_mask_decoder) == settings(ours.sam_mask_decoder)
    theirs = B.Sam2Segmenter(official, segmenter.variant, device=torch.device("cpu"), dtype=torch.float32)
    frames, prompts = random_frames(3, 24, 40, seed=9), [point(10, 10)]
    expected = theirs.segment_video(frames, prompts, frame_index=1)
    assert torch.equal(segmenter.segment_video(frames, prompts, frame_index=1), expected)


# ------------------------------------------------------------------------------------------ one image


def test_segment_image_one_mask_per_object_independent_of_order_and_batching(segmenter):
    image = random_frames(1, 48, 80, seed=3)[0]  # not square: coordinates are (x, y) pixels of the image
    prompts = [
        point(20, 20),
        point(60, 30),
        point(30, 10, (50, 40, 0)),
        box(5, 5, 40, 40),
        box(40, 8, 78, 44, (60, 20, 1)),
    ]
    masks = segmenter.segment_image(image, prompts)
    assert masks.shape == (5, 48, 80) and masks.dtype == torch.float32 and masks.device.type == "cpu"
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(segmenter.segment_image(image, prompts[::-1]), masks.flip(0))  # order and determinism
    assert torch.equal(segmenter.segment_image(image, [prompts[1]])[0], masks[1])  # batched = alone

    # The rule, against the package's predictor: best-IoU of three for points only, one mask with a box.
    predictor = segmenter._predictor()
    with torch.inference_mode():
        predictor.set_image(image.numpy())
        found, ious, _ = predictor.predict(point_coords=[[20, 20]], point_labels=[1], multimask_output=True)
        assert found.shape[0] == 3 and torch.equal(masks[0], torch.from_numpy(found[ious.argmax()]))
        found, _, _ = predictor.predict(box=[5, 5, 40, 40], multimask_output=False)
        assert torch.equal(masks[3], torch.from_numpy(found[0]))
        predictor.reset_predictor()


def test_bfloat16_runs_on_the_cpu_and_float16_falls_back_to_float32(segmenter):
    bf16 = B.Sam2Segmenter(segmenter.model, segmenter.variant, device=torch.device("cpu"), dtype=torch.bfloat16)
    assert bf16.compute_dtype == torch.bfloat16
    clip = random_frames(2, 32, 32, seed=4)
    masks = bf16.segment_image(clip[0], [point(10, 10), box(2, 2, 20, 20)])
    assert masks.shape == (2, 32, 32) and masks.dtype == torch.float32
    tracked = bf16.segment_video(clip, [point(10, 10)])
    assert tracked.shape == (1, 2, 32, 32) and tracked.dtype == torch.float32
    half = B.Sam2Segmenter(segmenter.model, segmenter.variant, device=torch.device("cpu"), dtype=torch.float16)
    assert half.compute_dtype == torch.float32
    assert segmenter.model.no_mem_embed.dtype == torch.float32  # weights stay fp32, autocast does the rest


@pytest.mark.parametrize(
    "image, prompts, expected",
    [
        (torch.rand(8, 8), [point(1, 1)], r"image must be a \[H,W,3\] tensor"),
        (torch.rand(8, 8, 3) * 255, [point(1, 1)], "0..255 data"),
        (torch.rand(8, 8, 3), [], "prompts is empty"),
        (torch.rand(8, 8, 3), [(1, 1)], r"prompts\[0\] must be an ObjectPrompt"),
        (torch.rand(8, 8, 3), "1,1", "must be a list of ObjectPrompt"),
        (torch.rand(8, 8, 3), [point(1, 1), ObjectPrompt(torch.ones(1, 2), torch.tensor([0]))], "only negative points"),
        (torch.rand(8, 8, 3), [point(float("nan"), 1)], r"prompts\[0\]: points contain NaN"),
        (torch.rand(8, 8, 3), [box(5, 5, 2, 9)], "x1 > x0"),
        (torch.rand(8, 8, 3), [ObjectPrompt(torch.ones(1, 2), torch.tensor([2]))], "labels must be 1"),
    ],
)
def test_segment_image_refuses_bad_inputs_before_any_work(segmenter, image, prompts, expected):
    with pytest.raises(ValueError, match=expected):
        segmenter.segment_image(image, prompts)


# ------------------------------------------------------------------------------------------ a clip


def test_video_seed_masks_are_reproduced_objects_are_independent_and_both_passes_cover_the_clip(segmenter):
    frames = random_frames(6, 40, 56, seed=5)
    seeds = rect_masks(40, 56, (8, 30, 6, 30), (20, 38, 30, 54))
    seen = []
    masks = segmenter.segment_video(frames, None, masks=seeds, frame_index=3, progress=lambda d, t: seen.append((d, t)))
    stats = segmenter.last_video_stats
    assert masks.shape == (2, 6, 40, 56) and masks.dtype == torch.float32 and masks.device.type == "cpu"
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    assert (stats.forward_frames, stats.backward_frames) == (3, 3)  # 3, 4, 5 then 2, 1, 0
    assert seen == [(i, 6) for i in range(1, 7)]
    for obj in range(2):
        assert iou(masks[obj, 3], seeds[obj]) > 0.95  # the seed comes back on its frame (resize rounding aside)
    swapped = segmenter.segment_video(frames, [], masks=seeds.flip(0), frame_index=3)
    assert torch.equal(swapped, masks.flip(0))  # each object tracked on its own, runs deterministic


def test_video_from_prompts_forward_only_and_interrupt(segmenter):
    import sam2.sam2_video_predictor as vp

    frames = random_frames(4, 36, 44, seed=6)
    masks = segmenter.segment_video(frames, [point(10, 12), box(20, 4, 40, 30)], frame_index=0)
    assert masks.shape == (2, 4, 36, 44)
    assert (segmenter.last_video_stats.forward_frames, segmenter.last_video_stats.backward_frames) == (4, 0)

    calls = []

    def interrupt():
        calls.append(1)
        if len(calls) == 4:
            raise InterruptedError("cancelled")

    original_loader = vp.load_video_frames
    with pytest.raises(InterruptedError):
        segmenter.segment_video(frames, [point(10, 12)], frame_index=2, check_interrupt=interrupt)
    assert vp.load_video_frames is original_loader and "_get_image_feature" not in vars(segmenter.model)
    assert not torch.is_inference_mode_enabled()


def test_video_state_stays_bounded_and_pruning_changes_no_output(segmenter):
    frames = random_frames(18, 32, 32, seed=7)  # past the 15-output window, at the object-pointer boundary
    seeds = rect_masks(32, 32, (6, 24, 8, 26)).bool()
    runs = {}
    for prune in (True, False):
        logits: dict[int, torch.Tensor] = {}
        segmenter._track(frames, None, seeds, 0, logits.__setitem__, prune=prune)
        runs[prune] = (logits, segmenter.last_video_stats)
    (pruned, kept), (full, grown) = runs[True], runs[False]
    assert sorted(pruned) == list(range(18)) and all(torch.equal(pruned[i], full[i]) for i in range(18))
    window = segmenter.memory_window
    assert window == 15 and kept.max_stored_outputs == window
    assert kept.stored_per_frame == [min(i, window) for i in range(18)]  # flat once the window is full
    assert grown.stored_per_frame == list(range(18)) and grown.max_stored_outputs == 17  # grows with the clip
    assert kept.max_stored_bytes * 17 == grown.max_stored_bytes * 15


def test_frames_from_memory_are_preprocessed_exactly_like_the_packages_jpeg_folder_loader(tmp_path):
    from PIL import Image
    from sam2.utils.misc import load_video_frames

    frames = (random_frames(3, 30, 50, seed=8) * 255).round() / 255  # 8-bit frames, as decoded from a video
    for i, frame in enumerate(frames):  # lossless PNG data under the .jpg names the package's loader lists
        Image.fromarray((frame * 255).round().byte().numpy()).save(tmp_path / f"{i}.jpg", format="PNG")
    images, height, width = load_video_frames(str(tmp_path), SIZE, True, compute_device=torch.device("cpu"))
    source = B._FrameSource(frames, SIZE)
    assert (height, width, len(source)) == (30, 50, 3)
    assert all(torch.equal(source[i], images[i]) for i in range(3))


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"prompts": [point(1, 1)], "masks": torch.ones(1, 16, 16)}, "either prompts"),
        ({"prompts": None}, "either prompts"),
        ({"prompts": None, "masks": torch.ones(1, 8, 16)}, r"\[H,W\] = \[16, 16\]"),
        ({"prompts": None, "masks": torch.full((1, 16, 16), 0.4)}, r"masks\[0\] is empty"),
        ({"prompts": None, "masks": torch.full((1, 16, 16), 2.0)}, "finite values in 0..1"),
        ({"prompts": [point(1, 1)], "frame_index": 3}, "frame_index 3 is out of range for a clip of 3 frames"),
        ({"prompts": [point(1, 1)], "frame_index": 1.0}, "frame_index must be an int"),
        ({"prompts": [point(1, 1)], "progress": 3}, "progress must be a callable"),
    ],
)
def test_segment_video_refuses_bad_inputs_before_any_work(segmenter, kwargs, expected):
    kwargs = dict(kwargs)
    with pytest.raises(ValueError, match=expected):
        segmenter.segment_video(torch.rand(3, 16, 16, 3), kwargs.pop("prompts"), **kwargs)


# ------------------------------------------------------------------------------------------ download


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def do_GET(self):  # noqa: N802
        payload = self.files[self.path.split("?")[0].lstrip("/").removesuffix(".truncated")]
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.path.endswith(".truncated"):  # the connection drops half-way
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.connection.close()
            return
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # the dropped connection of the truncated download
        pass


@pytest.fixture(scope="module")
def weights_server(sam2_path, sam2_state, tmp_path_factory):
    folder = tmp_path_factory.mktemp("served")
    old = write_sam2_checkpoint(folder / "old.pt", sam2_2_0_state_dict(sam2_state))
    _Handler.files = {"good.pt": sam2_path.read_bytes(), "old.pt": old.read_bytes(), "small.pt": b"x" * 4096}
    old.unlink()
    server = _QuietServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", _Handler.files
    server.shutdown()
    _Handler.files = {}


def test_download_is_atomic_verified_and_returns_the_sha256(tmp_path, weights_server, caplog):
    base, files = weights_server
    digest = hashlib.sha256(files["good.pt"]).hexdigest()
    seen = []
    with caplog.at_level(logging.INFO, logger=B.__name__):
        result = B.download_sam2_weights(
            tmp_path, "tiny", url=base + "good.pt", progress=lambda d, t: seen.append((d, t))
        )
    assert result == B.Sam2Download(tmp_path / "sam2.1_hiera_tiny.pt", digest, len(files["good.pt"]), True)
    assert [p.name for p in tmp_path.iterdir()] == ["sam2.1_hiera_tiny.pt"]
    assert seen[-1] == (len(files["good.pt"]), len(files["good.pt"])) and len(seen) > 3
    assert digest in caplog.text and str(result.path) in caplog.text

    again = B.download_sam2_weights(tmp_path, "tiny", url=base + "missing.pt", sha256=digest)  # kept, checked
    assert again == B.Sam2Download(result.path, digest, result.size, False)
    with pytest.raises(CheckpointError, match="not the pinned one"):
        B.download_sam2_weights(tmp_path, "tiny", url=base + "good.pt", sha256="0" * 64)
    assert B.load_sam2(result.path, image_size=SIZE).variant.name == "tiny"


@pytest.mark.parametrize(
    "served, kwargs, expected",
    [
        ("good.pt.truncated", {}, "stopped after"),
        ("old.pt", {}, "a SAM 2.0 tiny checkpoint, but variant 'tiny' is SAM 2.1 tiny: it lacks the keys"),
        ("small.pt", {}, "not a readable SAM 2 checkpoint"),
        ("good.pt", {"variant": "small"}, "a SAM 2.1 tiny checkpoint (image encoder width 96, 12 blocks), not SAM"),
        ("small.pt", {"sha256": "0" * 64}, "checksum mismatch"),
    ],
)
def test_failed_downloads_leave_nothing_behind(tmp_path, weights_server, served, kwargs, expected):
    base, _ = weights_server
    folder = tmp_path / "models"
    kwargs = {"variant": "tiny", **kwargs}
    with pytest.raises(CheckpointError) as err:
        B.download_sam2_weights(folder, url=base + served, **kwargs)
    assert expected in str(err.value) and base + served.removesuffix(".truncated") in str(err.value)
    assert str(folder / B.get_sam2_variant(kwargs["variant"]).filename) in str(err.value)
    assert list(folder.iterdir()) == []


def test_download_offline_names_the_url_and_the_exact_target(tmp_path):
    url = "http://127.0.0.1:9/sam2.1_hiera_base_plus.pt"  # the discard port: nothing listens
    folder = tmp_path / "models" / "sam2"
    with pytest.raises(CheckpointError) as err:
        B.download_sam2_weights(folder, "base_plus", url=url, timeout=5)
    assert url in str(err.value) and f"put it at {folder / 'sam2.1_hiera_base_plus.pt'}" in str(err.value)
    assert list(folder.iterdir()) == []
