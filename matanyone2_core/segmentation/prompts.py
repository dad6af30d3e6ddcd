"""Click and box prompts for segmentation: one prompt group per object, parsed from the formats ComfyUI users
have (KJNodes Points Editor JSON, plain text, core BOUNDING_BOX, KJNodes BBOX), with clear errors."""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ObjectPrompt:
    """The prompts of one object on one frame: points in pixels (x, y) with labels 1 = on the object,
    0 = not on it, and an optional box (x0, y0, x1, y1) in pixels. At least one point or the box."""

    points: torch.Tensor  # [K,2] float32, (x, y) pixel coordinates, K may be 0
    labels: torch.Tensor  # [K] int64, 1 positive / 0 negative
    box: torch.Tensor | None = None  # [4] float32 (x0, y0, x1, y1)

    def __post_init__(self) -> None:
        if self.points.ndim != 2 or self.points.shape[-1] != 2 or self.labels.shape != (self.points.shape[0],):
            raise ValueError(f"ObjectPrompt: points must be [K,2] with labels [K], got {list(self.points.shape)} "
                             f"and {list(self.labels.shape)}")  # fmt: skip
        if self.points.shape[0] == 0 and self.box is None:
            raise ValueError("ObjectPrompt: an object needs at least one point or a box")
        if self.box is not None and tuple(self.box.shape) != (4,):
            raise ValueError(f"ObjectPrompt: box must be (x0, y0, x1, y1), got shape {list(self.box.shape)}")

    @property
    def has_positive(self) -> bool:
        return bool((self.labels == 1).any()) or self.box is not None


# ------------------------------------------------------------------------------------------------ parsing

_SEPARATORS = ("", "---")


def _number(value, *, name: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: {what} must be a number, got {value!r}")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name}: {what} is not finite ({value})")
    return value


def _points_from_json(data, *, name: str) -> list[list[tuple[float, float, int | None]]]:
    """KJNodes Points Editor JSON: a list of {"x", "y"} (one object) or a list of such lists (one per object)."""
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ValueError(f"{name}: expected a JSON list of {{\"x\": .., \"y\": ..}} points, got {type(data).__name__}")
    groups = data if data and all(isinstance(g, list) for g in data) else [data]
    out = []
    for g, group in enumerate(groups):
        points = []
        for p, point in enumerate(group):
            where = f"point {p}" + (f" of object {g}" if len(groups) > 1 else "")
            if not isinstance(point, dict) or "x" not in point or "y" not in point:
                raise ValueError(f"{name}: {where} must be an object with keys x and y, got {point!r}")
            points.append((_number(point["x"], name=name, what=f"{where} x"),
                           _number(point["y"], name=name, what=f"{where} y"), None))  # fmt: skip
        out.append(points)
    return out


def _points_from_text(text: str, *, name: str) -> list[list[tuple[float, float, int | None]]]:
    """Plain text: one `x,y` per line, `+x,y` / `-x,y` to force the label, `#` comments, and an empty line or
    `---` between objects."""
    groups: list[list[tuple[float, float, int | None]]] = [[]]
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if line in _SEPARATORS:
            if groups[-1]:
                groups.append([])
            continue
        label = None
        if line[0] in "+-":
            label, line = (1 if line[0] == "+" else 0), line[1:].strip()
        parts = [p.strip() for p in line.replace(";", ",").split(",")]
        if len(parts) != 2:
            raise ValueError(f"{name}: line {number} {raw.strip()!r} is not 'x,y' (optionally with + or -)")
        try:
            x, y = float(parts[0]), float(parts[1])
        except ValueError:
            raise ValueError(f"{name}: line {number} {raw.strip()!r}: x and y must be numbers") from None
        groups[-1].append((_number(x, name=name, what=f"line {number} x"),
                           _number(y, name=name, what=f"line {number} y"), label))  # fmt: skip
    return [g for g in groups if g]


def parse_points(value, *, name: str) -> list[list[tuple[float, float, int | None]]]:
    """Point groups (one per object) from a KJNodes Points Editor JSON string, already-parsed JSON, or plain
    text; each point is (x, y, label or None). Empty input gives no group."""
    if value is None:
        return []
    if not isinstance(value, str):
        return _points_from_json(value, name=name)
    text = value.strip()
    if not text:
        return []
    if text[0] in "[{":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{name}: malformed JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
        return _points_from_json(data, name=name)
    return _points_from_text(text, name=name)


def _box_from(item, *, name: str, index: int) -> tuple[float, float, float, float]:
    where = f"box {index}"
    if isinstance(item, dict):  # core BOUNDING_BOX: {x, y, width, height} in pixels
        missing = [k for k in ("x", "y", "width", "height") if k not in item]
        if missing:
            raise ValueError(f"{name}: {where} (a BOUNDING_BOX) lacks {', '.join(missing)}")
        x, y = _number(item["x"], name=name, what=f"{where} x"), _number(item["y"], name=name, what=f"{where} y")
        w = _number(item["width"], name=name, what=f"{where} width")
        h = _number(item["height"], name=name, what=f"{where} height")
        return x, y, x + w, y + h
    if isinstance(item, (list, tuple)) and len(item) == 4:  # KJNodes BBOX: (x_min, y_min, x_max, y_max)
        x0, y0, x1, y1 = (_number(v, name=name, what=f"{where} coordinate") for v in item)
        return x0, y0, x1, y1
    raise ValueError(f"{name}: {where} must be a BOUNDING_BOX {{x, y, width, height}} or an (x0, y0, x1, y1) "
                     f"tuple, got {item!r}")  # fmt: skip


def parse_boxes(value, *, name: str) -> list[tuple[float, float, float, float]]:
    """Boxes (x0, y0, x1, y1) from core BOUNDING_BOX (a dict, or a list of dicts), KJNodes BBOX (a list of
    4-tuples), or a JSON string of either. None or an empty list gives no box."""
    if value is None:
        return []
    if isinstance(value, str):
        if not value.strip():
            return []
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{name}: malformed JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if isinstance(value, dict) or (isinstance(value, (list, tuple)) and len(value) == 4
                                   and all(isinstance(v, (int, float)) for v in value)):  # fmt: skip
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name}: expected boxes, got {type(value).__name__}")
    return [_box_from(item, name=name, index=i) for i, item in enumerate(value)]


def _check_inside(x: float, y: float, size: tuple[int, int], *, name: str, what: str) -> None:
    height, width = size
    if not (0 <= x <= width - 1 and 0 <= y <= height - 1):
        raise ValueError(f"{name}: {what} ({x:g}, {y:g}) lies outside the image ({width}x{height} WxH, pixels "
                         f"0..{width - 1}, 0..{height - 1})")  # fmt: skip


def build_prompts(
    positive=None,
    negative=None,
    boxes=None,
    *,
    size: tuple[int, int],
    names: tuple[str, str, str] = ("positive_points", "negative_points", "boxes"),
) -> list[ObjectPrompt]:
    """One ObjectPrompt per object from positive points, negative points and boxes (see `parse_points`,
    `parse_boxes`), checked against the image `size` (H, W).

    Objects: the positive point groups and the boxes pair up by order (equal counts, or one kind absent);
    a single negative group applies to every object, several pair up with the objects. Points of the positive
    input are positive and of the negative input negative unless a `+`/`-` prefix says otherwise.
    """
    pos_name, neg_name, box_name = names
    pos, neg, box_list = parse_points(positive, name=pos_name), parse_points(negative, name=neg_name), \
        parse_boxes(boxes, name=box_name)  # fmt: skip
    count = max(len(pos), len(box_list))
    if count == 0:
        raise ValueError(f"empty prompt: give at least one point in {pos_name} or one box in {box_name}")
    if pos and box_list and len(pos) != len(box_list):
        raise ValueError(f"{pos_name} has {len(pos)} point group(s) but {box_name} has {len(box_list)} box(es): "
                         "give one point group per box (objects pair up by order), or only one of the two")
    if len(neg) > 1 and len(neg) != count:
        raise ValueError(f"{neg_name} has {len(neg)} point group(s) for {count} object(s): give one group for all "
                         "objects or one per object")  # fmt: skip
    prompts = []
    for i in range(count):
        points, labels = [], []
        for source, default, name in ((pos[i] if pos else [], 1, pos_name),
                                      (neg[i if len(neg) > 1 else 0] if neg else [], 0, neg_name)):  # fmt: skip
            for x, y, label in source:
                _check_inside(x, y, size, name=name, what=f"point of object {i}")
                points.append((x, y))
                labels.append(default if label is None else label)
        box = None
        if box_list:
            x0, y0, x1, y1 = box_list[i]
            for x, y in ((x0, y0), (x1 - 1 if x1 > x0 else x1, y1 - 1 if y1 > y0 else y1)):
                _check_inside(x, y, size, name=box_name, what=f"corner of box {i}")
            if x1 <= x0 or y1 <= y0:
                raise ValueError(f"{box_name}: box {i} ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is empty (needs x1 > x0 "
                                 "and y1 > y0)")  # fmt: skip
            box = torch.tensor([x0, y0, x1, y1], dtype=torch.float32)
        prompt = ObjectPrompt(torch.tensor(points, dtype=torch.float32).reshape(-1, 2),
                              torch.tensor(labels, dtype=torch.int64), box)  # fmt: skip
        if not prompt.has_positive:
            raise ValueError(f"object {i} has only negative points: give it a positive point or a box")
        prompts.append(prompt)
    return prompts
