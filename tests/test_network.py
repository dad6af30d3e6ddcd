"""The network's state dict is exactly the official one (names, shapes, dtypes, order)."""

from weights import KEY_LIST

from matanyone2_core.network.model import MatAnyone2Network


def _official_rows() -> list[list[str]]:
    return [line.split("\t") for line in KEY_LIST.read_text().splitlines()[1:]]


def test_state_dict_has_exactly_the_official_keys_and_shapes():
    rows = _official_rows()
    assert len(rows) == 562
    ours = MatAnyone2Network().state_dict()
    assert list(ours) == [r[0] for r in rows]
    for key, shape, dtype, *_ in rows:
        expected = () if shape == "scalar" else tuple(int(s) for s in shape.split("x"))
        assert tuple(ours[key].shape) == expected, key
        assert str(ours[key].dtype).removeprefix("torch.") == dtype, key


def test_parameter_and_buffer_counts_match_the_official_model():
    rows = _official_rows()
    net = MatAnyone2Network()
    params = {n for n, _ in net.named_parameters()}
    assert params == {r[0] for r in rows if r[3] == "parameter"}
    assert sum(p.numel() for p in net.parameters()) == 35_249_195


def test_the_core_library_imports_nothing_from_comfyui():
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, matanyone2_core, matanyone2_core.metrics, matanyone2_core.benchmark, "
        "matanyone2_core.synthetic, matanyone2_core.compositing, matanyone2_core.__main__; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('comfy', 'comfy_api', 'folder_paths', 'nodes', 'cv2')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    root = Path(__file__).parent.parent
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
