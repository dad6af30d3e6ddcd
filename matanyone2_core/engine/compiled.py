"""The network's per-step functions under `torch.compile` (`MattingOptions(compile=True)`), each falling back
to eager execution for good when compiling or running the compiled version fails (no compiler, an unsupported
backend): a step never fails because of compilation.

What is compiled are the pure tensor functions of a step (image encoding, mask encoding, the fusion confidence,
the decoder); the memory read and its bookkeeping stay eager. Each of them is one graph without breaks (no
`.item()`, `nonzero` or data-dependent shapes: tests/test_fast_modes.py checks it with dynamo), so on CUDA
`mode="reduce-overhead"` captures them as CUDA graphs. Shapes change while the working memory fills and after
each long-term consolidation; dynamo recompiles for those and, past its recompile limit, runs eagerly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

from ..checkpoint import short_reason

log = logging.getLogger("matanyone2")
BACKEND = "inductor"  # tests use "eager" (dynamo's capture without code generation)
COMPILED = ("encode_image", "encode_mask", "confidence", "predict")


class _Fallback:
    """`compiled(*args)`, or `eager(*args)` from the first failure on."""

    def __init__(self, name: str, eager: Callable, compiled: Callable):
        self.name, self.eager, self.compiled = name, eager, compiled

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - any compiler failure: eager from here on
                log.warning("MatAnyone 2: torch.compile of %s failed (%s); running it eagerly", self.name,
                            short_reason(exc))  # fmt: skip
                self.compiled = None
        return self.eager(*args, **kwargs)


class CompiledNetwork:
    """The network's step functions, compiled; every other attribute is the network's own."""

    def __init__(self, model: torch.nn.Module):
        self._model = model
        mode = "reduce-overhead" if model.device.type == "cuda" and BACKEND == "inductor" else None
        for name in COMPILED:
            eager = getattr(model, name)
            try:
                compiled = torch.compile(eager, backend=BACKEND, mode=mode, dynamic=False)
            except Exception as exc:  # noqa: BLE001
                log.warning("MatAnyone 2: torch.compile unavailable (%s); running eagerly", exc)
                compiled = None
            setattr(self, name, _Fallback(name, eager, compiled))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def compiled_network(model: torch.nn.Module) -> CompiledNetwork:
    """A view of `model` whose step functions run compiled (see the module docstring)."""
    return CompiledNetwork(model)
