"""A two-stage (one-shot) search: many architectures ranked on a supernet, the best of them
trained standalone. Selected by an experiment's ``oneshot:`` block
(``snn_nas.search.oneshot_settings``); ``run_search`` calls ``run_two_stages`` after the seed
designs' baseline rows.

0. **Supernet**: trained (or resumed, or found finished) in ``<dir>/supernet/``
   (``snn_nas.search.supernet_train``), on the training part the standalone trials use.
1. **Stage 1**: ``trials`` architectures drawn by the experiment's sampler (warm start,
   pre-screen and scheduler as configured) and evaluated *on the supernet*, each an ordinary Ray
   Tune trial (``snn_nas.search.supernet_trial``): rows with ``proxy: supernet``, Ray run
   ``ray/stage1``, Optuna studies ``<name>.stage1``. These rows never stand on a front.
2. **Stage 2**: the candidates of ``snn_nas.search.selection.stage2_candidates`` (top of stage 1's
   front, a spread along it, the best estimates next to each seed design's cost, the warm-start
   designs, whose seed design's baseline result is reused as in the default search) train standalone at the
   experiment's ``fidelity``, from scratch or from the supernet's weights (``stage2.init``); the
   ones next to a seed design with ``stage2.seeds`` seeds, and each spiking seed design gets as
   many seeds. Rows with ``proxy: standalone``, Ray run ``ray/stage2``: the reported front.

``<dir>/oneshot.json`` records the supernet, the candidates (and why each was chosen) and the
verdict on every spiking seed design, made on the means over seeds with their spread
(``snn_nas.search.selection.mean_verdict``). A killed search resumes stage by stage: a finished
supernet and finished stage-1 trials are kept, stage 2 trains only the (architecture, seed)
pairs that have no row yet.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from snn_nas.search.selection import Candidate, design_verdicts, stage2_candidates

STAGE1_RUN = "stage1"
STAGE2_RUN = "stage2"
SUMMARY_FILE = "oneshot.json"


def is_stage1(row: Mapping[str, Any]) -> bool:
    """A stage-1 row: an architecture evaluated on the supernet."""
    return str(row.get("proxy") or "") == "supernet" and not row.get("baseline")


def is_stage2(row: Mapping[str, Any]) -> bool:
    """A standalone search row of a one-shot search (seed designs aside)."""
    return not row.get("baseline") and str(row.get("proxy") or "standalone") != "supernet"


def trained_in_stage2(row: Mapping[str, Any], *, seed: int) -> bool:
    """A row stage 2 trains: a standalone search row, or a seed design's row of another seed than
    the search's own (its first row is trained before stage 1, with the search's seed)."""
    return is_stage2(row) or (bool(row.get("baseline")) and row.get("seed") != seed)


def _axes(experiment: Any) -> tuple[str, str]:
    """``(x, y)``: the cost minimised and the accuracy maximised."""
    y = next((o.metric for o in experiment.objectives if o.mode == "max"), "val_acc")
    x = next((o.metric for o in experiment.objectives if o.mode == "min"), "sops")
    return x, y


def _say(show: bool, text: str) -> None:
    if show:
        print(text, file=sys.stderr, flush=True)


def run_two_stages(
    experiment: Any, directory: Path, space: Any, spec: Any, resume: bool, show: bool, *, workers: int = 1
) -> bool:
    """Supernet, stage 1, stage 2 (module docstring); True when all three finished."""
    from snn_nas.search.driver import run_sampled
    from snn_nas.search.results import ResultStore
    from snn_nas.search.supernet_train import settings_of, train_experiment_supernet

    settings = settings_of(experiment)
    supernet = train_experiment_supernet(
        experiment, directory=directory, space=space, resume=True, progress=show, workers=workers
    )
    verb = "trained" if supernet["trained"] else "found"
    _say(show, f"supernet: {verb} {supernet['epochs']} epochs ({supernet['path']}), {supernet['wall_s']:.0f} s")
    oneshot = {
        **settings.to_dict(),
        "proxy": "supernet",
        "checkpoint": Path(supernet["path"]).relative_to(directory).as_posix(),  # the folder stays relocatable
        "supernet_epochs": int(supernet["epochs"]),
    }
    spec = replace(spec, results_dir=str(directory))
    stage1_spec = replace(spec, oneshot=tuple(sorted(oneshot.items())))
    stage1 = replace(experiment, name=f"{experiment.name}.stage1")
    _say(show, f"stage 1: {experiment.trials} architectures evaluated on the supernet")
    if not run_sampled(stage1, directory, space, stage1_spec, resume, show, run=STAGE1_RUN, include=is_stage1):
        return False
    rows = ResultStore(directory).rows()
    candidates = select_candidates(experiment, rows, space)
    todo, total = stage2_configs(experiment, space, rows, candidates)
    reasons = sorted({"near a seed design" if r.startswith("near ") else r for c in candidates for r in c.reasons})
    _say(show, f"stage 2: {len(candidates)} candidates chosen on the supernet ({', '.join(reasons)}), "
               f"{total} standalone trainings ({total - len(todo)} done)")  # fmt: skip
    stage2_spec = spec
    if experiment.oneshot.stage2.init == "inherit":
        inherit = {**settings.to_dict(), "init": "inherit", "checkpoint": oneshot["checkpoint"]}
        stage2_spec = replace(spec, oneshot=tuple(sorted(inherit.items())))
    reuse = stage2_reuse(experiment, rows, stage2_spec, candidates)
    complete = _run_stage2(experiment, directory, space, stage2_spec, todo, total, show, reuse) if todo else True
    write_summary(experiment, directory, supernet, candidates, ResultStore(directory).rows())
    return complete  # the verdict lines are in the search's summary (cli.search)


def select_candidates(experiment: Any, rows: list[dict[str, Any]], space: Any) -> list[Candidate]:
    """The stage-2 candidates of the stage-1 rows in ``rows`` (``selection.stage2_candidates``),
    the warm-start designs of ``space`` among them."""
    from snn_nas.report.eligibility import dataset_classes
    from snn_nas.search.prescreen import warm_start_keys

    x, y = _axes(experiment)
    settings = experiment.oneshot.stage2
    return stage2_candidates(
        [r for r in rows if is_stage1(r)], x=x, y=y, top=settings.top, spread=settings.spread,
        near_baselines=settings.near_baselines, seeds=settings.seeds, base_seed=experiment.seed,
        baseline_costs=baseline_costs(experiment, rows), num_classes=dataset_classes(experiment.dataset),
        near_band=settings.near_band, warm_keys=sorted(warm_start_keys(experiment, space)),
    )  # fmt: skip


def stage2_reuse(
    experiment: Any, rows: list[dict[str, Any]], spec: Any, candidates: list[Candidate]
) -> dict[str, dict[str, Any]]:
    """``key -> baseline row`` whose result a stage-2 trial of a warm-start design reuses: the
    seed design's row of the search's own seed, trained at stage 2's fidelity (the default
    search's warm-start trial does the same, ``snn_nas.search.trial.reusable_baselines``)."""
    from snn_nas.search.trial import reusable_baselines

    warm = {c.key for c in candidates if "warm start" in c.reasons and c.seeds == (experiment.seed,)}
    own_seed = [r for r in rows if r.get("baseline") and r.get("seed") == experiment.seed]
    return {k: r for k, r in reusable_baselines(own_seed, spec).items() if k in warm}


def baseline_costs(experiment: Any, rows: list[dict[str, Any]]) -> dict[str, float]:
    """``name -> cost`` of the seed designs that may stand on the front (spiking on the SOP axis,
    trained ok): those whose neighbourhood stage 2 trains with several seeds."""
    from snn_nas.report.eligibility import front_exclusion

    x, y = _axes(experiment)
    out: dict[str, float] = {}
    for row in rows:
        name = str(row.get("baseline") or "")
        if name and name not in out and front_exclusion(row, x=x, y=y) is None:
            out[name] = float(row[x])
    return out


def stage2_configs(
    experiment: Any, space: Any, rows: list[dict[str, Any]], candidates: list[Candidate]
) -> tuple[list[dict[str, Any]], int]:
    """``(todo, total)``: the stage-2 trial configurations without a row yet, and how many there
    are in all. A configuration is a sample with its ``_seed``, or a seed design with its. The
    warm-start designs (reused, so free), then the candidates next to a seed design come first: a
    search stopped early still has what decides its verdict on the seed designs."""
    from snn_nas.search.driver import BASELINE_PARAM, SEED_PARAM

    by_id = {str(r["trial_id"]): r for r in rows}
    done_search = {(str(r.get("key")), r.get("seed")) for r in rows if is_stage2(r)}
    done_base = {(str(r.get("baseline")), r.get("seed")) for r in rows if r.get("baseline")}
    warm = [c for c in candidates if "warm start" in c.reasons]  # free: the baseline's result is reused
    first = warm + [c for c in candidates if len(c.seeds) > 1 and c not in warm]  # they decide the verdict
    configs: list[tuple[dict[str, Any], bool]] = []  # (configuration, done)
    for candidate in first:
        configs += _candidate_configs(space, by_id, candidate, done_search)
    seeds = experiment.oneshot.stage2.seeds
    for name in baseline_costs(experiment, rows):
        for seed in range(experiment.seed + 1, experiment.seed + seeds):
            configs.append(({BASELINE_PARAM: name, SEED_PARAM: seed}, (name, seed) in done_base))
    for candidate in (c for c in candidates if c not in first):
        configs += _candidate_configs(space, by_id, candidate, done_search)
    return [config for config, done in configs if not done], len(configs)


def _candidate_configs(
    space: Any, by_id: Mapping[str, Mapping[str, Any]], candidate: Candidate, done: set[tuple[str, Any]]
) -> list[tuple[dict[str, Any], bool]]:
    """``(configuration, done)`` of each of ``candidate``'s seeds (``stage2_configs``)."""
    from snn_nas.genotype import Genotype
    from snn_nas.search.driver import SEED_PARAM

    sample = space.encode(Genotype.from_json(str(by_id[candidate.trial_id]["genotype"])))
    return [({**sample, SEED_PARAM: seed}, (candidate.key, seed) in done) for seed in candidate.seeds]


def _run_stage2(
    experiment: Any,
    directory: Path,
    space: Any,
    spec: Any,
    todo: list[dict[str, Any]],
    total: int,
    show: bool,
    reuse: dict[str, dict[str, Any]],
) -> bool:
    from snn_nas.search.driver import run_fixed

    return run_fixed(
        experiment,
        directory,
        space,
        spec,
        todo,
        run=STAGE2_RUN,
        title=f"{experiment.name} stage 2",
        total=total,
        show=show,
        include=functools.partial(trained_in_stage2, seed=experiment.seed),
        reuse=reuse,
    )


# ---------------------------------------------------------------------------- the record
def verdicts(experiment: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per spiking seed design: its seed means, the best standalone architecture at or below its
    cost and the ones dominating it, all on seed means (``selection.mean_verdict``)."""
    from snn_nas.report.eligibility import front_exclusion

    x, y = _axes(experiment)
    eligible = [r for r in rows if r.get("status") == "ok" and front_exclusion(r, x=x, y=y) is None]
    designs = {name: [r for r in eligible if r.get("baseline") == name] for name in baseline_costs(experiment, rows)}
    return [
        {
            "baseline": name,
            "baseline_mean": mean.__dict__,
            "best_at_or_below_cost": best.__dict__ if best else None,
            "dominated_by": [d.__dict__ for d in dominating],
            "dominated": bool(dominating),
            "line": line,
        }
        for name, mean, line, best, dominating in design_verdicts(designs, filter(is_stage2, eligible), x, y)
    ]


def write_summary(
    experiment: Any, directory: Path, supernet: dict[str, Any], candidates: list[Candidate], rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """Write ``oneshot.json`` (supernet, stage counts, candidates, verdicts); returns it with the
    verdict lines."""
    by_id = {str(r["trial_id"]): r for r in rows}
    x, y = _axes(experiment)
    found = verdicts(experiment, rows)
    summary = {
        "supernet": {
            "path": Path(supernet["path"]).relative_to(directory).as_posix(),  # relative: the folder may move
            "epochs": supernet["epochs"],
            "history": supernet["history"],
        },
        "stage1": {
            "trials": sum(1 for r in rows if is_stage1(r)),
            "ok": sum(1 for r in rows if is_stage1(r) and r.get("status") == "ok"),
        },
        "stage2": {
            "init": experiment.oneshot.stage2.init,
            "candidates": [
                {
                    "key": c.key,
                    "trial_id": c.trial_id,
                    "seeds": list(c.seeds),
                    "reasons": list(c.reasons),
                    f"supernet_{y}": by_id.get(c.trial_id, {}).get(y),
                    x: by_id.get(c.trial_id, {}).get(x),
                }
                for c in candidates
            ],
            "trained": sum(1 for r in rows if is_stage2(r)),
        },
        "verdicts": [{k: v for k, v in v.items() if k != "line"} for v in found],
    }
    from snn_nas.jsonutil import finite_or_null

    (Path(directory) / SUMMARY_FILE).write_text(json.dumps(finite_or_null(summary), indent=2, default=str) + "\n")
    return {**summary, "verdict_lines": [v["line"] for v in found]}
