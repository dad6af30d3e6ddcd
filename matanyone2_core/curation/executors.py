"""Where the per-clip function runs: in this process (`run_local`) or in Ray actors (`run_ray`).

Both call `ClipRunner.run` for one clip at a time and hand every record to `on_result` in the driver, which
alone appends to the manifest. Ray is optional (`pip install matanyone2-suite[ray]`) and imported only by
`run_ray`. Ray workers write their clips' outputs themselves: the input and output folders must be visible at
the same paths to every node (one machine, or a shared file system).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..cli_matte import ProgressBar
from .clip import ClipRunner, CurationConfig, base_record
from .layout import ClipSource

OnResult = Callable[[dict[str, Any]], None]
PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


def _stage_bars(label: str) -> tuple[Callable[[str, int, int], None], Callable[[], None]]:
    """A progress callback `(stage, done, total)` drawing one `ProgressBar` per stage of a clip."""
    bars: dict[str, ProgressBar] = {}
    current: list[str] = []

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in bars:
            if current:
                bars[current[-1]].close()
            bars[stage] = ProgressBar(total, label=f"{label} {stage}")
            current.append(stage)
        bars[stage].update(done)

    def close() -> None:
        if current:
            bars[current[-1]].close()

    return progress, close


def run_local(clips: Sequence[ClipSource], config: CurationConfig, on_result: OnResult, *,
              show_progress: bool = True, runner: ClipRunner | None = None) -> None:  # fmt: skip
    """Curate `clips` one after the other in this process (models loaded once; `runner` may bring them)."""
    runner = ClipRunner(config) if runner is None else runner
    for k, clip in enumerate(clips, start=1):
        progress, close = _stage_bars(f"[{k}/{len(clips)}] {clip.clip_id}") if show_progress else (None, None)
        try:
            record = runner.run(clip, progress)
        finally:
            if close is not None:
                close()
        on_result(record)


class _Worker:
    """The Ray actor: one ClipRunner (its models loaded once), one clip per call."""

    def __init__(self, config: CurationConfig):
        self.runner = ClipRunner(config)

    def run(self, clip: ClipSource) -> dict[str, Any]:
        return self.runner.run(clip)


def _failure(config: CurationConfig, clip: ClipSource, reason: str) -> dict[str, Any]:
    """A failed record for a clip whose Ray call failed (the clip is tried again on the next run)."""
    return {**base_record(config, clip), "status": "failed", "reason": reason}


def run_ray(
    clips: Sequence[ClipSource],
    config: CurationConfig,
    on_result: OnResult,
    *,
    address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float = 1.0,
    cpus_per_worker: float = 1.0,
) -> None:
    """Curate `clips` in Ray actors, one clip per call, results handed to `on_result` as they finish.

    Uses the Ray runtime already initialised in this process, else `ray.init(address)` (None: a local
    cluster, or the one `RAY_ADDRESS` names; "auto": the running one), shut down again at the end. Each
    actor takes `gpus_per_worker` GPUs when the cluster has GPUs (else none: CPU) and `cpus_per_worker` CPUs;
    `workers` defaults to as many as the cluster's GPUs (or CPUs) allow. An actor that dies fails its clip
    (recorded, retried on the next run) and is replaced.
    """
    try:
        import ray
    except ImportError as exc:
        raise RuntimeError("--executor ray needs Ray: pip install 'matanyone2-suite[ray]' (ray==2.60.0)") from exc

    started_here = not ray.is_initialized()
    if started_here:
        kwargs: dict[str, Any] = {"address": address} if address else {"include_dashboard": False}
        ray.init(**kwargs, log_to_driver=False)
    try:
        resources = ray.cluster_resources()
        gpus = float(resources.get("GPU", 0.0)) if gpus_per_worker > 0 else 0.0
        per_worker_gpus = gpus_per_worker if gpus > 0 else 0.0
        if workers is None:
            cpus = float(resources.get("CPU", 1.0))
            workers = int(gpus // per_worker_gpus) if per_worker_gpus else int(cpus // max(cpus_per_worker, 1e-9))
        workers = max(1, min(workers, len(clips)))
        # The actors import this package: on one machine (or a shared file system) its folder is put on
        # their path, as it is on the driver's.
        path = os.pathsep.join(p for p in (PACKAGE_PARENT, os.environ.get("PYTHONPATH")) if p)
        actor = ray.remote(_Worker).options(num_cpus=cpus_per_worker, num_gpus=per_worker_gpus,
                                            runtime_env={"env_vars": {"PYTHONPATH": path}})  # fmt: skip
        idle = [actor.remote(config) for _ in range(workers)]
        queue = deque(clips)
        pending: dict[Any, tuple[Any, ClipSource]] = {}
        while queue or pending:
            while idle and queue:
                worker, clip = idle.pop(), queue.popleft()
                pending[worker.run.remote(clip)] = (worker, clip)
            ready, _ = ray.wait(list(pending), num_returns=1)
            worker, clip = pending.pop(ready[0])
            try:
                record = ray.get(ready[0])
                idle.append(worker)
            except ray.exceptions.RayActorError as exc:
                record = _failure(config, clip, f"the Ray worker died: {str(exc).splitlines()[0]}")
                idle.append(actor.remote(config))
            except ray.exceptions.RayTaskError as exc:  # ClipRunner.run records errors; this is a bug or Ctrl-C
                record = _failure(config, clip, f"the Ray task failed: {str(exc).splitlines()[0]}")
                idle.append(worker)
            on_result(record)
    finally:
        if started_here:
            ray.shutdown()
