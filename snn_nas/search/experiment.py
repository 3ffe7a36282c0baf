"""Experiment files: one YAML file describes a whole search.

Schema (every key optional except ``space``; defaults in brackets)::

    name: quick                   # results go to <results-dir>/<name>/ [the file's stem]
    description: free text
    space: quick                  # a search-space file: a path (relative to this file or the
                                  # working directory) or a name under search_spaces/
    dataset: mnist5k              # registry name, options allowed ("synthetic:train=64") [mnist5k]
    data_root: null               # folder of datasets that live on disk (CIFAR, ImageNet)
    fidelity:                     # TrainConfig fields except dataset, data_root and seed
      epochs: 2
      image_size: 16
    trials: 16                    # number of sampled trials [16]
    sampler: tpe                  # tpe | nsga2 | gp | random  [tpe]
    sampler_options: {}           # keyword arguments of the Optuna sampler (population_size, ...)
    objectives:                   # metric: max | min, in order [val_acc: max, sops: min]
      val_acc: max
      sops: min
    constraints:                  # upper bounds; a violating trial is marked infeasible
      max_params: 200000          # (checked before training: such a trial is not trained)
      max_sops: null
    scheduler:                    # none | asha (val_acc only) | moasha (every objective) [none]
      type: moasha                # stops weak trials at rungs grace_period * reduction_factor^k
      grace_period: 1             # epochs (snn_nas.search.scheduler)
      reduction_factor: 2
    prescreen:                    # optional: before the sampler's own draws, score `pool` random
      pool: 64                    # architectures without training (SAHD, snn_nas.zero_cost) and
      keep: 8                     # train the `keep` best (non-dominated on SAHD x cost) first
    warm_start: baselines         # baselines | none | [preset, ...]: seed designs that are members
                                  # of the space are trained first, as normal trials [baselines];
                                  # or {from: baselines, mutants: 8}: each followed by 8 of its
                                  # single-label mutants spread along the cost axis below it
    resources: {cpus: 1, gpus: 0} # per trial; fractional GPUs allowed
    max_concurrent: 2             # trials running at once [2]
    max_failures: 1               # retries of a trial whose Ray worker died [1]
    seed: 0                       # sampler seed and training seed [0]
    costs:                        # the cost model's calibration batch and energy constants
      calibration_images: 64
      energy_per_sop_pj: 0.9
      energy_per_mac_pj: 4.6
    baselines: [mlp_spe_micro, snn_mlp_micro]   # presets evaluated at the same fidelity (unless
                                                # --no-baselines), as reference points
    reference_point: {val_acc: 0.0, sops: 1.0e+6} # hypervolume reference of 'snn-nas pareto'
    oneshot: {supernet: {...}, stage2: {...}}     # a two-stage weight-sharing search: `trials`
                                                # architectures explored on a supernet, the best
                                                # of their front trained standalone at `fidelity`
                                                # (snn_nas.search.oneshot_settings)

Loading validates everything that can be checked without running; errors name the file, the
key and what is allowed.
"""

from __future__ import annotations

import contextlib
import math
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from snn_nas.errors import SnnNasError

SAMPLERS = ("tpe", "nsga2", "gp", "random")
SCHEDULERS = ("none", "asha", "moasha")
MODES = ("max", "min")
OBJECTIVE_METRICS = ("val_acc", "sops", "energy_uj", "macs", "params", "time_steps", "firing_rate")
CONSTRAINT_METRICS = {"max_params": "params", "max_sops": "sops", "max_macs": "macs", "max_energy_uj": "energy_uj"}
FIDELITY_RESERVED = ("dataset", "data_root", "seed")
DEFAULT_BASELINES = ("mlp_spe_micro", "snn_mlp_micro")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ExperimentError(SnnNasError, ValueError):
    """An invalid experiment file; the message names the file, the key and what is allowed."""


@dataclass(frozen=True)
class Objective:
    """One objective: a result-table metric and whether to maximise or minimise it."""

    metric: str
    mode: str


@dataclass(frozen=True)
class Scheduler:
    """Trial scheduler: ``none`` (run every trial to the end), ``asha`` (stops on ``val_acc``
    alone) or ``moasha`` (stops by non-dominated sorting over every objective)."""

    kind: str = "none"
    grace_period: int = 1
    reduction_factor: float = 2.0


@dataclass(frozen=True)
class Prescreen:
    """Training-free pre-screening: score ``pool`` random architectures at initialisation and
    enqueue the best ``keep`` as the first trials (``keep`` 0: off)."""

    pool: int = 0
    keep: int = 0

    @property
    def enabled(self) -> bool:
        return self.keep > 0


@dataclass(frozen=True)
class Resources:
    """Ray resources of one trial (fractional GPUs share a device)."""

    cpus: float = 1.0
    gpus: float = 0.0


@dataclass(frozen=True)
class CostSettings:
    """Calibration batch size (validation images) and the energy constants of the cost model."""

    calibration_images: int = 64
    energy_per_sop_pj: float = 0.9
    energy_per_mac_pj: float = 4.6


@dataclass(frozen=True)
class Experiment:
    """A whole search, as read from an experiment file (primitives and tuples only).

    ``fidelity`` holds ``(field, value)`` pairs of ``TrainConfig`` (without ``dataset``,
    ``data_root`` and ``seed``, which come from the experiment); ``constraints`` holds
    ``(metric, upper bound)`` pairs with metric one of ``params``, ``sops``, ``macs``,
    ``energy_uj``; ``sampler_options`` holds keyword arguments of the Optuna sampler.
    """

    name: str
    space: str
    dataset: str = "mnist5k"
    data_root: str | None = None
    fidelity: tuple[tuple[str, Any], ...] = ()
    trials: int = 16
    sampler: str = "tpe"
    sampler_options: tuple[tuple[str, Any], ...] = ()
    objectives: tuple[Objective, ...] = (Objective("val_acc", "max"), Objective("sops", "min"))
    constraints: tuple[tuple[str, float], ...] = ()
    scheduler: Scheduler = field(default_factory=Scheduler)
    resources: Resources = field(default_factory=Resources)
    max_concurrent: int = 2
    max_failures: int = 1
    seed: int = 0
    costs: CostSettings = field(default_factory=CostSettings)
    baselines: tuple[str, ...] = DEFAULT_BASELINES
    reference_point: tuple[tuple[str, float], ...] = ()
    prescreen: Prescreen = field(default_factory=Prescreen)
    warm_start: tuple[str, ...] | str = "baselines"
    warm_mutants: int = 0
    oneshot: Any = None  # snn_nas.search.oneshot_settings.OneShot, or None (a one-stage search)
    description: str = ""
    source: str = ""

    # ------------------------------------------------------------------ derived views
    @property
    def metrics(self) -> list[str]:
        return [o.metric for o in self.objectives]

    @property
    def modes(self) -> list[str]:
        return [o.mode for o in self.objectives]

    def train_config_dict(self) -> dict[str, Any]:
        """The ``TrainConfig`` fields of every trial (fidelity plus dataset, data root, seed)."""
        return {**dict(self.fidelity), "dataset": self.dataset, "data_root": self.data_root, "seed": self.seed}

    def train_config(self) -> Any:
        """The ``TrainConfig`` of every trial; raises ``ExperimentError`` naming the bad field."""
        from snn_nas.training.config import TrainConfig

        try:
            return TrainConfig.from_dict(self.train_config_dict())
        except SnnNasError as exc:
            raise ExperimentError(f"{self.source or self.name}: fidelity: {exc}") from None

    def constraint_limits(self) -> dict[str, float]:
        return dict(self.constraints)

    def with_overrides(self, *, name: str | None = None, trials: int | None = None) -> Experiment:
        """A copy with the command-line overrides applied (validated)."""
        changes: dict[str, Any] = {}
        if name is not None:
            _check_name(self.source or "--name", name)
            changes["name"] = name
        if trials is not None:
            if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
                raise ExperimentError(f"--num-samples: expected an integer >= 1, got {trials!r}")
            changes["trials"] = trials
        return replace(self, **changes)

    def _warm_start_entry(self) -> Any:
        designs = self.warm_start if isinstance(self.warm_start, str) else list(self.warm_start)
        return {"from": designs, "mutants": self.warm_mutants} if self.warm_mutants else designs

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """The experiment as an experiment-file mapping (``from_dict`` reads it back)."""
        return {
            "name": self.name,
            "description": self.description,
            "space": self.space,
            "dataset": self.dataset,
            "data_root": self.data_root,
            "fidelity": dict(self.fidelity),
            "trials": self.trials,
            "sampler": self.sampler,
            "sampler_options": dict(self.sampler_options),
            "objectives": {o.metric: o.mode for o in self.objectives},
            "constraints": {f"max_{metric}": limit for metric, limit in self.constraints},
            "scheduler": {"type": self.scheduler.kind, **_without(asdict(self.scheduler), "kind")},
            "resources": asdict(self.resources),
            "max_concurrent": self.max_concurrent,
            "max_failures": self.max_failures,
            "seed": self.seed,
            "costs": asdict(self.costs),
            "baselines": list(self.baselines),
            **({"reference_point": dict(self.reference_point)} if self.reference_point else {}),
            **({"prescreen": asdict(self.prescreen)} if self.prescreen.enabled else {}),
            "warm_start": self._warm_start_entry(),
            **({"oneshot": self.oneshot.to_dict()} if self.oneshot is not None else {}),
        }

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "experiment", base_dir: Path | None = None) -> Experiment:
        """Validate a mapping read from an experiment file; ``source`` names it in errors."""
        return _parse(data, source=source, base_dir=base_dir)


# ---------------------------------------------------------------------- loading
def find_experiment(path_or_name: str | Path) -> Path:
    """Resolve an experiment file: a path, or a name under ``experiments/``.

    Names are looked up in ``./experiments/`` and then in the ``experiments/`` folder of the
    snn-nas checkout, with or without the ``.yaml`` suffix.
    """
    text = str(path_or_name)
    candidate = Path(text).expanduser()
    if candidate.is_file():
        return candidate.resolve()
    names = [text] if text.endswith((".yaml", ".yml")) else [f"{text}.yaml", f"{text}.yml"]
    roots = [Path.cwd() / "experiments", Path(__file__).resolve().parents[2] / "experiments"]
    for root in roots:
        for name in names:
            if (root / name).is_file():
                return (root / name).resolve()
    available = sorted({p.stem for root in roots if root.is_dir() for p in root.glob("*.y*ml")})
    raise ExperimentError(
        f"experiment {text!r} not found: no such file, and no experiments/{names[0]}; "
        f"bundled experiments: {', '.join(available) or '(none)'}"
    )


def load_experiment(path_or_name: str | Path) -> Experiment:
    """Read and validate an experiment file (a path or a bundled name such as ``quick``).

    The file must be UTF-8 YAML without duplicate keys or ``.nan`` / ``.inf`` (``snn_nas.yamlutil``).
    """
    from snn_nas.yamlutil import read_yaml

    path = find_experiment(path_or_name)
    data = read_yaml(path, what="experiment file", error=ExperimentError)
    return _parse(data, source=str(path), base_dir=path.parent, default_name=path.stem)


def resolve_space_reference(space: str, base_dir: Path | None) -> str:
    """An absolute path when ``space`` names an existing file (relative to ``base_dir`` first,
    then the working directory), else ``space`` unchanged (a name for ``load_space``)."""
    candidates = []
    if base_dir is not None:
        candidates.append(base_dir / space)
        candidates.append(base_dir.parent / space)
    candidates.append(Path(space).expanduser())
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate.resolve())
    return space


# ---------------------------------------------------------------------- validation
_TOP_KEYS = (
    "name",
    "description",
    "space",
    "dataset",
    "data_root",
    "fidelity",
    "trials",
    "sampler",
    "sampler_options",
    "objectives",
    "constraints",
    "scheduler",
    "resources",
    "max_concurrent",
    "max_failures",
    "seed",
    "costs",
    "baselines",
    "reference_point",
    "prescreen",
    "warm_start",
    "oneshot",
)


def _without(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in keys}


def _fail(source: str, key: str, message: str) -> ExperimentError:
    return ExperimentError(f"{source}: {key}: {message}")


def _check_keys(source: str, where: str, data: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise _fail(source, where, f"expected a mapping, got {type(data).__name__}")
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise _fail(source, where, f"unknown key(s) {unknown}; allowed: {list(allowed)}")
    return data


def _int(source: str, key: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _fail(source, key, f"expected an integer >= {low}, got {value!r}")
    return value


def _number(source: str, key: str, value: Any, *, low: float, strict: bool) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = value > low if strict else value >= low
    if not ok:
        hint = ""
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                if math.isfinite(float(value)) and "e" in value.lower():
                    hint = " (YAML reads exponents without a sign as text: write 2.0e+6, not 2.0e6)"
        bound = f" {'>' if strict else '>='} {low:g}" if math.isfinite(low) else ""
        finite = "a finite number" if isinstance(value, float) and not math.isfinite(value) else "a number"
        raise _fail(source, key, f"expected {finite}{bound}, got {value!r}{hint}")
    return float(value)


def _choice(source: str, key: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise _fail(source, key, f"{value!r} is not allowed; choose one of {list(allowed)}")
    return value


def _check_name(source: str, name: Any) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise _fail(
            source, "name", f"{name!r} is not a valid name; use letters, digits, '_', '-' and '.' (a folder name)"
        )
    return name


def _parse(data: Any, *, source: str, base_dir: Path | None, default_name: str | None = None) -> Experiment:
    if not isinstance(data, dict):
        raise ExperimentError(f"{source}: expected a mapping of settings at the top level, got {type(data).__name__}")
    data = _check_keys(source, "top level", data, _TOP_KEYS)
    kwargs: dict[str, Any] = {"source": source}

    kwargs["name"] = _check_name(source, data.get("name", default_name or "experiment"))
    description = data.get("description", "") or ""
    if not isinstance(description, str):
        raise _fail(source, "description", "expected text")
    kwargs["description"] = description.strip()

    space = data.get("space")
    if not isinstance(space, str) or not space.strip():
        raise _fail(source, "space", f"expected a search-space file or name (e.g. 'quick'), got {space!r}")
    kwargs["space"] = resolve_space_reference(space.strip(), base_dir)

    dataset = data.get("dataset", "mnist5k")
    if not isinstance(dataset, str) or not dataset.strip():
        raise _fail(source, "dataset", f"expected a dataset name (e.g. mnist5k, cifar10), got {dataset!r}")
    kwargs["dataset"] = dataset.strip()
    data_root = data.get("data_root")
    if data_root is not None and not isinstance(data_root, str):
        raise _fail(source, "data_root", f"expected a folder path or null, got {data_root!r}")
    kwargs["data_root"] = str(Path(data_root).expanduser()) if data_root else None

    fidelity = data.get("fidelity") or {}
    if not isinstance(fidelity, dict):
        raise _fail(source, "fidelity", f"expected a mapping of training settings, got {type(fidelity).__name__}")
    reserved = sorted(k for k in fidelity if k in FIDELITY_RESERVED)
    if reserved:
        raise _fail(source, "fidelity", f"{reserved} belong at the top level of the experiment file, not in fidelity")
    if fidelity.get("train_on", "train") != "train":
        raise _fail(
            source, "fidelity.train_on", "a search trains on 'train' and ranks on the held-out 'val'; remove the key"
        )
    kwargs["fidelity"] = tuple(sorted((str(k), v) for k, v in fidelity.items()))

    kwargs["trials"] = _int(source, "trials", data.get("trials", 16), 1)
    kwargs["max_concurrent"] = _int(source, "max_concurrent", data.get("max_concurrent", 2), 1)
    kwargs["max_failures"] = _int(source, "max_failures", data.get("max_failures", 1), 0)
    kwargs["seed"] = _int(source, "seed", data.get("seed", 0), 0)
    if kwargs["seed"] > 2**32 - 1:
        raise _fail(source, "seed", f"{kwargs['seed']} is too large; expected an integer in [0, {2**32 - 1}]")

    sampler = data.get("sampler", "tpe")
    kwargs["sampler"] = _choice(source, "sampler", sampler, SAMPLERS)
    options = data.get("sampler_options") or {}
    if not isinstance(options, dict):
        raise _fail(source, "sampler_options", "expected a mapping of sampler keyword arguments")
    if "seed" in options or "constraints_func" in options:
        raise _fail(
            source, "sampler_options", "'seed' and 'constraints_func' are set by snn-nas (use seed, constraints)"
        )
    kwargs["sampler_options"] = tuple(sorted((str(k), v) for k, v in options.items()))

    kwargs["objectives"] = _parse_objectives(source, data.get("objectives"))
    kwargs["constraints"] = _parse_constraints(source, data.get("constraints"))
    kwargs["scheduler"] = _parse_scheduler(source, data.get("scheduler", "none"))
    if kwargs["scheduler"].kind == "asha" and "val_acc" not in [o.metric for o in kwargs["objectives"]]:
        raise _fail(source, "scheduler", "asha stops trials on val_acc; add 'val_acc: max' to objectives")

    resources = _check_keys(source, "resources", data.get("resources"), ("cpus", "gpus"))
    kwargs["resources"] = Resources(
        cpus=_number(source, "resources.cpus", resources.get("cpus", 1), low=0.0, strict=True),
        gpus=_number(source, "resources.gpus", resources.get("gpus", 0), low=0.0, strict=False),
    )

    costs = _check_keys(source, "costs", data.get("costs"), tuple(f.name for f in fields(CostSettings)))
    defaults = CostSettings()
    kwargs["costs"] = CostSettings(
        calibration_images=_int(
            source, "costs.calibration_images", costs.get("calibration_images", defaults.calibration_images), 1
        ),
        energy_per_sop_pj=_number(
            source,
            "costs.energy_per_sop_pj",
            costs.get("energy_per_sop_pj", defaults.energy_per_sop_pj),
            low=0,
            strict=False,
        ),
        energy_per_mac_pj=_number(
            source,
            "costs.energy_per_mac_pj",
            costs.get("energy_per_mac_pj", defaults.energy_per_mac_pj),
            low=0,
            strict=False,
        ),
    )

    baselines = data.get("baselines", list(DEFAULT_BASELINES))
    if baselines is None:
        baselines = []
    if not isinstance(baselines, list) or not all(isinstance(b, str) and b for b in baselines):
        raise _fail(source, "baselines", f"expected a list of preset names, got {baselines!r}")
    kwargs["baselines"] = tuple(baselines)

    reference = data.get("reference_point") or {}
    if not isinstance(reference, dict):
        raise _fail(source, "reference_point", "expected a mapping 'metric: value', e.g. {val_acc: 0.0, sops: 1.0e6}")
    pairs = []
    for metric, value in reference.items():
        _choice(source, "reference_point", metric, OBJECTIVE_METRICS)
        pairs.append((metric, _number(source, f"reference_point.{metric}", value, low=-math.inf, strict=False)))
    kwargs["reference_point"] = tuple(pairs)
    kwargs["prescreen"] = _parse_prescreen(source, data.get("prescreen"))
    kwargs["warm_start"], kwargs["warm_mutants"] = _parse_warm_start(source, data.get("warm_start", "baselines"))
    from snn_nas.search.oneshot_settings import parse_oneshot

    kwargs["oneshot"] = parse_oneshot(source, data.get("oneshot"), ExperimentError)

    experiment = Experiment(**kwargs)
    epochs = experiment.train_config().epochs  # validates the fidelity against TrainConfig
    if experiment.scheduler.kind != "none" and experiment.scheduler.grace_period > epochs:
        raise _fail(
            source, "scheduler.grace_period", f"{experiment.scheduler.grace_period} exceeds fidelity.epochs ({epochs})"
        )
    return experiment


def _parse_objectives(source: str, value: Any) -> tuple[Objective, ...]:
    if value is None:
        return Experiment.__dataclass_fields__["objectives"].default  # type: ignore[return-value]
    if not isinstance(value, dict) or not value:
        raise _fail(source, "objectives", "expected a mapping 'metric: max|min', e.g. {val_acc: max, sops: min}")
    objectives = []
    for metric, mode in value.items():
        _choice(source, "objectives", metric, OBJECTIVE_METRICS)
        _choice(source, f"objectives.{metric}", mode, MODES)
        objectives.append(Objective(metric, mode))
    return tuple(objectives)


def _parse_constraints(source: str, value: Any) -> tuple[tuple[str, float], ...]:
    data = _check_keys(source, "constraints", value, tuple(CONSTRAINT_METRICS))
    pairs = []
    for key, limit in data.items():
        if limit is None:
            continue
        pairs.append((CONSTRAINT_METRICS[key], _number(source, f"constraints.{key}", limit, low=0.0, strict=True)))
    return tuple(sorted(pairs))


def _parse_scheduler(source: str, value: Any) -> Scheduler:
    if value is None or isinstance(value, str):
        return Scheduler(kind=_choice(source, "scheduler", value or "none", SCHEDULERS))
    data = _check_keys(source, "scheduler", value, ("type", "grace_period", "reduction_factor"))
    kind = _choice(source, "scheduler.type", data.get("type", "moasha"), SCHEDULERS)
    grace = _int(source, "scheduler.grace_period", data.get("grace_period", 1), 1)
    factor = _number(source, "scheduler.reduction_factor", data.get("reduction_factor", 2), low=1.0, strict=True)
    return Scheduler(kind=kind, grace_period=grace, reduction_factor=factor)


def _parse_prescreen(source: str, value: Any) -> Prescreen:
    data = _check_keys(source, "prescreen", value, ("pool", "keep"))
    if not data:
        return Prescreen()
    keep = _int(source, "prescreen.keep", data.get("keep", 8), 0)
    pool = _int(source, "prescreen.pool", data.get("pool", 8 * max(keep, 1)), 1)
    if keep > pool:
        raise _fail(source, "prescreen.keep", f"{keep} exceeds prescreen.pool ({pool}); keep at most the pool")
    return Prescreen(pool=pool, keep=keep)


def _parse_warm_start(source: str, value: Any) -> tuple[tuple[str, ...] | str, int]:
    """``(designs, mutants)`` of ``warm_start``: a designs entry, or ``{from: designs, mutants: K}``."""
    mutants = 0
    if isinstance(value, dict):
        data = _check_keys(source, "warm_start", value, ("from", "mutants"))
        mutants = _int(source, "warm_start.mutants", data.get("mutants", 0), 0)
        value = data.get("from", "baselines")
    if value is None or value == "none":
        if mutants:
            raise _fail(source, "warm_start.mutants", "needs designs to mutate (from: baselines or a preset list)")
        return "none", 0
    if value == "baselines":
        return "baselines", mutants
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return tuple(value), mutants
    raise _fail(source, "warm_start", f"expected 'baselines', 'none' or a list of preset names, got {value!r}")
