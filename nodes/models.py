"""ComfyUI glue for MatAnyone 2 weights: the `models/matanyone` folder, download, loading and caching.

A loaded network is wrapped in ComfyUI's model patcher, so ComfyUI's model management decides when it sits
on the compute device and when it is offloaded; `MattingModel.network()` brings it back on demand. The
patcher is `comfy.model_patcher.CoreModelPatcher` where the host has it (0.33+, which points it at the
dynamic-VRAM patcher on NVIDIA GPUs, the path core models take), else the legacy `ModelPatcher`.
Loaded networks are cached by file (path, size, mtime), precision and device, so a second run of a
workflow does not read the weights from disk again.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import comfy.model_management as mm
import comfy.model_patcher
import folder_paths
import torch

from ..matanyone2_core import (
    OFFICIAL_WEIGHTS_FILENAME,
    OFFICIAL_WEIGHTS_URL,
    download_official_weights,
    load_matting_model,
)

log = logging.getLogger(__name__)

FOLDER_NAME = "matanyone"
WEIGHT_EXTENSIONS = {".pth", ".pt", ".safetensors"}
PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
DEVICES = ["auto", "cpu"]
_CACHE_SIZE = 4


def register_model_folder() -> None:
    """Register `models/matanyone` (extra_model_paths.yaml key `matanyone` adds more folders)."""
    folder_paths.add_model_folder_path(FOLDER_NAME, os.path.join(folder_paths.models_dir, FOLDER_NAME))
    paths, extensions = folder_paths.folder_names_and_paths[FOLDER_NAME]
    folder_paths.folder_names_and_paths[FOLDER_NAME] = (paths, set(extensions) | WEIGHT_EXTENSIONS)


def model_folders() -> list[str]:
    return folder_paths.get_folder_paths(FOLDER_NAME)


def weight_choices() -> list[str]:
    """Files in the matanyone folders, plus the official file name (downloadable when missing)."""
    names = list(folder_paths.get_filename_list(FOLDER_NAME))
    if OFFICIAL_WEIGHTS_FILENAME not in names:
        names.insert(0, OFFICIAL_WEIGHTS_FILENAME)
    return names


def find_weights(name: str) -> str | None:
    return folder_paths.get_full_path(FOLDER_NAME, name)


def resolve_weights(name: str, download: bool, progress: Callable[[int, int | None], None] | None = None) -> str:
    """The full path of weights file `name`, downloading the official file first when allowed."""
    path = find_weights(name)
    if path is not None:
        return path
    folders = model_folders()
    if name != OFFICIAL_WEIGHTS_FILENAME:
        raise FileNotFoundError(f"MatAnyone 2 weights '{name}' not found in {folders}")
    if not download:
        raise FileNotFoundError(
            f"MatAnyone 2 weights '{name}' not found. Put the official file at "
            f"{os.path.join(folders[0], name)} (download it from {OFFICIAL_WEIGHTS_URL}), "
            "or enable download_if_missing on the MatAnyone 2 loader."
        )
    log.info("MatAnyone 2: downloading %s into %s", OFFICIAL_WEIGHTS_URL, folders[0])
    return str(download_official_weights(folders[0], progress=progress))


def resolve_device(choice: str) -> tuple[torch.device, torch.device]:
    """(load device, offload device) for a device choice."""
    if choice == "cpu":
        return torch.device("cpu"), torch.device("cpu")
    if choice != "auto":
        raise ValueError(f"device must be one of {DEVICES}, got {choice!r}")
    load = mm.get_torch_device()
    offload = torch.device("cpu") if load.type == "cpu" else mm.unet_offload_device()
    return load, offload


def core_patcher_class() -> tuple[type, str]:
    """(patcher class, its name in comfy.model_patcher): `CoreModelPatcher` when the host defines it (the
    class core loaders use), else `ModelPatcher`.

    Looked up at call time: ComfyUI's main.py rebinds `CoreModelPatcher` to `ModelPatcherDynamic` after the
    modules are imported when dynamic VRAM is enabled (and that class itself falls back to `ModelPatcher`
    for a CPU load device).
    """
    name = "CoreModelPatcher" if hasattr(comfy.model_patcher, "CoreModelPatcher") else "ModelPatcher"
    return getattr(comfy.model_patcher, name), name


class ManagedModule(torch.nn.Module):
    """The module handed to the model patcher, which writes its own bookkeeping attributes (device, memory
    counters) onto it; the wrapped network keeps its own `device` and stays untouched. One subclass per kind,
    so that ComfyUI's log names what it loads."""

    def __init__(self, network: torch.nn.Module):
        super().__init__()
        self.network = network


class ManagedMatAnyone2(ManagedModule):
    pass


class ManagedSAM2(ManagedModule):
    pass


@dataclass(eq=False)
class ManagedModel:
    """A network owned by ComfyUI's model management (offloaded when memory is needed, reloaded on use)."""

    patcher: comfy.model_patcher.ModelPatcher  # or a subclass (ModelPatcherDynamic)
    path: str
    precision: str

    @property
    def device(self) -> torch.device:
        return self.patcher.load_device

    def module(self) -> torch.nn.Module:
        """The network on its compute device, loading (or reloading after an offload) as needed."""
        mm.load_models_gpu([self.patcher], force_full_load=True)
        return self.patcher.model.network


class MattingModel(ManagedModel):
    """A MatAnyone 2 network (the MA2_MODEL socket value)."""

    def network(self) -> torch.nn.Module:
        return self.module()


_cache: OrderedDict[tuple, ManagedModel] = OrderedDict()
_cache_lock = threading.Lock()


def managed(
    kind: str,
    path: str,
    precision: str,
    device: str,
    build: Callable[[torch.device, torch.dtype], torch.nn.Module],
    *,
    wrapper: type[ManagedModule],
    model_class: type[ManagedModel] = ManagedModel,
) -> ManagedModel:
    """The network `build(offload_device, dtype)` from `path`, wrapped in the host's core patcher and cached by
    kind, file (path, size, mtime), precision and device, so that runs reuse it (`kind` names it in the log)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    load_device, offload_device = resolve_device(device)
    stat = os.stat(path)
    key = (kind, os.path.realpath(path), stat.st_size, stat.st_mtime_ns, precision, str(load_device))
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
            return cached
        # One line per read from disk: the host tests count it to prove that runs reuse the loaded network.
        log.info("MatAnyone 2: loading %s weights from %s (%s, %s)", kind, path, precision, load_device)
        network = build(offload_device, PRECISIONS[precision])
        patcher_class, source = core_patcher_class()
        patcher = patcher_class(wrapper(network), load_device=load_device, offload_device=offload_device)
        # The host tests read this line: which patcher the host built, and through which name.
        log.info("MatAnyone 2: model managed by %s (comfy.model_patcher.%s)", type(patcher).__name__, source)
        model = model_class(patcher=patcher, path=path, precision=precision)
        _cache[key] = model
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
        return model


def load_model(path: str, precision: str = "fp32", device: str = "auto") -> MattingModel:
    """Load (or fetch from the cache) the MatAnyone 2 network in `path` with the given precision and device."""
    return managed(
        "matanyone", path, precision, device,
        lambda offload, dtype: load_matting_model(path, device=offload, dtype=dtype),
        wrapper=ManagedMatAnyone2, model_class=MattingModel,
    )  # fmt: skip
