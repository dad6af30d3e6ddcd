"""Compositing against its definition: fg·α + bg·(1 − α)."""

import pytest
import torch

from matanyone2_core.compositing import composite, parse_color


def test_straight_and_premultiplied_give_the_definition():
    gen = torch.Generator().manual_seed(0)
    fg, bg = torch.rand(3, 4, 5, 3, generator=gen), torch.rand(1, 4, 5, 3, generator=gen)
    alpha = torch.rand(3, 4, 5, generator=gen)
    expected = fg * alpha[..., None] + bg * (1 - alpha[..., None])
    assert torch.allclose(composite(fg, alpha, bg, premultiplied=False), expected, atol=1e-6)
    assert torch.allclose(composite(fg * alpha[..., None], alpha, bg, premultiplied=True), expected, atol=1e-6)


def test_hex_colours():
    assert torch.equal(parse_color("#00FF80"), torch.tensor([0.0, 1.0, 128 / 255]))
    assert torch.equal(parse_color("ff0000"), torch.tensor([1.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="hex colour"):
        parse_color("green")
