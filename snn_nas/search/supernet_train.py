"""Training the supernet of an experiment: in this process, or data-parallel through Ray Train.

``train_experiment_supernet(experiment, directory=..., ...)`` trains (or resumes, or finds
finished) the supernet of a search folder, ``<dir>/supernet/supernet.pt``, with the
experiment's ``oneshot.supernet`` settings on the data and held-out split its standalone trials
use. Its checkpoint carries ``metadata``: the space's fingerprint, the data set, image size and
held-out fraction, and the constraints that shape the sampled sub-networks; a checkpoint made
for anything else is refused (``SupernetError``, one line).

With ``workers > 1`` or GPUs (``resources.gpus > 0`` in the experiment), the same training loop
(``snn_nas.supernet.training``) runs under Ray Train's ``TorchTrainer``: one worker per device,
the model wrapped by ``ray.train.torch.prepare_model`` (DDP; every store tensor a sub-network
does not use is an unused parameter of that step), every rank training on its share of each
batch and drawing the same sub-networks. Rank 0 writes ``supernet.pt`` after every epoch, so
``<dir>`` must be on storage every node reads (as Ray requires of a multi-node run's storage).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from snn_nas.supernet import SupernetError
from snn_nas.supernet.checkpoint import CHECKPOINT, read_supernet_state

SUPERNET_DIR = "supernet"


def supernet_metadata(experiment: Any, space: Any, data: Any) -> dict[str, Any]:
    """What a supernet of ``experiment`` must have been trained for (checked on every load)."""
    from snn_nas.search.fingerprint import fingerprint

    return {
        "space_sha256": fingerprint(space, experiment.train_config())["space"]["sha256"],
        "dataset": experiment.dataset,
        "image_size": int(data.image_size),
        "in_chans": int(data.in_chans),
        "num_classes": int(data.num_classes),
        "val_fraction": data.val_fraction,
        "constraints": [[m, float(v)] for m, v in experiment.constraints],
    }


def supernet_path(directory: Path) -> Path:
    return Path(directory) / SUPERNET_DIR / CHECKPOINT


def settings_of(experiment: Any) -> Any:
    """The experiment's supernet settings (its ``oneshot.supernet``, else the defaults)."""
    from snn_nas.supernet.config import SupernetConfig

    return experiment.oneshot.supernet if experiment.oneshot is not None else SupernetConfig()


def finished_epochs(path: Path, metadata: dict[str, Any], settings: Any) -> int | None:
    """Epochs finished by the checkpoint at ``path`` (None when there is none); refuses one made
    for another setting."""
    from snn_nas.supernet.checkpoint import load_supernet

    if not path.is_file():
        return None
    _, state = load_supernet(path, metadata=metadata)  # the check 'supernet show' makes: bounds, weights, progress
    stored = state["config"] if isinstance(state["config"], dict) else {}
    differ = sorted(k for k, v in settings.training_dict().items() if stored.get(k) != v)
    if differ:
        raise SupernetError(
            f"supernet checkpoint {path} was trained with other settings ({', '.join(differ)}); "
            "delete it (or use another --results-dir) to train with these"
        )
    return state["epoch"]


def train_experiment_supernet(
    experiment: Any,
    *,
    directory: Path,
    space: Any,
    resume: bool,
    device: str | None = None,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the supernet of ``experiment`` into ``directory/supernet/`` (resuming a partial one
    when ``resume``); returns ``{"path", "epochs", "history", "trained", "wall_s"}``.

    An existing checkpoint without ``resume`` is refused, unless it is finished and made for
    these settings (then it is used as it is: ``trained`` False).
    """
    import time

    from snn_nas.training import load_config_data

    settings = settings_of(experiment)
    data = load_config_data(experiment.train_config())
    metadata = supernet_metadata(experiment, space, data)
    path = supernet_path(directory)
    done = finished_epochs(path, metadata, settings)
    if done is not None and done >= settings.epochs:
        state = read_supernet_state(path)
        return {"path": path, "epochs": done, "history": state["history"], "trained": False, "wall_s": 0.0}
    if done is not None and not resume:
        raise SupernetError(
            f"supernet checkpoint {path} exists with {done} of {settings.epochs} epochs; "
            "continue it with --resume, or delete it to start over"
        )
    started = time.perf_counter()
    use_gpu = experiment.resources.gpus > 0
    if workers > 1 or (use_gpu and device is None):
        history = _train_with_ray_train(
            experiment, space, settings, metadata, path, workers=workers, use_gpu=use_gpu, progress=progress
        )
    else:
        from snn_nas.supernet.training import train_supernet

        run = train_supernet(
            space, settings, data.without_test(), constraints=experiment.constraints, out_dir=path.parent,
            resume=True, device=device, progress=progress, metadata=metadata,
        )  # fmt: skip
        if run.status != "ok":
            raise SupernetError(f"supernet training {run.status}: {run.error}")
        history = run.history
    return {"path": path, "epochs": len(history), "history": history, "trained": True,
            "wall_s": time.perf_counter() - started}  # fmt: skip


def run_supernet_training(
    experiment: Any,
    *,
    results_dir: str | Path = "results",
    resume: bool = False,
    device: str | None = None,
    workers: int = 1,
    address: str | None = None,
    num_cpus: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """``snn-nas supernet train``: check the data and the device, then train the supernet of
    ``experiment`` into ``<results_dir>/<name>/supernet/`` (in this process, or under Ray Train
    with ``workers > 1`` or GPUs in the experiment's resources)."""
    from snn_nas.search.cluster import ray_session
    from snn_nas.search.layout import search_directory
    from snn_nas.search.preflight import check_before_ray
    from snn_nas.space import load_space
    from snn_nas.training.engine import resolve_device

    space = load_space(experiment.space)
    if device is not None:
        resolve_device(device)  # '--device cuda' without CUDA fails here, before anything runs
    check_before_ray(experiment, space, address=address)
    directory = search_directory(results_dir, experiment.name)
    distributed = workers > 1 or (experiment.resources.gpus > 0 and device is None)
    if not distributed:
        return train_experiment_supernet(
            experiment, directory=directory, space=space, resume=resume, device=device, workers=1, progress=progress
        )
    with ray_session(address, num_cpus, False):
        return train_experiment_supernet(
            experiment, directory=directory, space=space, resume=resume, workers=workers, progress=progress
        )


def _worker_loop(config: dict[str, Any]) -> None:
    """One Ray Train worker: the supernet training loop on this worker's device and batch share."""
    import ray.train
    import ray.train.torch

    from snn_nas.perf import tune_cpu_allocator
    from snn_nas.supernet.training import Worker, train_supernet
    from snn_nas.training import TrainConfig, load_config_data

    tune_cpu_allocator()
    context = ray.train.get_context()
    worker = Worker(rank=context.get_world_rank(), world_size=context.get_world_size())
    data = load_config_data(TrainConfig.from_dict(config["train_config"])).without_test()

    def wrap(net: Any) -> Any:
        return ray.train.torch.prepare_model(net, parallel_strategy_kwargs={"find_unused_parameters": True})

    def on_epoch(metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        ray.train.report(dict(metrics))

    run = train_supernet(
        config["space"], config["settings"], data, constraints=config["constraints"], out_dir=config["out_dir"],
        resume=True, device=ray.train.torch.get_device(), progress=config["progress"] and worker.leads,
        metadata=config["metadata"], worker=worker, wrap=wrap, on_epoch=on_epoch,
    )  # fmt: skip
    if run.status != "ok":
        raise SupernetError(f"supernet training {run.status}: {run.error}")


def _train_with_ray_train(
    experiment: Any,
    space: Any,
    settings: Any,
    metadata: dict[str, Any],
    path: Path,
    *,
    workers: int,
    use_gpu: bool,
    progress: bool,
) -> list[dict[str, Any]]:
    """Data-parallel training under Ray Train (a Ray session must be up); returns the curve."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    resources = {"CPU": float(experiment.resources.cpus)}
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={
            "space": space,
            "settings": settings,
            "train_config": experiment.train_config().to_dict(),
            "constraints": tuple(experiment.constraints),
            "out_dir": str(path.parent),
            "metadata": metadata,
            "progress": progress,
        },
        scaling_config=ScalingConfig(num_workers=max(1, workers), use_gpu=use_gpu, resources_per_worker=resources),
        run_config=RunConfig(
            name="supernet",
            storage_path=str(path.parent.resolve() / "ray"),  # beside supernet.pt, not the search's ray/
            failure_config=FailureConfig(max_failures=experiment.max_failures),
        ),
    )
    try:
        trainer.fit()
    except Exception as exc:  # Ray wraps the worker's error; its last line is the reason
        lines = [line for line in str(exc).splitlines() if line.strip()]
        raise SupernetError(f"data-parallel supernet training failed: {lines[-1] if lines else exc}") from None
    state = read_supernet_state(path)
    if progress:
        print(f"supernet: {state['epoch']} epochs on {workers} worker(s)", file=sys.stderr, flush=True)
    return list(state["history"])
