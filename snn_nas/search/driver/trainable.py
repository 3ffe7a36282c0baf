"""The Ray side of one trial: the function trainable every strategy runs, and what it reports.

``search_trainable`` runs in a Ray worker. It reports the curve of a baseline whose architecture
a warm-start trial shares (``reuse``), or runs the trial:
``runner(sample, space=..., spec=..., baseline=..., report=...)``, by default
``snn_nas.search.trial.run_trial`` (standalone training, or a supernet estimate when the spec
says so). A benchmark passes its own runner, e.g. the stand-in trials of
``snn_nas.search.driver.standin``, to measure the driver without training.

Every record carries ``node``: ``<node ip>/<first 8 characters of the Ray node id>``, the node
the trial ran on (the table's ``node`` column; the summary counts them).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import ray
from ray import tune

BASELINE_PARAM = "_baseline"  # a trial of a seed preset, by name (its config holds only this)
SEED_PARAM = "_seed"  # a trial's own training seed (stage 2 of a one-shot search)

NODE_DIED = "node died"
"""The reason recorded for a trial whose Ray node died under it, after its retries."""
_NODE_DEATH_MARKS = ("NodeDiedError", "node has died", "node died", "raylet died", "node is dead", "NodeDied")


def node_name() -> str:
    """``<ip>/<node id[:8]>`` of the node this code runs on ("" outside Ray)."""
    try:
        return f"{ray.util.get_node_ip_address()}/{ray.get_runtime_context().get_node_id()[:8]}"
    except Exception:
        return ""


def sample_key(space: Any, sample: Mapping[str, Any]) -> str | None:
    """The architecture key of ``sample`` (None when it does not decode)."""
    try:
        return space.decode(dict(sample)).key()
    except Exception:  # an invalid sample is evaluated (and recorded as invalid) by run_trial
        return None


def split_config(config: Mapping[str, Any]) -> tuple[dict[str, Any], str, int | None]:
    """A trial's Ray config -> ``(sample, baseline preset name or "", own seed or None)``."""
    sample = dict(config)
    baseline = str(sample.pop(BASELINE_PARAM, "") or "")
    seed = sample.pop(SEED_PARAM, None)
    return sample, baseline, None if seed is None else int(seed)


def failure_reason(text: str | None) -> str:
    """The reason recorded for a trial that ended in an error: ``node died (...)`` when Ray lost
    the node under it, else the last line of the traceback (``trial.error_line``)."""
    from snn_nas.search.trial import error_line

    line = error_line(text)
    if any(mark in str(text or "") for mark in _NODE_DEATH_MARKS):
        return f"{NODE_DIED} ({line[:200]})"
    return line


def search_trainable(
    config: dict,
    *,
    space: Any,
    spec: Any,
    reuse: Mapping[str, dict] | None = None,
    runner: Callable[..., Any] | None = None,
) -> None:
    """Ray function trainable: one trial (or the reuse of a baseline's result for a search trial
    of the same architecture)."""
    if runner is None:  # training: torch in this worker process, with its CPU share
        import torch

        from snn_nas.perf import tune_cpu_allocator

        torch.set_num_threads(max(1, int(spec.cpus)))
        tune_cpu_allocator()  # keep activation buffers in the heap between steps (see snn_nas/perf.py)
    node = node_name()
    sample, baseline, seed = split_config(config)
    if seed is not None:  # a one-shot search's stage 2 trains some architectures with several seeds
        spec = spec.with_seed(seed)
    reused = reuse.get(sample_key(space, sample) or "") if reuse and not baseline else None
    if reused is not None:  # the warm-start trial of a seed design trained as a baseline
        from snn_nas.search.trial import reuse_records

        for record in reuse_records(reused):
            tune.report({**record, "node": node})
        return
    assigned = _gpu_assignment(spec.gpus)

    def report(rec: dict) -> None:
        device = f"{rec['device']}; {assigned}" if assigned and rec.get("device") else rec.get("device")
        tune.report({**rec, "node": node, "device": device})

    if runner is None:
        from snn_nas.search.trial import run_trial as runner
    runner(sample, space=space, spec=spec, baseline=baseline, report=report)


def _gpu_assignment(gpus: float) -> str:
    """Ray's GPU ids for this worker and its ``CUDA_VISIBLE_DEVICES`` ("" when no GPU was asked for)."""
    if gpus <= 0:
        return ""
    ids = ",".join(str(i) for i in ray.get_gpu_ids()) or "none"
    return f"Ray GPU {ids}, CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}"


def make_trainable(
    space: Any,
    spec: Any,
    reuse: Mapping[str, dict] | None = None,
    runner: Callable[..., Any] | None = None,
) -> Any:
    """``search_trainable`` with its arguments bound and the trial's resources (``spec.cpus``,
    ``spec.gpus``)."""
    trainable = tune.with_parameters(search_trainable, space=space, spec=spec, reuse=dict(reuse or {}), runner=runner)
    return tune.with_resources(trainable, {"cpu": spec.cpus, "gpu": spec.gpus})


def trial_dirname(trial: Any) -> str:
    return f"trial_{trial.trial_id}"
