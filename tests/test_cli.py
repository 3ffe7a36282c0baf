"""The ``snn-nas`` entry point: help for every command, clean errors for bad input."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from snn_nas.cli.main import COMMANDS, main


def test_installed_console_script_lists_every_command():
    exe = shutil.which("snn-nas") or pytest.fail("the snn-nas console script is not installed")
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    for command in COMMANDS:
        assert command in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: snn-nas {command}")
    assert "snn-nas " + command in out.split("usage:", 1)[1].split("\n", 2)[-1]  # an example beyond the usage line


def test_help_does_not_import_torch_ray_or_optuna():
    code = (
        "import sys; from snn_nas.cli.main import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'ray', 'optuna', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["profile", "no_such_preset"], "no_such_preset"),
        (["train", "/no/such/genotype.json", "--epochs", "1"], "/no/such/genotype.json"),
        (["space", "/no/such/space.yaml"], "/no/such/space.yaml"),
        (["pareto", "/no/such/results"], "/no/such/results"),
        (["search", "/no/such/experiment.yaml"], "/no/such/experiment.yaml"),
        (["train", "mlp_spe_micro", "--dataset", "no_such_data", "--epochs", "1"], "no_such_data"),
    ],
)
def test_bad_input_is_a_one_line_error_not_a_traceback(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"snn-nas {argv[0]}: error: ")
    assert message in err and "Traceback" not in err


def test_invalid_space_file_names_the_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nimage_size: 32\nnum_stages: {choice: [1]}\ntime_steps: {choice: []}\n")
    assert main(["space", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "time_steps" in err


def test_models_lists_every_preset(capsys):
    from snn_nas.presets import list_presets

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in list_presets():
        assert name in out


def test_tune_cpu_allocator_applies_on_linux():
    from snn_nas.perf import tune_cpu_allocator

    assert tune_cpu_allocator() is sys.platform.startswith("linux")


def test_search_rejects_baselines_and_no_baselines_together(capsys):
    with pytest.raises(SystemExit) as info:
        main(["search", "--baselines", "--no-baselines"])
    assert info.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
