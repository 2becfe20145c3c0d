"""python -m alexnet_lib: the commands print what they claim and fail clearly."""

import os
import re
import subprocess
import sys

import pytest

from alexnet_lib.cli import main


def test_summary_prints_the_layer_table_and_parameter_count(capsys):
    assert main(["summary", "--preset", "cifar"]) == 0
    out = capsys.readouterr().out
    assert "Preset 'cifar'" in out
    assert "conv2_tower1" in out and "lrn2" in out
    assert "1,398,154 parameters" in out


def test_summary_applies_overrides(capsys):
    assert main(["summary", "--preset", "paper", "--set", "towers=false",
                 "--set", "num_classes=10"]) == 0
    out = capsys.readouterr().out
    assert "conv2_tower1" not in out
    assert "Overrides: {'towers': False, 'num_classes': 10}" in out


def test_bad_preset_exits_2_with_one_message(capsys):
    assert main(["summary", "--preset", "vgg"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1
    assert "Valid presets: ['cifar', 'paper', 'seed']" in err and "preset='vgg'" in err


def test_malformed_set_is_rejected(capsys):
    assert main(["summary", "--set", "towers"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


@pytest.mark.slow
def test_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "alexnet_lib", "summary", "--preset", "paper"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "60,965,224 parameters" in result.stdout


def _quiet_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "ALEXNET_QUIET_LOG_LEVEL")}
    return {**env, **extra}


def test_help_imports_no_tensorflow():
    code = ("import sys\nfrom alexnet_lib.cli import main\n"
            "assert main(['train', '--help']) == 0\n"
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, env=_quiet_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False False"
    assert "--precision" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("env", [
    {},  # nothing set
    # a child (a notebook kernel, a worker) of a process that chose the level itself
    {"TF_CPP_MIN_LOG_LEVEL": "2", "ALEXNET_QUIET_LOG_LEVEL": "2"},
])
def test_commands_print_no_tensorflow_start_up_lines(env):
    """No I0000/W0000/E0000 lines (e.g. "failed call to cuInit" on a host without a GPU)."""
    result = subprocess.run([sys.executable, "-m", "alexnet_lib", "summary", "--preset", "cifar"],
                            capture_output=True, text=True, timeout=300, env=_quiet_env(**env))
    assert result.returncode == 0, result.stderr
    assert "1,398,154 parameters" in result.stdout
    noise = [line for line in (result.stdout + result.stderr).splitlines()
             if re.match(r"^[IWE]\d{4} ", line) or "absl::InitializeLog" in line]
    assert not noise, noise
