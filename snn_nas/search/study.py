"""The user's Optuna study: ``optuna.db`` beside the results, for optuna-dashboard.

``optuna-dashboard sqlite:///results/<name>/optuna.db`` opens it. It mirrors the result table,
written by the driver as each row is recorded, one Optuna trial per row (per trained or ruled-out
architecture, baselines included), and holds only what a person should read:

* the study's metric names are the experiment's objectives (``val_acc``, ``sops`` ...);
* ``ok`` rows are COMPLETE with their real objective values, unless the front rule of
  ``snn_nas.report.eligibility`` keeps them off every front (chance level, a supernet estimate,
  non-spiking on SOPs): those are PRUNED with the reason in ``not_on_front``, so that
  optuna-dashboard's best trials are the front the other views show; rows stopped early by the
  scheduler are PRUNED; ``invalid`` (ruled out, not trained), ``silent`` (trained but never
  fired), ``failed`` and ``diverged`` rows are FAIL, with the reason in the ``error`` user
  attribute. No trial carries a placeholder value, and duplicate draws of the samplers never
  appear (they live in the samplers' study, ``snn_nas.search.searcher``);
* per-epoch ``val_acc`` are the trial's intermediate values (from the ``curve`` column);
* constraint violations ``value / limit - 1`` (<= 0: satisfied) are stored in the system
  attribute ``constraints`` as a list, where Optuna and optuna-dashboard read them;
* user attributes: ``trial_id`` (the table's), ``key``, ``summary``, ``status``, ``error``,
  ``baseline`` and the costs (``sops``, ``macs``, ``energy_uj``, ``params``, ``time_steps``,
  ``firing_rate``).

A trial is added RUNNING when Ray starts it (``start``) and finished when its row is recorded
(parameters, values, attributes and intermediate values in one transaction: ``_finish``), so
trials are numbered in the order they started and ``datetime_start`` / ``datetime_complete``
are the trial's own start and finish (rows added later, e.g. after a resume, are dated from the
table's ``started_at`` and ``finished_at``). A search trial that reused a baseline's result
(``reused_from``: the warm-start trial of a seed design) is that baseline's trial, not a second
one; the baseline's trial carries a ``note`` saying so.

Parameters are the trial's sample (``{label: value}`` with the space's categorical choices); a
baseline preset that is not a member of the space has none. Baselines appear with their
``baseline`` user attribute, except a non-spiking baseline (family ``snn_mlp``) in a study whose
objectives count SOPs: it has 0 SOPs because it does all its work in MACs, so on that axis it is
not comparable and would sit on the dashboard's front (``snn-nas pareto`` compares it on energy).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna

from snn_nas.search.layout import STUDY_FILE
from snn_nas.search.results import parse_curve
from snn_nas.search.samplers import sqlite_storage
from snn_nas.search.searcher import warnings_quiet
from snn_nas.search.trial import finite_or_none, violations

COST_ATTRS = ("sops", "macs", "energy_uj", "params", "time_steps", "firing_rate", "epochs")
INT_ATTRS = ("params", "time_steps", "epochs")


def user_storage(directory: Path) -> optuna.storages.RDBStorage:
    return sqlite_storage(Path(directory) / STUDY_FILE)


def trial_state(status: str | None) -> optuna.trial.TrialState:
    """The Optuna state of a table row's ``status``."""
    if status == "ok":
        return optuna.trial.TrialState.COMPLETE
    if status == "stopped":
        return optuna.trial.TrialState.PRUNED
    return optuna.trial.TrialState.FAIL


class UserStudy:
    """The user's study of one search; ``add(row, sample)`` mirrors one table row (idempotent
    by ``trial_id``)."""

    def __init__(
        self,
        directory: Path,
        name: str,
        metrics: list[str],
        modes: list[str],
        space: Any,
        constraints: tuple[tuple[str, float], ...] = (),
    ) -> None:
        self.metrics, self.modes, self.space, self.constraints = list(metrics), list(modes), space, tuple(constraints)
        self._rdb = user_storage(directory)  # written directly: one transaction per trial (``_create``, ``_finish``)
        with warnings_quiet():
            self.study = optuna.create_study(
                storage=self._rdb,
                study_name=name,
                directions=["maximize" if mode == "max" else "minimize" for mode in modes],
                load_if_exists=True,
            )
            self.study.set_metric_names(self.metrics)
        self._refresh()

    def _refresh(self) -> None:
        """Read the study's trials once (on opening); afterwards the three maps are kept up to date
        by ``start`` and ``add`` (re-reading every trial after each write made the study's cost per
        trial grow with the history)."""
        trials = self.study.get_trials(deepcopy=False)
        self._recorded = {str(t.user_attrs["trial_id"]) for t in trials if "trial_id" in t.user_attrs}
        self._running = {
            str(t.user_attrs["trial_id"]): t._trial_id
            for t in trials
            if "trial_id" in t.user_attrs and t.state == optuna.trial.TrialState.RUNNING
        }
        self._by_trial = {str(t.user_attrs["trial_id"]): t._trial_id for t in trials if "trial_id" in t.user_attrs}

    def _create(self, trial: optuna.trial.FrozenTrial, trial_id: str, *, running: bool) -> None:
        with warnings_quiet():
            number_id = self._rdb.create_new_trial(self.study._study_id, template_trial=trial)
        self._recorded.add(trial_id)
        self._by_trial[trial_id] = number_id
        if running:
            self._running[trial_id] = number_id

    def __contains__(self, trial_id: object) -> bool:
        return str(trial_id) in self._recorded

    def sync(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Add the rows not yet in the study, in the order they started (after a resume, or a
        crash between the table and the study write); their samples are recovered from the
        genotypes. Returns how many were added."""
        added = 0
        for row in sorted(rows, key=_start_time):
            trial_id = str(row.get("trial_id"))
            if trial_id not in self._recorded or trial_id in self._running:
                self.add(row, None)
                added += 1
        return added

    def start(self, trial_id: str, sample: Mapping[str, Any] | None, started_at: float, *, baseline: str = "") -> None:
        """A RUNNING trial for a trial Ray just started, so that the study numbers trials in the
        order they started; ``add`` finishes it and writes its parameters (``sample`` is not
        written here). A non-spiking baseline in a study that counts SOPs is left out (see the
        module docstring)."""
        if str(trial_id) in self._recorded:
            return
        if baseline and "sops" in self.metrics:
            from snn_nas.presets import get_preset

            if not get_preset(baseline).is_spiking:
                return
        attrs: dict[str, Any] = {"trial_id": str(trial_id), "status": "running"}
        if baseline:
            attrs["baseline"] = baseline
        # no parameters yet: Optuna writes each with two ORM queries (a tenth of the driver's time at
        # hundreds of trials a minute); ``add`` writes them with the result, in one transaction
        trial = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING, user_attrs=attrs)
        trial.datetime_start = datetime.fromtimestamp(started_at)
        self._create(trial, str(trial_id), running=True)

    def add(self, row: Mapping[str, Any], sample: Mapping[str, Any] | None, *, note: str = "") -> None:
        """Mirror ``row`` (a normalised result-table row); ``sample`` is its ``{label: value}``
        (None: recovered from the row's genotype when the space holds it). Finishes the trial
        ``start`` created, or adds a finished one dated from the row's ``started_at`` and
        ``finished_at``. A search row that reused a baseline's result (``reused_from``) is that
        baseline's trial: not added twice (the baseline's trial carries a ``note`` saying so, given
        when it was added)."""
        trial_id = str(row.get("trial_id"))
        if trial_id in self._recorded and trial_id not in self._running:
            return
        if self._incomparable(row):
            return
        reused = str(row.get("reused_from") or "")
        if reused and reused in self._by_trial:  # the baseline's trial says so (``note``)
            self._recorded.add(trial_id)
            return
        params, distributions = self._params(row, sample)
        state, values, attrs, system, intermediate = self._content(row)
        if note:
            attrs["note"] = note
        if trial_id in self._running:
            self._finish(self._running.pop(trial_id), params, distributions, state, values, attrs, system, intermediate)
            return
        trial = optuna.trial.create_trial(
            state=state,
            values=values,
            params=params,
            distributions=distributions,
            user_attrs=attrs,
            system_attrs=system,
            intermediate_values=intermediate,
        )
        finished = finite_or_none(row.get("finished_at"))
        if finished is not None:
            trial.datetime_complete = datetime.fromtimestamp(finished)
            trial.datetime_start = datetime.fromtimestamp(_start_time(row))
        self._create(trial, trial_id, running=False)

    def _content(self, row: Mapping[str, Any]) -> tuple[Any, Any, dict[str, Any], dict[str, Any], dict[int, float]]:
        """State, values, user and system attributes, intermediate values of ``row``."""
        status = row.get("status")
        state = trial_state(status)
        values = None
        attrs: dict[str, Any] = {"trial_id": str(row.get("trial_id")), "status": status}
        if state == optuna.trial.TrialState.COMPLETE:
            values = [finite_or_none(row.get(m)) for m in self.metrics]
            if any(v is None for v in values):  # an ok row without finite objectives is not a result
                state, values = optuna.trial.TrialState.FAIL, None
            else:
                why = self._off_front(row)
                if why:  # trained to the end, but no front candidate: not among the best trials
                    state, values = optuna.trial.TrialState.PRUNED, None
                    attrs["not_on_front"] = why
        for name in ("key", "summary", "error", "baseline"):
            if row.get(name):
                attrs[name] = str(row[name])
        for name in COST_ATTRS:
            value = finite_or_none(row.get(name))
            if value is not None:
                attrs[name] = int(value) if name in INT_ATTRS else value
        if finite_or_none(row.get("val_acc")) is not None:
            attrs["val_acc"] = float(row["val_acc"])
        system: dict[str, Any] = {}
        if self.constraints and self._constraints_known(row):
            system["constraints"] = violations(row, self.constraints)
        intermediate = {
            int(point["epoch"]): float(point["val_acc"])
            for point in parse_curve(row.get("curve"))
            if point.get("epoch") is not None and finite_or_none(point.get("val_acc")) is not None
        }
        return state, values, attrs, system, intermediate

    def _off_front(self, row: Mapping[str, Any]) -> str | None:
        """Why an ``ok`` row may not be among the dashboard's best trials (the front rule of
        ``snn_nas.report.eligibility``: chance level, supernet estimate, non-spiking on SOPs)."""
        from snn_nas.report.eligibility import EXCLUSIONS, front_exclusion

        accuracy = next((m for m, mode in zip(self.metrics, self.modes, strict=True) if mode == "max"), "val_acc")
        costs = [m for m in self.metrics if m != accuracy]
        x = "sops" if "sops" in costs else (costs[0] if costs else "sops")
        reason = front_exclusion(row, x=x, y=accuracy)
        if reason in (None, "infeasible"):  # the dashboard reads the constraints itself
            return None
        return EXCLUSIONS[reason]

    def _finish(self, number_id: int, params, distributions, state, values, attrs, system, intermediate) -> None:
        """Finish the RUNNING trial ``number_id`` in one transaction of bulk statements on Optuna's
        tables. Optuna's storage API commits every parameter and attribute on its own, each after
        an ORM look-up of the trial: about 45 round trips per trial of the quick space, most of
        the driver's time at hundreds of trials a minute. The rows written are the ones those
        calls write (``optuna.storages._rdb.models``; ``tests/test_search_study.py`` compares a
        trial finished here with one finished through the API)."""
        import sqlalchemy
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        def replace_rows(model: Any, keyed: list[dict[str, Any]], key: str) -> None:
            if not keyed:
                return
            table = model.__table__
            session.execute(
                sqlalchemy.delete(table).where(
                    table.c.trial_id == number_id, table.c[key].in_([row[key] for row in keyed])
                )
            )
            session.execute(sqlalchemy.insert(table), keyed)

        with warnings_quiet(), _create_scoped_session(self._rdb.scoped_session, True) as session:
            replace_rows(models.TrialParamModel, [
                {"trial_id": number_id, "param_name": name, "param_value": distributions[name].to_internal_repr(value),
                 "distribution_json": optuna.distributions.distribution_to_json(distributions[name])}
                for name, value in params.items()
            ], "param_name")  # fmt: skip
            replace_rows(models.TrialUserAttributeModel, [
                {"trial_id": number_id, "key": k, "value_json": json.dumps(v)} for k, v in attrs.items()
            ], "key")  # fmt: skip
            replace_rows(models.TrialSystemAttributeModel, [
                {"trial_id": number_id, "key": k, "value_json": json.dumps(v)} for k, v in system.items()
            ], "key")  # fmt: skip
            steps = []
            for step, value in intermediate.items():
                stored, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(value)
                steps.append({"trial_id": number_id, "step": step, "intermediate_value": stored,
                              "intermediate_value_type": kind})  # fmt: skip
            replace_rows(models.TrialIntermediateValueModel, steps, "step")
            objectives = []
            for objective, value in enumerate(values or ()):
                stored, kind = models.TrialValueModel.value_to_stored_repr(value)
                objectives.append({"trial_id": number_id, "objective": objective, "value": stored, "value_type": kind})
            replace_rows(models.TrialValueModel, objectives, "objective")
            trials = models.TrialModel.__table__
            session.execute(
                sqlalchemy.update(trials)
                .where(trials.c.trial_id == number_id)
                .values(state=state, datetime_complete=datetime.now())
            )

    def _incomparable(self, row: Mapping[str, Any]) -> bool:
        """A non-spiking baseline in a study that counts SOPs (see the module docstring)."""
        if not row.get("baseline") or "sops" not in self.metrics:
            return False
        try:
            return json.loads(str(row.get("genotype"))).get("family") == "snn_mlp"
        except (ValueError, AttributeError):
            return False

    def _constraints_known(self, row: Mapping[str, Any]) -> bool:
        return all(finite_or_none(row.get(metric)) is not None for metric, _ in self.constraints)

    def _params(
        self, row: Mapping[str, Any], sample: Mapping[str, Any] | None
    ) -> tuple[dict[str, Any], dict[str, optuna.distributions.BaseDistribution]]:
        if sample is None:
            sample = _recover_sample(self.space, row.get("genotype"))
        params: dict[str, Any] = {}
        distributions: dict[str, optuna.distributions.BaseDistribution] = {}
        by_label = getattr(self.space, "by_label", {})
        for label, value in (sample or {}).items():
            dim = by_label.get(label)
            if dim is None or dim.index(value) is None:
                continue
            choices = tuple(dim.choices)
            params[label] = choices[dim.index(value)]
            distributions[label] = optuna.distributions.CategoricalDistribution(choices)
        return params, distributions


def _start_time(row: Mapping[str, Any]) -> float:
    """When a row's trial started: ``started_at``, else ``finished_at - wall_s`` (older tables)."""
    started = finite_or_none(row.get("started_at"))
    if started is not None:
        return started
    finished = finite_or_none(row.get("finished_at"))
    wall = finite_or_none(row.get("wall_s")) or 0.0
    return finished - wall if finished is not None else 0.0


def _recover_sample(space: Any, genotype_json: Any) -> dict[str, Any] | None:
    if not genotype_json or not isinstance(genotype_json, str):
        return None
    from snn_nas.errors import SnnNasError
    from snn_nas.genotype import Genotype

    try:
        return space.encode(Genotype.from_dict(json.loads(genotype_json)))
    except (SnnNasError, ValueError, TypeError):
        return None


def check_user_study(directory: Path) -> None:
    """Before a resumed search starts Ray: ``optuna.db`` must be a readable Optuna storage (a
    damaged file is a ``SearchError`` naming it and what to do, not an SQL traceback at the
    end). It mirrors the table, so moving it away loses nothing: the resume rebuilds it."""
    from snn_nas.search.layout import SearchError

    path = Path(directory) / STUDY_FILE
    if not path.exists():
        return
    try:
        with warnings_quiet():
            optuna.get_all_study_names(user_storage(directory))
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise SearchError(
            f"{path}: the search's Optuna study cannot be read ({type(exc).__name__}: {reason}); it mirrors the "
            f"table, so move it away (mv {path} {path}.damaged) and resume: it is rebuilt from the table"
        ) from None


def close_user_study(directory: Path, name: str, rows: Iterable[Mapping[str, Any]]) -> None:
    """After a complete search: a trial still RUNNING in the user's study whose Ray trial never
    finished (killed, and not resumed under the same id) is marked FAIL with the reason."""
    import contextlib

    recorded = {str(r.get("trial_id")) for r in rows}
    with contextlib.suppress(KeyError), warnings_quiet():
        study = optuna.load_study(study_name=name, storage=user_storage(directory))
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            if str(trial.user_attrs.get("trial_id")) in recorded:
                continue
            with contextlib.suppress(Exception):
                study._storage.set_trial_user_attr(trial._trial_id, "error", "interrupted: the search was stopped")
                study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
