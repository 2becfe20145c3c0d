"""Notebook hygiene: committed without outputs, one tagged parameters cell with typed,
commented literals. (Executing them is nbval's job: `make test` runs --nbval-lax.)"""

import ast
import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS


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
        assert isinstance(node, ast.AnnAssign), f"{path.name}: untyped parameter: {ast.unparse(node)}"
        ast.literal_eval(node.value)  # literal values only
        assert "#" in lines[node.lineno - 1], f"{path.name}: parameter without a comment"


# ----------------------------------------------------------------------------- parameters

@pytest.mark.parametrize("params, match", [
    ({"preset": "vgg"}, r"preset='vgg'.*\['cifar', 'paper', 'seed'\]"),
    ({"recipe": "fast"}, r"recipe='fast'.*'cpu'"),
    ({"epochs": -1}, r"epochs=-1: must be an integer >= 1"),
    ({"epochs": 2.5}, r"epochs=2.5"),
    ({"val_size": -5}, r"val_size=-5"),
    ({"data": "no/such/folder"}, r"data='no/such/folder'.*does not exist"),
    ({"run_dir": ""}, r"run_dir=''"),
    ({"samples": 0}, r"samples=0"),
    ({"views": "mirror"}, r"views='mirror'.*\['center', 'flip', 'tta'\]"),
    ({"strategy": "tpu"}, r"strategy='tpu'.*'mirrored'"),
])
def test_bad_parameters_get_one_clear_message(params, match):
    from alexnet_lib.notebooks import check_parameters

    with pytest.raises(ValueError, match=match):
        check_parameters(**params)


def test_parameters_resolve_paths_from_the_project_root():
    from alexnet_lib.notebooks import check_parameters
    from alexnet_lib.paths import PROJECT_ROOT

    p = check_parameters(run_dir="runs/x", epochs=None, data="cifar10", preset="seed")
    assert p.run_dir == PROJECT_ROOT / "runs" / "x"
    assert p.figures == PROJECT_ROOT / "runs" / "x" / "figures"
    assert p.data == "cifar10" and p.epochs is None and p.preset == "seed"


def test_parameter_sets_are_valid_and_name_every_notebook_parameter():
    import papermill

    from alexnet_lib.notebooks import NOTEBOOKS, PARAMS_DIR, load_params

    declared = set()
    for name in NOTEBOOKS:
        declared |= set(papermill.inspect_notebook(str(PARAMS_DIR.parent / f"{name}.ipynb")))
    sets = {p.stem for p in PARAMS_DIR.glob("*.yaml")}
    assert {"smoke", "cpu", "gpu-seed", "gpu-paper"} <= sets
    for name in sets:
        values = load_params(name)
        assert set(values) <= declared, f"{name}.yaml: {set(values) - declared} not declared"
        assert "run_dir" in values
    assert load_params("gpu-seed")["preset"] == "seed" and load_params("gpu-seed")["recipe"] == "seed"
    assert load_params("gpu-paper")["recipe"] == "paper"
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

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from alexnet_lib.notebooks import make_tiny_dataset

    return make_tiny_dataset(tmp_path_factory.mktemp("data") / "tiny", train_per_class=40,
                             test_per_class=10)


FIGURES = {"class_counts", "samples", "pixel_statistics", "upsampling", "architecture",
           "lrn_effect", "learning_curves", "curves", "confusion", "top5_grid", "mistakes",
           "conv1_kernels", "nearest_neighbours"}


@pytest.mark.notebooks
@pytest.mark.slow
def test_papermill_runs_all_four_with_injected_parameters(tiny, tmp_path):
    from alexnet_lib.notebooks import NOTEBOOKS, run_notebooks

    run_dir = run_notebooks({"run_dir": str(tmp_path / "run"), "data": str(tiny),
                             "preset": "cifar", "recipe": "cpu", "epochs": 4,
                             "batch_size": 32, "train_subset": None, "val_size": 40,
                             "test_subset": None, "bank_size": 100, "queries": 2,
                             "timing_steps": 1})
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["num_examples"] == 100
    assert metrics["test_top1"] > 0.4  # ten classes: chance is 0.1
    assert metrics["data"] == str(tiny)
    assert {p.stem for p in (run_dir / "figures").glob("*.png")} == FIGURES
    for name in NOTEBOOKS:
        executed = json.loads((run_dir / "notebooks" / f"{name}.ipynb").read_text())
        injected = [c for c in executed["cells"]
                    if "injected-parameters" in c["metadata"].get("tags", [])]
        source = "".join(injected[0]["source"]) if len(injected) == 1 else ""
        assert str(run_dir) in source
        assert (str(tiny) in source) == (name != "04_results")  # 04 reads only the run
    history = (run_dir / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 4


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
