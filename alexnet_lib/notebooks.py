"""What the notebooks need besides the model, data, training and plots: parameter checks
that fail in the first cell with one clear message, the data a parameter names (``auto``:
the CIFAR-10 JPEG copy beside the project, else a small generated stand-in), live learning
curves, and the papermill runner behind ``make notebooks PARAMS=<name>``.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import shutil
import tempfile
import types
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .ablations import (
    VARIANTS,
    Sweep,
    markdown_table,
    run_sweep,
    summarize,
)
from .checks import check_bool, check_choice, check_float, check_int, check_mapping
from .config import STRATEGIES, TrainConfig, check_recipe_name, make_train_config
from .data.preprocessing import check_views
from .files import read_yaml
from .model import check_preset_name
from .paths import PROJECT_ROOT, data_dir, project_path, shared_cifar10_jpeg
from .runs import RunFolder

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
PARAMS_DIR = NOTEBOOK_DIR / "params"
NOTEBOOKS = ("01_data_exploration", "02_model_building", "03_training", "04_results")
# The ablation sweep's notebook, run on its own (make ablations): parameter sets ablations-*.
ABLATIONS = "05_ablations"
TINY_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                "ship", "truck")


# ----------------------------------------------------------------------------- data

def make_tiny_dataset(root: str | os.PathLike, train_per_class: int = 200,
                      test_per_class: int = 100, size: int = 32, seed: int = 0) -> Path:
    """A small learnable stand-in for CIFAR-10 as a class-folder tree (PNG, 10 classes
    with CIFAR-10's names): each class has its own colour and stripe direction under
    noise. Written to a temporary folder and renamed, so it is never half there."""
    root = Path(root)
    if (root / "train").is_dir() and (root / "test").is_dir():
        return root
    from PIL import Image

    rng = np.random.default_rng(seed)
    palette = rng.uniform(40, 215, (len(TINY_CLASSES), 3))
    yy, xx = np.mgrid[0:size, 0:size]
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        for split, n in (("train", train_per_class), ("test", test_per_class)):
            for label, name in enumerate(TINY_CLASSES):
                folder = staging / split / name
                folder.mkdir(parents=True)
                angle = np.pi * label / len(TINY_CLASSES)
                stripes = 30 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 0.8)
                for i in range(n):
                    noise = rng.normal(0, 90, (size, size, 3))
                    pixels = palette[label] + stripes[..., None] + noise
                    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
                        folder / f"{i:04d}.png")
        try:
            os.replace(staging, root)
        except OSError:  # another process finished first
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return root


def resolve_data(data: str) -> str:
    """The data source a notebook parameter names.

    ``"auto"``: the CIFAR-10 JPEG copy at ``../shared/datasets/cifar10-jpeg`` when it is
    there, else a generated class-folder tree in the data folder (2,000 training and 1,000
    test PNGs, 32x32, 10 classes). ``"cifar10"``
    downloads (or reuses) the official archive. Anything else is a path (relative paths
    from the project root): an archive, an extracted CIFAR-10 folder or a class-folder tree.
    """
    if data == "auto":
        shared = shared_cifar10_jpeg()
        # Large enough for the notebooks' defaults (1,000 training images beside 500 for
        # validation, 1,000 test images).
        return str(shared) if shared.is_dir() else str(
            make_tiny_dataset(data_dir() / "tiny-cifar10-200-100"))
    if data == "cifar10":
        return data
    path = project_path(data)
    if not path.exists():
        raise ValueError(f"Bad parameter data={data!r}: {path} does not exist. Use 'auto', "
                         f"'cifar10', or the path of a CIFAR-10 archive, its folder or a "
                         f"class-folder tree (e.g. ../shared/datasets/cifar10-jpeg).")
    return str(path)


# ----------------------------------------------------------------------------- parameters

def injected_parameters() -> dict[str, Any]:
    """``{name: value}`` of the parameters papermill injected into the running
    notebook (its ``# Parameters`` cell, read from the kernel's input history); empty
    outside a kernel or without papermill. Papermill passes on names a notebook does not
    declare with only a warning; :func:`check_parameters` refuses them."""
    try:
        from IPython import get_ipython
    except ImportError:
        return {}
    shell = get_ipython()
    if shell is None:
        return {}
    names: dict[str, Any] = {}
    for source in shell.user_ns.get("In", []):
        lines = source.splitlines()
        if not lines or lines[0].strip() != "# Parameters":
            continue
        try:
            body = ast.parse(source).body
        except SyntaxError:
            continue
        for node in body:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        text = ast.get_source_segment(source, node.value) or ""
                        try:
                            names[target.id] = ast.literal_eval(text)
                        except (ValueError, SyntaxError):
                            names[target.id] = text
    return names


# Each known parameter and its check (value -> checked value); any other integer is
# checked to be positive.
_CHECKS = {
    "preset": lambda name, value: check_preset_name(value, name),
    "recipe": lambda name, value: check_recipe_name(value, name),
    "epochs": lambda name, value: check_int(name, value, 1, allow_none=True),
    "batch_size": lambda name, value: check_int(name, value, 1, allow_none=True),
    "train_subset": lambda name, value: check_int(name, value, 1, allow_none=True),
    "test_subset": lambda name, value: check_int(name, value, 1, allow_none=True),
    "val_size": lambda name, value: check_int(name, value, 0, allow_none=True),
    "seed": lambda name, value: check_int(name, value, 0),
    "strategy": lambda name, value: check_choice(name, value, STRATEGIES),
    "views": lambda name, value: None if value is None else check_views(value, name),
    "towers": check_bool,
    "lrn": check_bool,
    "overrides": lambda name, value: check_mapping(name, value),
    "seeds": lambda name, value: _check_list(name, value, lambda v: check_int(name, v, 0)),
    "variants": lambda name, value: _check_list(
        name, value, lambda v: check_choice(name, v, VARIANTS)),
    "target_error": lambda name, value: check_float(name, value, 0.0, 1.0, min_open=True,
                                                    max_open=True),
}


def _check_list(name: str, value: Any, check) -> list:
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"`{name}` must be a non-empty list. Received: {name}={value!r}")
    return [check(v) for v in value]


def notebook_parameters(namespace: dict[str, Any]) -> dict[str, Any]:
    """A notebook's parameters by name, in the order its parameters cell declares them: the
    names it annotates (``epochs: Optional[int] = 1``), with their values now (papermill's
    injected cell assigns after it). ``check_parameters(**notebook_parameters(globals()))``
    checks them without naming each one twice.

    Raises:
        ValueError: when the namespace declares no annotated parameter.
    """
    declared = list(namespace.get("__annotations__", {}))
    if not declared:
        raise ValueError("No parameters found: a notebook declares its parameters with "
                         "annotations in its parameters cell (e.g. `epochs: int = 1`).")
    return {name: namespace[name] for name in declared if name in namespace}


def check_parameters(**params: Any) -> types.SimpleNamespace:
    """Validate a notebook's parameters, resolve ``data`` and ``run_dir``, and claim the run
    folder (:meth:`~alexnet_lib.runs.RunFolder.claim`: a new, empty or project folder).

    Known names: ``preset``, ``recipe``, ``data``, ``run_data`` (where a run's data is now;
    ``""``: where it was), ``run_dir``, ``epochs``, ``batch_size``,
    ``train_subset``, ``test_subset``, ``val_size``, ``seed``, ``strategy``, ``views``,
    ``towers``, ``lrn``, ``overrides``, ``seeds``, ``variants``, ``target_error``; any other
    integer is checked to be positive. Returns
    the values as attributes (``data`` resolved, ``run_dir`` and ``figures`` as paths; a
    relative ``run_dir`` is under the project, ``runs/...`` under the runs folder).

    Raises:
        ValueError: one message naming the bad parameter, its value and what is valid.
    """
    injected = injected_parameters()
    unknown = sorted(set(injected) - set(params))
    if unknown:
        raise ValueError(
            f"Bad parameter {unknown[0]}={injected[unknown[0]]!r}: this notebook "
            f"has no parameter {unknown[0]!r} (papermill only warned). Its parameters: "
            f"{', '.join(params)}.")
    out = dict(params)
    for name, value in params.items():
        try:
            if name in _CHECKS:
                out[name] = _CHECKS[name](name, value)
            elif name == "run_dir":
                if not isinstance(value, str) or not value.strip():
                    raise ValueError(f"`run_dir` must be a folder path (relative paths are "
                                     f"from the project root). Received: run_dir={value!r}")
                out["run_dir"] = project_path(value)
                out["figures"] = RunFolder(out["run_dir"]).figures
            elif name == "run_data":
                if not isinstance(value, str):
                    raise ValueError(f"`run_data` must be a path, or '' for where the run's "
                                     f"data was. Received: run_data={value!r}")
                out["run_data"] = resolve_data(value) if value else None
            elif name == "data":
                if not isinstance(value, str):
                    raise ValueError(f"`data` must be 'auto', 'cifar10' or a path. "
                                     f"Received: data={value!r}")
                out["data"] = resolve_data(value)
            elif isinstance(value, int) and not isinstance(value, bool):
                out[name] = check_int(name, value, 1)
        except ValueError as error:
            raise ValueError(f"Bad parameter {name}={value!r}: {error}") from None
    if "run_dir" in out:
        # Every notebook writes into its run folder (figures, a run, a sweep): only into one
        # of this project's, and not inside the data.
        try:
            RunFolder(out["run_dir"]).claim("run_dir", data=out.get("data"))
        except ValueError as error:
            raise ValueError(f"Bad parameter run_dir={params['run_dir']!r}: {error}") from None
    return types.SimpleNamespace(**out)


def train_config(p: types.SimpleNamespace) -> TrainConfig:
    """The :class:`~alexnet_lib.config.TrainConfig` of notebook 03's checked parameters,
    translated as the CLI translates its flags (:func:`~alexnet_lib.config.make_train_config`):
    ``overrides`` are preset and recipe fields by name (as ``--set``), ``epochs`` and
    ``batch_size`` of ``None`` keep the recipe's.

    Raises:
        ValueError: naming the bad parameter.
    """
    flags = {field: (field, getattr(p, field, None)) for field in ("epochs", "batch_size")}
    return make_train_config(
        preset=p.preset, recipe=p.recipe, overrides=getattr(p, "overrides", None) or {},
        recipe_flags=flags, overrides_name="overrides", data=p.data, val_size=p.val_size,
        train_subset=p.train_subset, test_subset=p.test_subset, seed=p.seed,
        run_dir=str(p.run_dir), strategy=getattr(p, "strategy", "auto"))


# ----------------------------------------------------------------------------- live curves

class LiveCurves:
    """An ``on_epoch_end`` hook for :func:`alexnet_lib.train.train` that redraws the
    loss and accuracy curves in place in a notebook after every epoch."""

    def __init__(self):
        self._handle = None

    def __call__(self, row: dict, history: Sequence[dict]) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        from .plots import plot_curves  # lazy: matplotlib only once curves are drawn

        fig = plot_curves(history)
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)
        plt.close(fig)


# ----------------------------------------------------------------------------- papermill

# Earlier names of parameter sets, refused with the new one.
RENAMED_PARAMS = {"gpu-seed": "gpu-origin"}


def load_params(name: str) -> dict[str, Any]:
    """``notebooks/params/<name>.yaml``: a name of a file in that folder (no path), holding a
    mapping of parameter names to values.

    Raises:
        ValueError: for another name, or a file that is not such a mapping.
    """
    names = sorted(p.stem for p in PARAMS_DIR.glob("*.yaml"))
    if isinstance(name, str) and name in RENAMED_PARAMS:
        raise ValueError(f"The parameter set {name!r} is now named {RENAMED_PARAMS[name]!r}: "
                         f"give --params {RENAMED_PARAMS[name]}.")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) \
            or ".." in name or not (PARAMS_DIR / f"{name}.yaml").is_file():
        raise ValueError(f"Unknown parameter set {name!r}: choose one of {names} "
                         f"(the names of the files in {PARAMS_DIR}).")
    path = PARAMS_DIR / f"{name}.yaml"
    values = read_yaml(path, "The parameter set")
    if values is None:
        return {}
    if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
        raise ValueError(f"The parameter set {path} holds {type(values).__name__} where a "
                         f"mapping of parameter names to values belongs (e.g. `epochs: 2`).")
    return values


def run_notebooks(params: str | dict[str, Any], *, data: str | None = None,
                  run_dir: str | None = None, notebooks: Sequence[str] = NOTEBOOKS,
                  kernel_name: str = "python3", log_output: bool = False,
                  prepare_only: bool = False) -> Path:
    """Execute the notebooks in order with papermill, each given the parameters it
    declares, and write the executed copies to ``<run_dir>/notebooks/``.

    Args:
        params: a parameter-set name (``smoke``, ``cpu``, ``gpu-origin``, ``gpu-paper``...) or
            a dict of parameters.
        data, run_dir: override the set's ``data`` and ``run_dir``.
        notebooks: which notebooks (names without ``.ipynb``), in order.
        prepare_only: write the notebooks with their parameters injected, unexecuted.

    Returns:
        The run folder.

    Raises:
        ValueError: for an unknown set or a bad parameter (before any notebook starts).
        papermill.PapermillExecutionError: when a cell fails; the executed copy up to the
            failing cell is in ``<run_dir>/notebooks/``.
    """
    import papermill

    values = dict(load_params(params) if isinstance(params, str) else params)
    if data is not None:
        values["data"] = data
    if run_dir is not None:
        values["run_dir"] = run_dir
    if "run_dir" not in values:
        raise ValueError("The parameters need a run_dir (where the run and the executed "
                         "notebooks go).")
    sources = [NOTEBOOK_DIR / f"{name}.ipynb" for name in notebooks]
    for source in sources:
        if not source.exists():
            raise ValueError(f"No notebook {source}; choose from {[*NOTEBOOKS, ABLATIONS]}.")
    declared = {source: set(papermill.inspect_notebook(str(source))) for source in sources}
    known = set().union(*declared.values())
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"Bad parameter {unknown[0]}={values[unknown[0]]!r}: no notebook "
                         f"declares it. The notebooks' parameters: {', '.join(sorted(known))}.")
    checked = check_parameters(**values)  # fail before any kernel starts (and claim run_dir)
    values["run_dir"] = str(checked.run_dir)
    if "data" in values:
        values["data"] = checked.data
    out_dir = RunFolder(checked.run_dir).notebooks
    out_dir.mkdir(parents=True, exist_ok=True)
    for source in sources:
        papermill.execute_notebook(
            str(source), str(out_dir / source.name),
            parameters={k: v for k, v in values.items() if k in declared[source]},
            cwd=str(PROJECT_ROOT), kernel_name=kernel_name, progress_bar=False,
            log_output=log_output, prepare_only=prepare_only)
    return checked.run_dir


def run_ablations(params: str | dict[str, Any], *, data: str | None = None,
                  run_dir: str | None = None, log: Callable[[str], None] = print,
                  **overrides: Any) -> str:
    """The sweep of a parameter set (``notebooks/params/ablations-<name>.yaml``, or a dict of
    notebook 05's parameters) with ``overrides`` of its parameters (e.g. ``variants``,
    ``seeds``), run, summarized and saved; returns the Markdown table."""
    values = dict(load_params(f"ablations-{params}") if isinstance(params, str) else params)
    values.update(overrides)
    if data is not None:
        values["data"] = data
    if run_dir is not None:
        values["run_dir"] = run_dir
    sweep = sweep_from_parameters(check_parameters(**values))
    _, table = summarize(sweep, run_sweep(sweep, log=log))
    return markdown_table(table)


def sweep_from_parameters(p: types.SimpleNamespace) -> Sweep:
    """The :class:`~alexnet_lib.ablations.Sweep` of notebook 05's checked parameters."""
    fields = {f.name for f in dataclasses.fields(Sweep)} - {"root", "data"}
    return Sweep(root=p.run_dir, data=p.data,
                 **{k: v for k, v in vars(p).items() if k in fields})
