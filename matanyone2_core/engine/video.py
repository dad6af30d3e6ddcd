"""Whole-clip matting (being written)."""


def matte_video(model, frames, first_mask, **kwargs):
    raise NotImplementedError
