"""pyproject.toml is the single source of dependencies; environment.yml must match it; the
Makefile's lab target starts JupyterLab wherever it runs."""

import os
import subprocess
from pathlib import Path

import pytest
import yaml

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def _normalize(requirement: str) -> str:
    return requirement.replace(" ", "").lower()


def test_environment_yml_installs_what_pyproject_declares():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = set(map(_normalize, project["dependencies"]))
    declared |= set(map(_normalize, project["optional-dependencies"]["test"]))

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "conda-forge" in env["channels"]
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    assert "python=3.11" in conda and "pip" in conda
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip, "environment.yml must install the project itself"
    listed = {_normalize(r) for r in pip if not r.startswith("-")}
    assert listed == declared, (
        f"only in pyproject.toml: {sorted(declared - listed)}; "
        f"only in environment.yml: {sorted(listed - declared)}"
    )


def test_gpu_extra_pins_the_same_tensorflow():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    cpu = next(d for d in project["dependencies"] if d.startswith("tensorflow"))
    gpu = project["optional-dependencies"]["gpu"]
    assert gpu == [cpu.replace("tensorflow", "tensorflow[and-cuda]", 1)]


@pytest.mark.slow
def test_make_lab_starts_jupyterlab_as_root_too(tmp_path):
    """JupyterLab refuses root without --allow-root ("Running as root is not recommended"):
    the target adds it exactly when make runs as root."""
    stamp = tmp_path / ".installed"
    stamp.touch()

    def lab_line(*extra):
        result = subprocess.run(["make", "-n", "-o", str(stamp), "lab", f"STAMP={stamp}", *extra],
                                cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return [line for line in result.stdout.splitlines() if "jupyter lab" in line][0]

    assert ("--allow-root" in lab_line()) == (os.geteuid() == 0)
    assert "--notebook-dir=notebooks" in lab_line()
    assert "--allow-root" not in lab_line("LAB_AS_ROOT=")


@pytest.mark.slow
def test_the_code_keeps_the_lint_rules_the_project_claims():
    """pyproject.toml's ruff rules (pycodestyle with the 100-column limit, pyflakes, import
    order) hold for the library, the tests and the benchmarks."""
    import shutil
    import subprocess
    import sys

    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is a test dependency: pip install -e '.[test]'"
    result = subprocess.run([ruff, "check", "alexnet_lib", "tests", "benchmarks"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]


def test_no_import_of_the_package_hides_inside_a_function():
    """Imports of the package at function level are only the deliberate lazy ones (the CLI's,
    to keep --help fast), each saying why on its line."""
    import re

    hidden = []
    for path in sorted((ROOT / "alexnet_lib").rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.match(r"^\s{4,}(from \.|from alexnet_lib|import alexnet_lib)", line) and (
                    "# lazy:" not in line):
                hidden.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not hidden, "\n".join(hidden)
