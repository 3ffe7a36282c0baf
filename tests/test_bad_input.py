"""Bad input and damaged files (issue 10, families 1, 2, 3, 6 and 7): never accepted silently, never
a traceback. Every family is met where the user meets it: through the real CLI (exit code 2, one
short line ``snn-nas CMD: error: ...``) and through the API (an ``SnnNasError`` subclass)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from snn_nas.checkpoint import LAST, CheckpointError, load_checkpoint, load_model
from snn_nas.cli.main import main
from snn_nas.errors import SnnNasError
from snn_nas.genotype import Genotype, GenotypeError, Neuron, Stage
from snn_nas.search.experiment import ExperimentError, load_experiment
from snn_nas.space import SearchSpace, SpaceError, load_space
from snn_nas.training import TrainConfig
from snn_nas.training.config import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = Genotype(stages=(Stage(depth=1, dim=8),), time_steps=1, patch_size=4)
DATASET = "synthetic:train=32,val=16,classes=4,channels=1"
# the fastest real training: one batch of 16 images at 8 px, one epoch
TRAIN_FLAGS = ["--dataset", DATASET, "--image-size", "8", "--epochs", "1", "--batch-size", "16", "--max-batches", "1"]
SPACE = {
    "name": "small",
    "image_size": 16,
    "patch_size": 4,  # token grid 4 x 4 in stage 1, 2 x 2 in stage 2
    "num_stages": {"choice": [1, 2]},
    "stage_defaults": {"depth": 1, "dim": 8, "token_h": {"op": "group_lif", "group": {"choice": [0, 4]}}},
    "stage2": {"cell": {"in": "conv3x3"}},
}


def cli_error(capsys, *argv: str) -> str:
    """Run the real CLI; assert exit 2 and one short error line without a traceback; return it."""
    rc = main(list(argv))
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"snn-nas {argv[0]}: error: "), err
    assert "Traceback" not in err and len(lines[0]) < 500, err
    return lines[0]


def write(path: Path, data) -> Path:
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- 1. non-finite numbers
class TestNonFiniteNumbers:
    def test_space_files_refuse_nan_and_inf(self, tmp_path, capsys):
        text = yaml.safe_dump(SPACE, sort_keys=False) + "neuron:\n  tau: .nan\n"
        path = write(tmp_path / "nan.yaml", text)
        with pytest.raises(SpaceError, match=r"line \d+: \.nan is not a finite number"):
            load_space(path)
        assert str(path) in cli_error(capsys, "space", str(path))
        with pytest.raises(SpaceError, match=r"neuron\.v_threshold: inf is not allowed; expected a finite number"):
            SearchSpace.from_dict({**SPACE, "neuron": {"v_threshold": {"choice": [1.0, math.inf]}}})
        with pytest.raises(SpaceError, match=r"mlp_ratio: nan is not allowed"):
            SearchSpace.from_dict({**SPACE, "mlp_ratio": math.nan})

    def test_genotype_json_refuses_nan_and_inf(self, tmp_path, capsys):
        data = TINY.to_dict()
        text = json.dumps(data).replace('"v_threshold": 1.0', '"v_threshold": Infinity')
        assert "Infinity" in text
        with pytest.raises(GenotypeError, match="Infinity is not a finite number"):
            Genotype.from_json(text)
        with pytest.raises(GenotypeError, match="1e999 is too large"):
            Genotype.from_json(text.replace("Infinity", "1e999"))
        line = cli_error(capsys, "train", str(write(tmp_path / "inf.json", text)), "--epochs", "1")
        assert "Infinity is not a finite number" in line
        for field in ("mlp_ratio", "drop_path"):
            with pytest.raises(GenotypeError, match=field):
                Genotype.from_dict({**data, field: math.inf})
        with pytest.raises(GenotypeError, match=r"neuron\.tau: expected a positive finite number, got inf"):
            Genotype(stages=TINY.stages, neuron=Neuron(tau=math.inf))

    @pytest.mark.parametrize("flag", ["--lr", "--weight-decay", "--warmup-epochs", "--grad-clip", "--subset"])
    def test_training_values_refuse_inf_and_nan(self, flag, capsys):
        name = flag[2:].replace("-", "_")
        for value in ("inf", "nan"):
            line = cli_error(capsys, "train", "mlp_spe_micro", flag, value, "--epochs", "1")
            assert f"{name}: {value} is out of range; must be a finite number" in line
        with pytest.raises(ConfigError, match=f"{name}: inf is out of range"):
            TrainConfig(**{name: math.inf})

    def test_experiment_files_refuse_nan_and_inf(self, tmp_path, capsys):
        path = write(tmp_path / "exp.yaml", "space: quick\nconstraints:\n  max_sops: .inf\n")
        with pytest.raises(ExperimentError, match=r"line 3: \.inf is not a finite number"):
            load_experiment(path)
        assert ".inf is not a finite number" in cli_error(capsys, "search", str(path))
        from snn_nas.search.experiment import Experiment

        with pytest.raises(ExperimentError, match=r"constraints\.max_sops: expected a finite number > 0, got inf"):
            Experiment.from_dict({"space": "quick", "constraints": {"max_sops": math.inf}})
        with pytest.raises(ExperimentError, match=r"reference_point\.sops: expected a finite number, got nan"):
            Experiment.from_dict({"space": "quick", "reference_point": {"sops": math.nan}})
        with pytest.raises(ExperimentError, match=r"fidelity: warmup_epochs: inf is out of range"):
            Experiment.from_dict({"space": "quick", "fidelity": {"warmup_epochs": math.inf}}).train_config()


# ----------------------------------------------------------------------------- 2. architectures that cannot work
def _silent_record(status_spec=None):
    from snn_nas.search.trial import TrialSpec, run_trial

    config = TrainConfig(
        dataset=DATASET, epochs=1, batch_size=16, image_size=8, max_batches_per_epoch=1, eval_batch_size=64, amp=False
    )
    spec = TrialSpec(train_config=tuple(sorted(config.to_dict().items())), calibration_images=8)

    class NeverFires:  # a space of one genotype whose threshold no input reaches
        def decode(self, sample):
            return Genotype(stages=TINY.stages, time_steps=1, patch_size=4, neuron=Neuron(v_threshold=1e6))

    reports: list[dict] = []
    record = run_trial({}, space=NeverFires(), spec=spec, report=reports.append)
    return record, reports


class TestArchitecturesThatCannotWork:
    def test_zero_wide_layers_are_rejected(self, tmp_path, capsys):
        with pytest.raises(GenotypeError, match=r"mlp_ratio: 0\.1 x stages\[0\]\.dim 8 = 0\.8 gives 0 hidden channels"):
            Genotype(stages=TINY.stages, mlp_ratio=0.1)
        path = write(tmp_path / "zero.json", json.dumps({**TINY.to_dict(), "mlp_ratio": 0.1}))
        assert "zero-wide channel MLP" in cli_error(capsys, "train", str(path), "--epochs", "1")
        space = {**SPACE, "mlp_ratio": {"choice": [0.1, 2]}}
        with pytest.raises(SpaceError, match=r"mlp_ratio: 0\.1 x the width 8 of stage 1 .* 0 hidden channels"):
            SearchSpace.from_dict(space, source="zero.yaml")
        assert "0 hidden channels" in cli_error(capsys, "space", str(write(tmp_path / "zero.yaml", space)))

    def test_silence_rule(self):
        from snn_nas.search.trial import CHANCE_MARGIN, silence

        quiet = {"firing_rate": 0.0, "sops": 0.0, "val_acc": 0.1}
        assert "never fires" in silence(quiet, 10, spiking=True)
        assert silence({**quiet, "sops": 5.0}, 10, spiking=True)  # no spike anywhere is enough
        assert silence({**quiet, "firing_rate": 0.01}, 10, spiking=True)  # so is no synaptic operation
        assert silence({**quiet, "val_acc": 0.1 + CHANCE_MARGIN + 0.01}, 10, spiking=True) is None  # it learned
        assert silence(quiet, 10, spiking=False) is None  # a non-spiking model has no spikes to miss
        assert silence({**quiet, "val_acc": math.nan}, 10, spiking=True) is None

    def test_a_network_that_never_fires_is_silent_and_never_on_a_front(self, tmp_path, capsys):
        from snn_nas.report import analyse_front
        from snn_nas.search.results import STATUSES, ResultStore, load_results

        record, reports = _silent_record()
        assert record["status"] == "silent" and "never fires" in record["error"]
        assert record["sops"] == 0 and record["firing_rate"] == 0 and record["val_acc"] <= 0.3
        assert [r["status"] for r in reports] == ["silent"]  # the last epoch's report already says so
        assert "silent" in STATUSES

        store = ResultStore(tmp_path / "search")
        store.record({**record, "trial_id": "t0", "fidelity": "{}"})
        store.record({**record, "trial_id": "t1", "key": "0123456789ab", "status": "ok", "error": None,
                      "val_acc": 0.9, "sops": 1e5})  # fmt: skip
        table = load_results(tmp_path / "search")
        analysis = analyse_front(table)
        assert analysis.status_counts == {"ok": 1, "silent": 1}
        assert list(analysis.front["key"]) == ["0123456789ab"]
        assert main(["pareto", str(tmp_path / "search"), "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert [row["key"] for row in out["front"]] == ["0123456789ab"]


# ----------------------------------------------------------------------------- 3. YAML that means something else
class TestYamlThatMeansSomethingElse:
    def test_duplicate_keys_are_errors(self, tmp_path, capsys):
        text = yaml.safe_dump(SPACE, sort_keys=False) + "image_size: 32\n"
        path = write(tmp_path / "dup.yaml", text)
        with pytest.raises(SpaceError, match=r"line \d+: the key 'image_size' is written twice .*first on line 2"):
            load_space(path)
        assert "'image_size' is written twice" in cli_error(capsys, "space", str(path))
        exp = write(tmp_path / "exp.yaml", "space: quick\ntrials: 4\nseed: 1\ntrials: 8\n")
        with pytest.raises(ExperimentError, match=r"line 4: the key 'trials' is written twice"):
            load_experiment(exp)
        assert "'trials' is written twice" in cli_error(capsys, "search", str(exp))
        with pytest.raises(GenotypeError, match="the key 'stages' is written twice"):
            Genotype.from_json('{"stages": [{"depth": 1, "dim": 8}], "stages": []}')
        anchors = "a: &m {x: 1}\nb:\n  <<: *m\n  x: 2\n"  # a merge key may be overridden, as YAML intends
        from snn_nas.yamlutil import load_yaml

        assert load_yaml(anchors, "anchors.yaml") == {"a": {"x": 1}, "b": {"x": 2}}

    def test_a_choice_that_is_never_valid_is_an_error(self, tmp_path, capsys):
        SearchSpace.from_dict(SPACE)  # group 4 fits stage 1 (side 4) although not stage 2 (side 2)
        bad = {**SPACE, "stage_defaults": {**SPACE["stage_defaults"], "token_h": {"op": "group_lif",
               "group": {"choice": [0, 4, 8]}}}}  # fmt: skip
        with pytest.raises(SpaceError) as info:
            SearchSpace.from_dict(bad, source="bad.yaml")
        message = str(info.value)
        assert message.startswith("bad.yaml: stage_defaults.token_h.group: 8 is never valid at image_size 16")
        assert "stage1.token_h.group: 8 exceeds the 4 positions" in message
        assert "stage_defaults.token_h.group: 8 is never valid" in cli_error(
            capsys, "space", str(write(tmp_path / "bad.yaml", bad))
        )
        stages = {**SPACE, "num_stages": {"choice": [1, 2, 3]}, "stage3": {"token_h": {"op": "group_lif", "group": 2}}}
        with pytest.raises(SpaceError, match=r"num_stages: 3 is never valid .* stage3\.token_h\.group: 2 exceeds"):
            SearchSpace.from_dict(stages)  # stage 3 has one position: its only group never fits

    def test_no_valid_configuration_names_the_label(self):
        data = {**SPACE, "stage_defaults": {**SPACE["stage_defaults"], "token_h": {"op": "group_lif", "group": 8}}}
        with pytest.raises(SpaceError, match=r"has no valid configuration at image_size 16: stage1\.token_h\.group: 8"):
            SearchSpace.from_dict(data)


# ----------------------------------------------------------------------------- 6. checkpoints
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A genotype file and the folder of a real one-epoch training run of it by the CLI."""
    root = tmp_path_factory.mktemp("ckpt")
    arch = root / "tiny.json"
    arch.write_text(TINY.to_json())
    out = root / "run"
    assert main(["train", str(arch), *TRAIN_FLAGS, "--out", str(out), "--no-progress"]) == 0
    return arch, out


def _damaged(trained, name: str, change) -> Path:
    state = torch.load(trained[1] / LAST, weights_only=True)
    change(state)
    path = trained[1].parent / f"{name}.pt"
    torch.save(state, path)
    return path


class TestCheckpoints:
    def test_weights_that_do_not_fit_the_genotype_name_the_tensor(self, trained, capsys):
        key = next(iter(torch.load(trained[1] / LAST, weights_only=True)["model"]))
        path = _damaged(trained, "missing", lambda s: s["model"].pop(key))
        with pytest.raises(CheckpointError, match=f"do not fit the model its genotype builds \\(missing {key}"):
            load_model(path)
        assert f"missing {key}" in cli_error(capsys, "profile", str(path))
        wider = _damaged(trained, "wider", lambda s: s["genotype"]["stages"][0].update(dim=16))
        with pytest.raises(CheckpointError, match=r"is \[8.*\] in the file but \[16.*\] in the model"):
            load_model(wider)
        no_args = _damaged(trained, "no_args", lambda s: s["model_args"].pop("num_classes"))
        with pytest.raises(CheckpointError, match=r"model_args\.num_classes must be an integer >= 1, got None"):
            load_model(no_args)

    def test_non_finite_weights_are_refused(self, trained, capsys):
        def poison(state):
            next(t for t in state["model"].values() if t.is_floating_point()).fill_(math.nan)

        path = _damaged(trained, "nan", poison)
        with pytest.raises(CheckpointError, match="the weights are not finite"):
            load_checkpoint(path)
        assert "holds NaN or inf" in cli_error(capsys, "profile", str(path), "--dataset", DATASET)

    def test_resume_checks(self, trained, tmp_path, capsys):
        arch = trained[0]
        line = cli_error(capsys, "train", str(arch), *TRAIN_FLAGS, "--out", str(tmp_path / "none"), "--resume")
        assert "last.pt not found, so there is nothing to continue" in line
        ahead = tmp_path / "ahead"
        ahead.mkdir()
        (ahead / LAST).write_bytes(_damaged(trained, "ahead", lambda s: s.update(epoch=5)).read_bytes())
        line = cli_error(capsys, "train", str(arch), *TRAIN_FLAGS, "--out", str(ahead), "--resume", "--no-progress")
        assert "records 5 completed epochs but the run has 1" in line
        from snn_nas.training import train_model

        config = TrainConfig.from_dict(torch.load(ahead / LAST, weights_only=True)["config"])
        with pytest.raises(CheckpointError, match="records 5 completed epochs"):
            train_model(TINY, config, out_dir=ahead, resume=True, progress=False)

    def test_unsafe_pickles_are_refused_without_torch_advice(self, tmp_path, capsys):
        path = tmp_path / "pickled.pt"
        torch.save({"format": "snn-nas-checkpoint", "payload": Path("x")}, path)  # an object, not a tensor
        with pytest.raises(CheckpointError, match="cannot be read safely") as info:
            load_checkpoint(path)
        line = cli_error(capsys, "profile", str(path))
        for text in (str(info.value), line):
            assert "weights_only" not in text and "PosixPath" in text


# ----------------------------------------------------------------------------- 7. bugs on normal paths
@pytest.fixture
def results_dir(tmp_path):
    """A search folder with one ok trial and one invalid trial (no key), as a search leaves it."""
    from snn_nas.search.results import ResultStore

    config = TrainConfig(dataset=DATASET, epochs=1, batch_size=16, image_size=8, max_batches_per_epoch=1)
    store = ResultStore(tmp_path / "search")
    store.record({"trial_id": "t0", "status": "ok", "key": TINY.key(), "genotype": TINY.to_json(), "val_acc": 0.5,
                  "sops": 10.0, "fidelity": config.to_json()})  # fmt: skip
    store.record({"trial_id": "t1", "status": "invalid", "key": None, "error": "not decodable"})
    return tmp_path / "search"


class TestNormalPaths:
    def test_retrain_key_that_matches_nothing(self, results_dir, capsys):
        from snn_nas.retrain import RetrainError, select_trial
        from snn_nas.search.results import load_results

        with pytest.raises(RetrainError, match=f"no trial has key 'zzz'; keys include {TINY.key()}"):
            select_trial(load_results(results_dir), key="zzz")
        assert "no trial has key 'zzz'" in cli_error(capsys, "retrain", str(results_dir), "--key", "zzz")

    def test_failed_retrain_leaves_no_empty_folder(self, results_dir, capsys):
        from snn_nas.retrain import retrain

        with pytest.raises(SnnNasError, match="no_such_data"):
            retrain(results_dir, key=TINY.key(), overrides={"dataset": "no_such_data"}, progress=False)
        assert not (results_dir / "retrain").exists()
        assert "no_such_data" in cli_error(capsys, "retrain", str(results_dir), "--key", TINY.key(), "--dataset",
                                           "no_such_data")  # fmt: skip
        assert not (results_dir / "retrain").exists()

    def test_files_that_are_not_utf8(self, tmp_path, capsys):
        latin1 = "description: caf\xe9\n".encode("latin-1")
        exp = write(tmp_path / "exp.yaml", b"space: quick\n" + latin1)
        with pytest.raises(ExperimentError, match=r"is not UTF-8 text \(byte 0xe9 on line 2\)"):
            load_experiment(exp)
        assert "not UTF-8" in cli_error(capsys, "search", str(exp))
        space = write(tmp_path / "space.yaml", yaml.safe_dump(SPACE).encode() + latin1)
        with pytest.raises(SpaceError, match="not UTF-8"):
            load_space(space)
        assert "not UTF-8" in cli_error(capsys, "space", str(space))
        geno = write(tmp_path / "g.json", TINY.to_json().replace('"hard"', '"h\xe4rd"').encode("latin-1"))
        assert "the genotype file is not UTF-8" in cli_error(capsys, "train", str(geno), "--epochs", "1")
        from snn_nas.cli.train import load_arch

        with pytest.raises(SnnNasError, match="not UTF-8"):
            load_arch(str(geno))

    def test_train_given_a_checkpoint(self, trained, capsys):
        last = trained[1] / LAST
        line = cli_error(capsys, "train", str(last), "--epochs", "1")
        assert "is a checkpoint, not an architecture" in line and "--resume" in line and "load_model" in line
        copy = trained[1].parent / "weights.bin"  # a checkpoint under another name is recognised too
        copy.write_bytes(last.read_bytes())
        assert "is a checkpoint" in cli_error(capsys, "train", str(copy), "--epochs", "1")

    @pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
    def test_profile_on_cuda_without_a_gpu(self, capsys):
        from snn_nas.training import resolve_device

        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")
        assert "CUDA is not available here" in cli_error(capsys, "profile", "mlp_spe_micro", "--device", "cuda")
        assert "CUDA is not available" in cli_error(
            capsys, "profile", "mlp_spe_micro", "--device", "cuda", "--dataset", DATASET
        )

    def test_group_lif_passes_short_axes_through_so_presets_build_at_32_px(self, capsys):
        from snn_nas.builder import build_model
        from snn_nas.group_lif import group_lif
        from snn_nas.presets import get_preset

        x = torch.randn(2, 3, 2, 5)
        for scan in ("forward", "backward", "both"):
            assert torch.equal(group_lif(x, "h", 4, scan, "real"), x)  # H = 2 < group 4: all pass through
            assert torch.equal(group_lif(x, "w", 4, scan)[..., 4:], x[..., 4:])  # the 5th column is left over
        model = build_model(get_preset("snn_mlp_t"), image_size=32)  # stage sides 8, 4, 2, 1 with group 4
        with torch.no_grad():
            assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
        assert main(["profile", "snn_mlp_t", "--image-size", "32", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["params"] > 0
        space = SearchSpace.from_dict(SPACE)  # a space still rules a group larger than its axis out
        with pytest.raises(SpaceError, match=r"stage2\.token_h\.group: 4 exceeds the 2 positions of stage 2"):
            space.decode({"num_stages": 2, "stage1.token_h.group": 4, "stage2.token_h.group": 4})
