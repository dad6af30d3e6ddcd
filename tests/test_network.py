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
