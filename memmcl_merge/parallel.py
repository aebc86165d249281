"""Population members scored in parallel with Ray: one worker per GPU, or per CPU slot.

Each worker builds its own :class:`~memmcl_merge.evolve.SearchRunner` (live model, task vectors,
lm-eval task objects) once; the driver keeps the optimiser and the journal, so a parallel run writes
the same journal as a serial one. ``RAY_ADDRESS`` selects an existing cluster (Ray's own convention);
without it a local Ray is started with one CPU per worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


class RayPool:
    def __init__(self, cfg, plan, base_path: str, weak_root: Path, workers: int):
        try:
            import ray
        except ImportError:  # pragma: no cover - depends on the optional extra
            raise RuntimeError("evolve.parallel: ray needs the optional extra: pip install 'memmcl-merge[ray]'") from None
        import torch

        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            ray.init(num_cpus=None if _has_address() else workers, include_dashboard=False,
                     log_to_driver=False, ignore_reinit_error=True)
            self._started = True
        gpus = 1 if torch.cuda.is_available() else 0
        worker_cls = ray.remote(num_cpus=1, num_gpus=gpus)(_Worker)
        self.workers = [worker_cls.remote(cfg, plan, base_path, str(weak_root)) for _ in range(workers)]

    def __call__(self, params: list[Mapping]) -> list[dict | Exception]:
        ray = self._ray
        futures = [self.workers[i % len(self.workers)].evaluate.remote(p) for i, p in enumerate(params)]
        out: list[dict | Exception] = []
        for fut in futures:
            try:
                out.append(ray.get(fut))
            except Exception as exc:  # noqa: BLE001 - a worker's failure is that candidate's failure
                out.append(exc)
        return out

    def close(self) -> None:
        for w in self.workers:
            self._ray.kill(w)
        self.workers = []
        if self._started:
            self._ray.shutdown()


class _Worker:
    def __init__(self, cfg, plan, base_path: str, weak_root: str):
        import torch

        from .evolve import SearchRunner

        torch.set_num_threads(1)  # one CPU slot per worker
        self.runner = SearchRunner(cfg, plan, base_path, Path(weak_root))

    def evaluate(self, params: Mapping) -> dict:
        return self.runner(params)


def _has_address() -> bool:
    import os

    return bool(os.environ.get("RAY_ADDRESS"))
