"""What keeps the samplers' cost flat (``snn_nas.search.samplers``): the bounded TPE and the
buffered journal of the samplers' study."""

from __future__ import annotations

import json
import pickle
import random

import optuna
import pytest
from optuna.storages import JournalStorage

from snn_nas.search.samplers import ELITE_SIZE, BoundedTPESampler, journal_backend
from snn_nas.space import load_space

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
optuna.logging.set_verbosity(optuna.logging.ERROR)


def _drive(sampler, space, trials: int, pending: int = 3, storage=None) -> list[dict]:
    """Ask/tell like the driver: ``pending`` trials running at once, random objective values."""
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler, storage=storage)
    rng, drawn, running = random.Random(0), [], []
    for _ in range(trials):
        trial = study.ask()
        space.suggest(trial)
        drawn.append(dict(trial.params))
        running.append(trial)
        if len(running) > pending:
            study.tell(running.pop(0), [rng.random(), rng.random() * 1e6])
    return drawn


@pytest.mark.parametrize("journal", [False, True])
@pytest.mark.parametrize("liar", [True, False])
def test_below_max_history_it_is_optunas_tpe(liar, journal, tmp_path):
    """The same seed gives the same suggestions as ``TPESampler``, running trials included (the
    constant liar, Optuna 5's default) or not, in memory or on the samplers' indexed journal:
    the cached split and columns and the journal's index change nothing."""
    from snn_nas.search.samplers import IndexedJournalStorage

    space = load_space("quick")
    storage = IndexedJournalStorage(journal_backend(tmp_path / "s.journal")) if journal else None
    ours = _drive(BoundedTPESampler(seed=0, n_startup_trials=8, constant_liar=liar), space, 60, storage=storage)
    optunas = _drive(optuna.samplers.TPESampler(seed=0, n_startup_trials=8, constant_liar=liar), space, 60)
    assert ours == optunas


def test_the_window_keeps_the_below_set_of_the_whole_history():
    """Above ``max_history`` the estimators are fitted on the window; TPE's "below" set there (the
    best ``gamma(window)`` trials by non-domination rank, HSSP breaking the tie on the last front)
    is exactly the best ``gamma(window)`` trials of the whole history."""
    from optuna.samplers._tpe.sampler import _split_trials, default_gamma_multiobjective

    sampler = BoundedTPESampler(seed=0, max_history=ELITE_SIZE, constant_liar=False)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=1))
    rng = random.Random(2)
    for _ in range(600):
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        study.tell(trial, [rng.random(), rng.random()])
    finished = study.get_trials(deepcopy=False)
    window = sampler.window(study, finished)
    assert ELITE_SIZE <= len(window) < len(finished) / 2  # whole fronts: the elite may pass ELITE_SIZE a little
    below = default_gamma_multiobjective(len(window))
    whole, _ = _split_trials(study, finished, below)
    bounded, _ = _split_trials(study, window, below)
    assert [t.number for t in bounded] == [t.number for t in whole]
    # a newer, better trial enters the elite incrementally
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    study.tell(trial, [2.0, -1.0])
    window = sampler.window(study, study.get_trials(deepcopy=False))
    assert trial.number in {t.number for t in window}


def test_max_history_below_the_elite_is_refused():
    with pytest.raises(ValueError, match="max_history"):
        BoundedTPESampler(max_history=ELITE_SIZE - 1)


def test_the_journal_is_optunas_file_format_written_in_batches(tmp_path):
    from optuna.storages.journal import JournalFileBackend

    path = tmp_path / "samplers.journal"
    storage = optuna.storages.JournalStorage(journal_backend(path))
    study = optuna.create_study(storage=storage, study_name="s", directions=["minimize"])
    for i in range(5):
        study.tell(study.ask(), float(i))
    backend = journal_backend(path)
    assert backend is storage._backend  # one backend per file in a process
    pickle.loads(pickle.dumps(storage))  # pickling (Ray's snapshot of the searcher) flushes it
    reread = optuna.load_study(study_name="s", storage=optuna.storages.JournalStorage(JournalFileBackend(str(path))))
    assert [t.value for t in reread.trials] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_a_torn_last_line_is_cut_and_a_damaged_one_refused(tmp_path):
    from snn_nas.search.samplers import BufferedJournal, JournalError

    path = tmp_path / "samplers.journal"
    storage = optuna.storages.JournalStorage(journal_backend(path))
    optuna.create_study(storage=storage, study_name="s")
    journal_backend(path).flush()
    intact = path.read_bytes()
    path.write_bytes(intact + b'{"op_code": 4, "worker')  # a crash in the middle of a write
    assert len(list(BufferedJournal(str(path)).read_logs(0))) == len(intact.splitlines())
    assert path.read_bytes() == intact  # cut, so that the next append starts on its own line
    path.write_bytes(b"not json\n" + intact)
    with pytest.raises(JournalError, match="line 1"):
        list(BufferedJournal(str(path)).read_logs(0))
    assert json.loads(intact.splitlines()[0])  # what Optuna wrote is one JSON operation per line


def test_old_operations_are_read_back_from_the_file(tmp_path, monkeypatch):
    """The journal keeps only its newest operations in memory; a storage opened late (to close
    the study) still replays all of them, from the file."""
    from snn_nas.search import samplers

    monkeypatch.setattr(samplers, "KEEP_IN_MEMORY", 5)
    monkeypatch.setattr(samplers, "FLUSH_EVERY_S", 0.0)
    path = tmp_path / "samplers.journal"
    study = optuna.create_study(storage=optuna.storages.JournalStorage(journal_backend(path)), study_name="s")
    for i in range(20):
        study.tell(study.ask(), float(i))
    backend = journal_backend(path)
    assert backend._base > 0 and len(backend._logs) <= 10  # trimmed
    late = optuna.load_study(study_name="s", storage=optuna.storages.JournalStorage(backend))
    assert [t.value for t in late.trials] == [float(i) for i in range(20)]


def test_the_indexed_journal_lists_trials_by_state_as_optuna_does(tmp_path):
    """``IndexedJournalStorage.get_all_trials(states=...)`` against Optuna's own
    ``JournalStorage`` on the same file, after asks, tells out of order, failures, prunes and
    enqueued trials."""
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    from snn_nas.search.samplers import IndexedJournalStorage

    path = tmp_path / "samplers.journal"
    storage = IndexedJournalStorage(journal_backend(path))
    study = optuna.create_study(storage=storage, study_name="s")
    rng, running = random.Random(4), []
    for step in range(120):
        if step % 17 == 0:
            study.enqueue_trial({"x": 0.5})
        running.append(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}))
        if len(running) > 4:
            trial = running.pop(rng.randrange(len(running)))  # finished out of order
            state = rng.choice([TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED])
            study.tell(trial, rng.random() if state == TrialState.COMPLETE else None, state=state)
        if step % 10 == 0:
            journal_backend(path).flush()
            plain = JournalStorage(JournalFileBackend(str(path)))
            study_id = plain.get_study_id_from_name("s")
            finished = (TrialState.COMPLETE, TrialState.PRUNED)
            for states in [(TrialState.WAITING,), finished, (*finished, TrialState.RUNNING), (TrialState.FAIL,)]:
                want = [t.number for t in plain.get_all_trials(study_id, deepcopy=False, states=states)]
                got = [t.number for t in storage.get_all_trials(study._study_id, deepcopy=False, states=states)]
                assert got == want, (step, states)
