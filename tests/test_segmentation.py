"""Prompt parsing in every supported format (with its errors), object masks, and the SAM 3 track-data reader
(checked against an independent pack of the documented bit layout)."""

from __future__ import annotations

import json

import pytest
import torch

from matanyone2_core.segmentation import (
    ObjectMasks,
    build_prompts,
    objects_from_masks,
    objects_from_track_data,
    parse_boxes,
    parse_points,
    unpack_bits,
)

SIZE = (96, 128)  # H, W


def test_kj_points_editor_json_and_plain_text_give_the_same_object():
    kj = json.dumps([{"x": 10, "y": 20}, {"x": 30, "y": 40}])
    text = "10,20\n30, 40   # a comment"
    for positive in (kj, text, json.loads(kj)):
        (obj,) = build_prompts(positive, "5,6", None, size=SIZE)
        assert obj.points.tolist() == [[10, 20], [30, 40], [5, 6]] and obj.labels.tolist() == [1, 1, 0]
        assert obj.box is None


def test_several_objects_from_points_boxes_and_negatives():
    groups = json.dumps([[{"x": 1, "y": 1}], [{"x": 100, "y": 50}, {"x": 101, "y": 51}]])
    objs = build_prompts(groups, "+3,3\n-4,4", None, size=SIZE)
    assert len(objs) == 2 and [o.points.shape[0] for o in objs] == [3, 4]
    assert objs[0].labels.tolist() == [1, 1, 0]  # "+" forces positive in the negative input
    text = build_prompts("1,2\n---\n3,4\n\n5,6", None, None, size=SIZE)
    assert [o.points.tolist() for o in text] == [[[1, 2]], [[3, 4]], [[5, 6]]]
    boxes = build_prompts(None, None, [{"x": 10, "y": 10, "width": 20, "height": 30}, (40, 5, 90, 60)], size=SIZE)
    assert [o.box.tolist() for o in boxes] == [[10, 10, 30, 40], [40, 5, 90, 60]]
    paired = build_prompts("15,15\n\n50,30", None, [(10, 10, 20, 20), (40, 5, 90, 60)], size=SIZE)
    assert paired[1].points.tolist() == [[50, 30]] and paired[1].box.tolist() == [40, 5, 90, 60]
    per_object_negatives = build_prompts("15,15\n\n50,30", "1,1\n\n2,2", None, size=SIZE)
    assert per_object_negatives[1].points.tolist() == [[50, 30], [2, 2]]


def test_box_formats():
    assert parse_boxes({"x": 1, "y": 2, "width": 3, "height": 4}, name="b") == [(1, 2, 4, 6)]
    assert parse_boxes([[0, 0, 5, 5], (1, 1, 2, 2)], name="b") == [(0, 0, 5, 5), (1, 1, 2, 2)]
    assert parse_boxes("[[0, 0, 5, 5]]", name="b") == [(0, 0, 5, 5)]
    assert parse_boxes(None, name="b") == [] and parse_points("   ", name="p") == []


@pytest.mark.parametrize(
    "positive, negative, boxes, message",
    [
        (None, None, None, "empty prompt"),
        ("", "3,3", None, "empty prompt"),
        ("[{\"x\": 1, \"y\": }]", None, None, "positive_points: malformed JSON"),
        ("[{\"x\": 1}]", None, None, "positive_points: point 0 must be an object with keys x and y"),
        ("1;2;3", None, None, "positive_points: line 1 '1;2;3' is not 'x,y'"),
        ("a,b", None, None, "line 1 'a,b': x and y must be numbers"),
        ("130,10", None, None, "positive_points: point of object 0 \\(130, 10\\) lies outside the image"),
        ("10,10", "10,-1", None, "negative_points: point of object 0"),
        ("-5,5", None, None, "object 0 has only negative points"),
        (None, None, [{"x": 0, "y": 0, "width": 200, "height": 10}], "boxes: corner of box 0"),
        (None, None, [(10, 10, 10, 20)], "box 0 .* is empty"),
        (None, None, [{"x": 0, "y": 0}], "box 0 \\(a BOUNDING_BOX\\) lacks width, height"),
        (None, None, ["abc"], "boxes: box 0 must be a BOUNDING_BOX"),
        ("1,1\n\n2,2\n\n3,3", None, [(0, 0, 5, 5), (1, 1, 6, 6)], "3 point group\\(s\\) but boxes has 2"),
        ("1,1\n\n2,2", "1,1\n\n2,2\n\n3,3", None, "negative_points has 3 point group\\(s\\) for 2 object"),
        ("nan,3", None, None, "is not finite"),
    ],
)
def test_bad_prompts_name_the_input(positive, negative, boxes, message):
    with pytest.raises(ValueError, match=message):
        build_prompts(positive, negative, boxes, size=SIZE)


def test_object_masks():
    masks = torch.zeros(2, 3, 4, 5)
    masks[0, :, 0, 0] = 1
    masks[1, :, 1, 1] = 0.5
    objects = ObjectMasks(masks, first_frame=4)
    assert objects.count == 2 and objects.frames == range(4, 7) and objects.size == (4, 5)
    assert torch.equal(objects.at(5), masks[:, 1]) and objects.union()[0, 1, 1] == 0.5
    with pytest.raises(ValueError, match="cover frames 4..6, not frame 2"):
        objects.at(2)
    with pytest.raises(ValueError, match="object index 2 is out of range: there are 2"):
        objects.select(2)
    with pytest.raises(ValueError, match="must be \\[N,T,H,W\\]"):
        ObjectMasks(torch.zeros(3, 4))
    single = objects_from_masks(torch.ones(3, 4, 5), frame=7)
    assert single.masks.shape == (3, 1, 4, 5) and single.frames == range(7, 8)


def _pack(masks: torch.Tensor) -> torch.Tensor:
    """An independent packing of the documented layout: byte j of a row holds pixels 8j..8j+7, LSB first."""
    rows = masks.reshape(*masks.shape[:-1], masks.shape[-1] // 8, 8).to(torch.int64)
    return sum(rows[..., i] << i for i in range(8)).to(torch.uint8)


def test_sam3_track_data_is_unpacked_per_object_and_resized():
    gen = torch.Generator().manual_seed(0)
    internal = torch.rand(5, 3, 24, 32, generator=gen) > 0.6  # frames, objects, H_m, W_m
    packed = _pack(internal)
    assert torch.equal(unpack_bits(packed), internal)
    data = {"packed_masks": packed, "n_frames": 5, "scores": [1.0, 1.0, 0.9], "orig_size": (48, 64)}
    objects = objects_from_track_data(data, objects=[2, 0], frames=[1, 2, 3])
    assert objects.masks.shape == (2, 3, 48, 64) and objects.frames == range(1, 4)
    expected = torch.nn.functional.interpolate(internal[1:4, [2, 0]].float().transpose(0, 1).flatten(0, 1)[:, None],
                                               size=(48, 64), mode="bilinear", align_corners=False)  # fmt: skip
    assert torch.allclose(objects.masks.flatten(0, 1), expected[:, 0])
    same_size = objects_from_track_data({**data, "orig_size": (24, 32)})
    assert torch.equal(same_size.masks.bool(), internal.transpose(0, 1))
    with pytest.raises(ValueError, match="tracked nothing"):
        objects_from_track_data({**data, "packed_masks": None})
    with pytest.raises(ValueError, match="object index 3 is out of range: the track data holds 3"):
        objects_from_track_data(data, objects=[3])
    with pytest.raises(ValueError, match="frames must be consecutive"):
        objects_from_track_data(data, frames=[0, 2])
    with pytest.raises(ValueError, match="must be SAM3 track data"):
        objects_from_track_data(torch.zeros(3))
