"""Notebook hygiene (committed without outputs, one tagged parameters cell with typed,
commented literals), their parameters and the papermill runner. Executing them is nbval's
job: `make test` runs each notebook once with --nbval-lax, in a temporary runs folder."""

import ast
import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_the_folder_holds_exactly_the_notebooks_the_runner_knows():
    """Every notebook the runner executes is committed, and nothing else lies beside them
    (a renamed or stray notebook would escape the checks below)."""
    from alexnet_lib.notebooks import ABLATIONS
    from alexnet_lib.notebooks import NOTEBOOKS as RUN

    assert [p.stem for p in NOTEBOOKS] == sorted([*RUN, ABLATIONS])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{path.name}: a cell has outputs"
            assert cell.get("execution_count") is None, f"{path.name}: execution count set"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_parameters_cell_of_typed_commented_literals(path):
    nb = json.loads(path.read_text())
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
    source = "".join(tagged[0]["source"])
    tree = ast.parse(source)
    assert tree.body, "empty parameters cell"
    lines = source.splitlines()
    for node in tree.body:
        assert isinstance(node, ast.AnnAssign), (
            f"{path.name}: untyped parameter: {ast.unparse(node)}")
        ast.literal_eval(node.value)  # literal values only
        assert "#" in lines[node.lineno - 1], f"{path.name}: parameter without a comment"


# ----------------------------------------------------------------------------- parameters

@pytest.mark.parametrize("params, match", [
    ({"preset": "vgg"}, r"Valid presets: \['cifar', 'paper', 'upsampled'\].*preset='vgg'"),
    ({"preset": "seed"}, r"The preset 'seed' is now named 'upsampled'"),
    ({"recipe": "seed"}, r"The recipe 'seed' is now named 'origin'"),
    ({"recipe": "fast"}, r"recipe='fast'.*'cpu'"),
    ({"epochs": -1}, r"Bad parameter epochs=-1: `epochs` must be a positive integer"),
    ({"towers": "yes"}, r"towers='yes'.*true or false"),
    ({"overrides": [1]}, r"overrides=\[1\].*mapping"),
    ({"seeds": []}, r"seeds=\[\].*non-empty list"),
    ({"seeds": [0, -1]}, r"seeds=\[0, -1\].*non-negative"),
    ({"variants": ["baseline", "gelu"]}, r"variants=.*'gelu'.*'one-tower'"),
    ({"target_error": 1.5}, r"target_error=1.5"),
    ({"epochs": 2.5}, r"epochs=2.5"),
    ({"val_size": -5}, r"val_size=-5"),
    ({"data": "no/such/folder"}, r"data='no/such/folder'.*does not exist"),
    ({"run_dir": ""}, r"run_dir=''"),
    ({"samples": 0}, r"samples=0"),
    ({"views": "mirror"}, r"views='mirror'.*\['center', 'flip', 'shift6', 'shift10', 'tta'\]"),
    ({"views": "shift2"}, r"The test-time views 'shift2' are now named 'shift10'"),
    ({"strategy": "tpu"}, r"strategy='tpu'.*'mirrored'"),
])
def test_bad_parameters_get_one_clear_message(params, match):
    from alexnet_lib.notebooks import check_parameters

    with pytest.raises(ValueError, match=match):
        check_parameters(**params)


def test_parameters_resolve_paths_from_the_project_root(monkeypatch, tmp_path):
    from alexnet_lib.notebooks import check_parameters
    from alexnet_lib.paths import PROJECT_ROOT

    monkeypatch.delenv("ALEXNET_RUNS_DIR", raising=False)
    p = check_parameters(run_dir="runs/x", epochs=None, data="cifar10", preset="upsampled")
    assert p.run_dir == PROJECT_ROOT / "runs" / "x"
    assert p.figures == PROJECT_ROOT / "runs" / "x" / "figures"
    assert p.data == "cifar10" and p.epochs is None and p.preset == "upsampled"
    assert check_parameters(run_dir="elsewhere/y").run_dir == PROJECT_ROOT / "elsewhere" / "y"
    monkeypatch.setenv("ALEXNET_RUNS_DIR", str(tmp_path))  # runs/ is the runs folder
    assert check_parameters(run_dir="runs/x").run_dir == tmp_path / "x"


def test_notebook_parameters_become_the_config_the_cli_makes_of_its_flags():
    """One translation: notebook 03's parameters and train's flags give the same config,
    overrides (``--set``) included."""
    from alexnet_lib.cli import build_parser, train_config_from_args
    from alexnet_lib.notebooks import check_parameters, train_config

    p = check_parameters(preset="cifar", recipe="cpu", data="cifar10", epochs=2,
                         batch_size=None, train_subset=100, val_size=10, test_subset=None,
                         seed=3, strategy="auto", run_dir="/tmp/r",
                         overrides={"image_size": 24, "learning_rate": 0.01})
    from_notebook = train_config(p)
    from_cli = train_config_from_args(build_parser().parse_args(
        ["train", "--preset", "cifar", "--recipe", "cpu", "--epochs", "2", "--train-subset",
         "100", "--val-size", "10", "--seed", "3", "--run-dir", "/tmp/r",
         "--set", "image_size=24", "--set", "learning_rate=0.01"]))
    assert from_notebook == from_cli
    assert from_notebook.preset_overrides == {"image_size": 24}
    assert from_notebook.resolve().preset.image_size == 24
    assert from_notebook.recipe_overrides == {"learning_rate": 0.01, "epochs": 2}
    p.overrides = {"epochs": 5}
    with pytest.raises(ValueError, match="epochs and overrides epochs=5 contradict"):
        train_config(p)
    p.overrides = {"colour": "red"}
    with pytest.raises(ValueError, match="overrides colour=...: 'colour' is neither"):
        train_config(p)


def test_parameter_sets_are_valid_and_name_every_notebook_parameter():
    import papermill

    from alexnet_lib.notebooks import (
        ABLATIONS,
        NOTEBOOKS,
        PARAMS_DIR,
        check_parameters,
        load_params,
    )

    declared = set()
    for name in NOTEBOOKS:
        declared |= set(papermill.inspect_notebook(str(PARAMS_DIR.parent / f"{name}.ipynb")))
    ablations = set(papermill.inspect_notebook(str(PARAMS_DIR.parent / f"{ABLATIONS}.ipynb")))
    sets = {p.stem for p in PARAMS_DIR.glob("*.yaml")}
    assert {"smoke", "cpu", "gpu-origin", "gpu-paper", "ablations-smoke", "ablations-full"} <= sets
    for name in sets:
        values = load_params(name)
        known = ablations if name.startswith("ablations-") else declared
        assert set(values) <= known, f"{name}.yaml: {set(values) - known} not declared"
        assert "run_dir" in values
        check_parameters(**{k: v for k, v in values.items() if k != "data"})
    gpu_origin = load_params("gpu-origin")
    assert gpu_origin["preset"] == "upsampled" and gpu_origin["recipe"] == "origin"
    assert load_params("gpu-paper")["recipe"] == "paper"
    with pytest.raises(ValueError, match=r"'gpu-seed' is now named 'gpu-origin'"):
        load_params("gpu-seed")
    with pytest.raises(ValueError, match=r"Unknown parameter set 'huge'.*'smoke'"):
        load_params("huge")


def test_tiny_dataset_is_a_ten_class_tree(tmp_path):
    from alexnet_lib.data.folders import scan_class_folders
    from alexnet_lib.notebooks import make_tiny_dataset

    root = make_tiny_dataset(tmp_path / "tiny", train_per_class=3, test_per_class=2, size=8)
    classes, splits = scan_class_folders(root)
    assert classes[0] == "airplane" and len(classes) == 10
    assert len(splits["train"]) == 30 and len(splits["test"]) == 20
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left
    mtime = (root / "train" / "cat" / "0000.png").stat().st_mtime_ns
    make_tiny_dataset(root)  # already there: kept as it is
    assert (root / "train" / "cat" / "0000.png").stat().st_mtime_ns == mtime


def test_run_notebooks_checks_parameters_before_starting_a_kernel(tmp_path):
    from alexnet_lib.notebooks import run_notebooks

    with pytest.raises(ValueError, match="epochs=-1"):
        run_notebooks({"run_dir": str(tmp_path), "epochs": -1})
    assert not (tmp_path / "notebooks").exists()


# ----------------------------------------------------------------------------- papermill

def _injected(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    injected = [c for c in cells if "injected-parameters" in c["metadata"].get("tags", [])]
    assert len(injected) == 1, path
    return "".join(injected[0]["source"])


def test_run_notebooks_gives_each_notebook_the_parameters_it_declares(tmp_path):
    """The parameter set reaches every notebook (executing them is nbval's job in the
    suite: each runs once, with its defaults)."""
    from alexnet_lib.notebooks import NOTEBOOKS, check_parameters, run_notebooks

    run_dir = run_notebooks({"run_dir": str(tmp_path / "run"), "data": "cifar10",
                             "preset": "cifar", "recipe": "cpu", "epochs": 4,
                             "overrides": {"learning_rate": 0.01}, "bank_size": 100},
                            prepare_only=True)
    assert run_dir == tmp_path / "run"
    assert sorted(p.stem for p in (run_dir / "notebooks").glob("*.ipynb")) == list(NOTEBOOKS)
    for name in NOTEBOOKS:
        source = _injected(run_dir / "notebooks" / f"{name}.ipynb")
        assert f"run_dir = \"{run_dir}\"" in source
        assert ('data = "cifar10"' in source) == (name != "04_results")  # 04 reads the run
        assert ("epochs = 4" in source) == (name == "03_training")
        assert ("overrides = {" in source) == (name == "03_training")
        assert ("bank_size = 100" in source) == (name == "04_results")
    assert not (run_dir / "config.yaml").exists()  # nothing ran
    # The injected values are valid parameters of their notebook.
    namespace = {}
    exec(_injected(run_dir / "notebooks" / "03_training.ipynb"), namespace)
    values = {k: v for k, v in namespace.items() if not k.startswith("__")}
    assert check_parameters(**values).overrides == {"learning_rate": 0.01}


def test_the_notebooks_command_prepares_a_parameter_set(tmp_path, capsys):
    from alexnet_lib.cli import main

    run_dir = tmp_path / "smoke"
    assert main(["notebooks", "--params", "smoke", "--run-dir", str(run_dir),
                 "--prepare-only"]) == 0
    assert f"(not executed): {run_dir / 'notebooks'}" in capsys.readouterr().out
    assert "train_subset = 1000" in _injected(run_dir / "notebooks" / "03_training.ipynb")
    assert main(["notebooks", "--params", "huge", "--run-dir", str(run_dir)]) == 2
    assert "Unknown parameter set 'huge'" in capsys.readouterr().err


@pytest.mark.notebooks
def test_a_bad_parameter_fails_in_the_first_cells(tmp_path):
    import papermill

    source = NOTEBOOKS[[p.name for p in NOTEBOOKS].index("03_training.ipynb")]
    with pytest.raises(papermill.PapermillExecutionError, match=r"recipe='fastest'") as error:
        papermill.execute_notebook(str(source), str(tmp_path / "out.ipynb"),
                                   parameters={"recipe": "fastest", "run_dir": str(tmp_path)},
                                   progress_bar=False, kernel_name="python3")
    assert error.value.exec_count <= 4  # the check right after the parameters
    assert "'cpu'" in error.value.evalue and not (tmp_path / "config.yaml").exists()


@pytest.mark.notebooks
def test_a_parameter_the_notebook_does_not_declare_is_refused(tmp_path):
    """papermill -p learning_rate abc only warns ("Passed unknown parameter"); the
    notebook's check refuses it before anything runs."""
    import papermill

    source = NOTEBOOKS[[p.name for p in NOTEBOOKS].index("03_training.ipynb")]
    with pytest.raises(papermill.PapermillExecutionError, match=r"learning_rate='abc'") as error:
        papermill.execute_notebook(str(source), str(tmp_path / "out.ipynb"),
                                   parameters={"learning_rate": "abc", "run_dir": str(tmp_path)},
                                   progress_bar=False, kernel_name="python3")
    assert error.value.exec_count <= 4 and "no parameter 'learning_rate'" in error.value.evalue
    assert not (tmp_path / "config.yaml").exists()


def test_run_notebooks_refuses_a_parameter_no_notebook_declares(tmp_path):
    from alexnet_lib.notebooks import run_notebooks

    with pytest.raises(ValueError, match=r"learning_rate=0.1: no notebook declares it"):
        run_notebooks({"run_dir": str(tmp_path), "learning_rate": 0.1})
    assert not (tmp_path / "notebooks").exists()


def test_auto_data_without_the_shared_copy_fits_the_notebook_defaults(tmp_path, monkeypatch):
    """CI machines without ../shared run the notebooks on the generated stand-in: it must
    hold the defaults' 1,000 training (+500 validation) and 1,000 test images."""
    import alexnet_lib.notebooks as nb
    from alexnet_lib.data.folders import scan_class_folders

    monkeypatch.setattr(nb, "shared_cifar10_jpeg", lambda: tmp_path / "absent")
    monkeypatch.setenv("ALEXNET_DATA_DIR", str(tmp_path / "data"))
    path = nb.resolve_data("auto")
    assert path.startswith(str(tmp_path / "data"))
    _, splits = scan_class_folders(path)
    defaults = {}
    for name in ("03_training.ipynb",):
        import papermill

        params = papermill.inspect_notebook(str(nb.NOTEBOOK_DIR / name))
        defaults = {k: int(v["default"]) for k, v in params.items()
                    if k in ("train_subset", "val_size", "test_subset")}
    assert len(splits["train"]) >= defaults["train_subset"] + defaults["val_size"]
    assert len(splits["test"]) >= defaults["test_subset"]


def test_notebook_parameters_are_the_annotated_names_with_their_values_now():
    """A parameters cell annotates its names; papermill's injected cell assigns after it."""
    from alexnet_lib.notebooks import notebook_parameters

    namespace = {}
    exec("from typing import Optional\nepochs: Optional[int] = 1\nrun_dir: str = 'runs/a'\n"
         "helper = 3\nepochs = 7  # papermill's injected value\n", namespace)
    assert notebook_parameters(namespace) == {"epochs": 7, "run_dir": "runs/a"}
    with pytest.raises(ValueError, match="annotations in its parameters cell"):
        notebook_parameters({"epochs": 1})


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_notebook_checks_its_parameters_without_naming_them_twice(path):
    nb = json.loads(path.read_text())
    sources = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert any(s.startswith("p = check_parameters(**notebook_parameters(globals()))")
               for s in sources), path.name
