"""Reports over a results directory: the trial table, its Pareto front, the baselines, the files.

``analyse_front(trials, x=..., reference_point=..., expected_baselines=..., test_acc=...)`` is
pure (a table in, a ``FrontAnalysis`` out); ``front_for_dir`` adds the I/O around it (read
``trials.parquet``, the declared reference point and baselines, the test accuracies of
retrained and audited trials) and ``write_front_files`` writes ``pareto.csv`` and ``pareto.json``.

Modules: ``columns`` (the table's columns, units, ``ResultsError``, ``is_missing``),
``eligibility`` (the front rule every view applies: ``front_exclusion``, chance level),
``nonspiking`` (the non-spiking rule), ``baselines`` (``compare_baselines``, verdicts),
``front`` (``analyse_front``, ``FrontAnalysis``), ``results_dir`` (reading a results directory,
writing the front files), ``formatting`` (counts and the not-shown sentence).

Definitions (shared with ``snn-nas pareto`` and ``snn-nas retrain``):

* Which rows may be placed on a front is one rule, ``front_exclusion`` (module ``eligibility``),
  that every view applies: status ``ok``, not a supernet estimate (``proxy == "supernet"``),
  finite accuracy and cost, comparable on the axis (the non-spiking rule below), feasible, and
  above chance level (``1 / num_classes`` + ``CHANCE_MARGIN``). The other ``ok`` rows are listed
  in ``excluded`` with their reason and counted in every view.
* **One architecture, one point**: rows sharing a ``key`` (the warm-start trial of a seed design
  and that design's baseline row) are placed once, as the search row when there is one; the
  others are listed in ``merged``. ``seed_design`` names the preset a placed row's architecture
  is (a baseline, or a warm-start design), so a view can label it.
* A **non-spiking** row (genotype family other than ``spiking``, e.g. an ``snn_mlp`` baseline;
  without a genotype: ``time_steps == 1``, ``sops == 0`` and ``macs > 0``) does all its work as
  MACs: its 0 SOPs are not comparable with a spiking network's. On the SOP axis (``x ==
  "sops"``) such rows are *not comparable*: listed in ``not_comparable``, never placed, ranked
  or counted in the hypervolume; on every other axis they are placed like any row.
* The **front** is the non-dominated set of all placed rows (search trials and baselines) in
  (accuracy max, cost min); its ``rank`` is the row's position when sorted by accuracy
  descending (rank 0 = most accurate), ties broken by lower cost then key.
* The **hypervolume** is that of the non-baseline rows only, in raw units (accuracy fraction x
  cost unit) against the reference point ``{y: a, x: s}``: the declared one (key
  ``reference_point`` in ``experiment.yaml`` or ``search.json`` of the results directory), else
  ``a = 1 / num_classes`` (chance level; 0 when unknown) and ``s = 1.1 x`` the largest cost
  among placed rows. A declared ``a`` below chance is raised to chance: the volume under chance
  accuracy is what a constant predictor holds for free.
* A baseline is compared on ``x``, or on ``energy_uj`` when it is non-spiking and ``x`` is
  ``sops`` (energy is where its MACs count). It is **dominated** by every search trial at least
  as accurate and at most as costly on that axis, strictly better in one of the two; some
  member of the search front on that axis then dominates it too (``dominated_by_front``). Its
  **margin** is ``100 x (a* - a_b)`` points, where ``a*`` is the best search accuracy at a cost
  ``<=`` the baseline's and ``a_b`` the baseline's accuracy (None when every trial costs more).
* **Test accuracy** (``test_acc``, ``test_acc_source``) of a front row comes from
  ``retrain/<key>/report.json`` (retrained on train + val; source ``retrain``) or else from
  ``audit/audit.parquet`` (trained again at a higher fidelity; source ``audit``). It is shown
  beside the search accuracy and never used for ranking or for the front.
"""

from __future__ import annotations

from snn_nas.report.baselines import AXIS_WORDS, BaselineComparison, baseline_verdict, compare_baselines
from snn_nas.report.columns import (
    ACCURACY_COLUMNS,
    COST_COLUMNS,
    FRONT_COLUMNS,
    TEST_ACC_SOURCES,
    UNITS,
    ResultsError,
    is_missing,
)
from snn_nas.report.eligibility import (
    CHANCE_MARGIN,
    EXCLUSIONS,
    chance_accuracy,
    chance_text,
    dataset_classes,
    front_exclusion,
)
from snn_nas.report.formatting import NOT_SHOWN_REASONS, counts_text, format_count, not_shown_text, trial_counts
from snn_nas.report.front import DEFAULT_REFERENCE_FACTOR, FrontAnalysis, analyse_front, default_reference_point
from snn_nas.report.nonspiking import NON_SPIKING_AXIS, is_non_spiking, non_spiking_mask
from snn_nas.report.results_dir import (
    AUDIT_TABLE,
    EXPERIMENT_FILES,
    RETRAIN_DIR,
    TRIALS_FILE,
    declared_baselines,
    declared_constraints,
    declared_dataset,
    declared_reference_point,
    front_for_dir,
    load_trials,
    read_test_accuracies,
    seed_design_keys,
    write_front_files,
)

__all__ = [
    "ACCURACY_COLUMNS",
    "AUDIT_TABLE",
    "AXIS_WORDS",
    "CHANCE_MARGIN",
    "COST_COLUMNS",
    "DEFAULT_REFERENCE_FACTOR",
    "EXCLUSIONS",
    "EXPERIMENT_FILES",
    "FRONT_COLUMNS",
    "NON_SPIKING_AXIS",
    "NOT_SHOWN_REASONS",
    "RETRAIN_DIR",
    "TEST_ACC_SOURCES",
    "TRIALS_FILE",
    "UNITS",
    "BaselineComparison",
    "FrontAnalysis",
    "ResultsError",
    "analyse_front",
    "baseline_verdict",
    "chance_accuracy",
    "chance_text",
    "compare_baselines",
    "counts_text",
    "dataset_classes",
    "declared_baselines",
    "declared_constraints",
    "declared_dataset",
    "declared_reference_point",
    "default_reference_point",
    "format_count",
    "front_exclusion",
    "front_for_dir",
    "is_missing",
    "is_non_spiking",
    "load_trials",
    "non_spiking_mask",
    "not_shown_text",
    "read_test_accuracies",
    "seed_design_keys",
    "trial_counts",
    "write_front_files",
]
