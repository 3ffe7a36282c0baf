"""Data-parallel training of one architecture through Ray Train (``--workers N``).

``train_parallel(genotype, config, settings, out_dir=...)`` starts ``settings.workers`` Ray Train
workers (``TorchTrainer``: DDP over gloo on CPUs, NCCL on GPUs), each running
``snn_nas.training.data_parallel.train_worker`` on its shard of every epoch. Rank 0 writes
``last.pt`` into ``out_dir`` after every epoch and reports it to Ray Train as the epoch's
checkpoint (``ray.train.report``); a worker that dies makes Ray Train restart the group
(``max_failures``), which resumes from that ``last.pt``, losing at most the epoch in progress
(workers always resume from ``last.pt`` when there is one: the driver removes it first when a
run starts over, so a restarted group never depends on Ray having registered the checkpoint);
a driver that dies is resumed by running the command again (``--resume``). On several nodes,
``out_dir`` must be storage every node reads and writes (as Ray requires of a run's storage).

Before any worker starts: the cluster must place every worker (``placement_refusal``, naming
what is missing) and have a GPU when ``gpus_per_worker`` asks for one. After the run the driver
reads ``last.pt`` and ``status.json`` back into a ``TrainResult``.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from snn_nas.errors import SnnNasError
from snn_nas.training.parallel import ParallelError, ParallelSettings, placement_refusal

RUN_NAME = "retrain"
EPOCH_LOG = "epochs.log"


def check_placement(settings: ParallelSettings, cpus_per_worker: float, nodes: Any = None) -> None:
    """``ParallelError`` when the Ray cluster (its alive nodes now) cannot hold the workers."""
    import ray

    from snn_nas.search.cluster import node_capacity

    capacity = node_capacity(ray.nodes() if nodes is None else nodes)
    refusal = placement_refusal(settings.workers, cpus_per_worker, settings.gpus_per_worker, capacity)
    if refusal:
        raise ParallelError(refusal)


def _worker_loop(cfg: dict[str, Any]) -> None:
    """One Ray Train worker: ``train_worker`` on this worker's device and shard."""
    import ray.train
    import ray.train.torch

    from snn_nas.data import DatasetError
    from snn_nas.genotype import Genotype
    from snn_nas.perf import tune_cpu_allocator
    from snn_nas.training import TrainConfig
    from snn_nas.training.data_parallel import epoch_line, train_worker

    tune_cpu_allocator()
    rank = ray.train.get_context().get_world_rank()
    config = TrainConfig.from_dict(cfg["config"])
    settings = ParallelSettings.from_dict(cfg["settings"])
    out = Path(cfg["out_dir"])

    def on_epoch(epoch: int, metrics: dict[str, Any], path: Path | None) -> None:
        if path is None:
            ray.train.report(dict(metrics))
            return
        with (out / EPOCH_LOG).open("a") as log:
            log.write(epoch_line(metrics, config.epochs) + "\n")
        with tempfile.TemporaryDirectory() as folder:
            shutil.copyfile(path, Path(folder) / path.name)
            ray.train.report(dict(metrics), checkpoint=ray.train.Checkpoint.from_directory(folder))

    try:
        train_worker(
            Genotype.from_dict(cfg["genotype"]), config, settings, rank=rank, device=ray.train.torch.get_device(),
            out_dir=out, resume=True, progress=False, evaluate_test=cfg["evaluate_test"],
            on_epoch=on_epoch,
        )  # fmt: skip
    except DatasetError as exc:  # name the node that cannot read the data
        import ray.util

        raise DatasetError(f"on node {ray.util.get_node_ip_address()}: {exc}") from None


def _tail(path: Path, stop: threading.Event) -> None:
    """Print the lines rank 0 appends to ``path`` until ``stop`` is set (the driver's progress)."""
    seen = 0
    while True:
        done = stop.wait(0.5)
        if path.is_file():
            lines = path.read_text().splitlines()
            for line in lines[seen:]:
                print(line, file=sys.stderr, flush=True)
            seen = len(lines)
        if done:
            return


def train_parallel(
    genotype: Any,
    config: Any,
    settings: ParallelSettings,
    *,
    out_dir: str | Path,
    resume: bool,
    data: Any,
    address: str | None = None,
    num_cpus: int | None = None,
    cpus_per_worker: float = 1.0,
    max_failures: int = 1,
    progress: bool = True,
    evaluate_test: bool = True,
    device: Any = "cpu",
) -> Any:
    """Train under Ray Train (module docstring); returns the ``TrainResult`` rank 0 left behind
    (``model`` rebuilt from ``last.pt`` on ``device``, this process's, where the costs are then
    measured; ``data`` the given splits)."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from snn_nas.checkpoint import BEST, LAST, load_checkpoint, load_model
    from snn_nas.search.cluster import ray_session
    from snn_nas.training import TrainResult
    from snn_nas.training.data_parallel import STATUS

    if address is None:  # the local instance this command starts: refused before it starts
        import os

        import torch

        local = [(float(num_cpus or os.cpu_count() or 1), float(torch.cuda.device_count()))]
        refusal = placement_refusal(settings.workers, cpus_per_worker, settings.gpus_per_worker, local)
        if refusal:
            raise ParallelError(refusal.replace("the Ray cluster", "this machine"))
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    storage = out / "ray"
    if not resume:  # a fresh run: nothing of an earlier one is picked up
        shutil.rmtree(storage / RUN_NAME, ignore_errors=True)
        for name in (LAST, BEST, STATUS):
            (out / name).unlink(missing_ok=True)
    (out / EPOCH_LOG).unlink(missing_ok=True)
    started = time.perf_counter()
    with ray_session(address, num_cpus, False, num_gpus=None):
        check_placement(settings, cpus_per_worker)
        resources = {"CPU": float(cpus_per_worker)}
        if settings.gpus_per_worker:
            resources["GPU"] = float(settings.gpus_per_worker)
        trainer = TorchTrainer(
            _worker_loop,
            train_loop_config={
                "genotype": genotype.to_dict(),
                "config": config.to_dict(),
                "settings": settings.to_dict(),
                "out_dir": str(out),
                "resume": resume,
                "evaluate_test": evaluate_test,
            },
            scaling_config=ScalingConfig(
                num_workers=settings.workers, use_gpu=settings.gpus_per_worker > 0, resources_per_worker=resources
            ),
            run_config=RunConfig(
                name=RUN_NAME,
                storage_path=str(storage),
                failure_config=FailureConfig(max_failures=max_failures),
                checkpoint_config=CheckpointConfig(num_to_keep=1),
            ),
        )
        stop = threading.Event()
        tail = threading.Thread(target=_tail, args=(out / EPOCH_LOG, stop), daemon=True)
        if progress:
            tail.start()
        try:
            trainer.fit()
        except Exception as exc:  # Ray wraps the worker's error; its last line is the reason
            lines = [line for line in str(exc).splitlines() if line.strip()]
            raise SnnNasError(f"data-parallel training failed: {lines[-1] if lines else exc}") from None
        finally:
            stop.set()
            if progress:
                tail.join()
    status_path = out / STATUS
    if not status_path.is_file():
        raise SnnNasError(f"data-parallel training ended without {status_path}: rank 0 did not finish")
    status = json.loads(status_path.read_text())
    history: list[dict[str, Any]] = []
    model = None
    if (out / LAST).is_file():
        history = list(load_checkpoint(out / LAST)["history"])
        model = load_model(out / LAST, map_location=device).to(device)
    if model is None:  # diverged in its first epoch: no checkpoint
        from snn_nas.training.engine import _make_model

        model = _make_model(genotype, data)[0].to(device).eval()
    time_steps = status.get("time_steps")
    last = history[-1] if history else {}
    nan = float("nan")
    watched = [float(h["val_acc"]) for h in history if h.get("val_acc") == h.get("val_acc")]  # not NaN
    return TrainResult(
        status=status["status"],
        error=status["error"],
        val_acc=float(last.get("val_acc", 0.0)),
        best_val_acc=max(watched) if watched else nan,
        val_loss=float(last.get("val_loss", nan)),
        epochs=len(history),
        history=history,
        wall_s=time.perf_counter() - started,
        model=model,
        data=data.at_time_steps(int(time_steps)) if time_steps else data,
        config=config,
        time_steps=time_steps,
        test_acc=status.get("test_acc"),
        test_loss=status.get("test_loss"),
    )
