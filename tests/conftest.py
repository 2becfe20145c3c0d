"""Shared test set-up: quiet TensorFlow, deterministic seeds, where data and runs go, and the
one trained run the suite shares."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]

# Decoded-image caches, the generated stand-in data and the precision measurement go to a
# folder kept between runs of the suite in this checkout (decoding the 60,000 JPEGs of the
# shared copy once, not per run); `make clean` removes it. Downloads are tested in folders
# of their own. Run folders (the notebooks' under nbval included) go to a temporary folder
# removed at the end. Notebook kernels started by nbval inherit both.
os.environ.setdefault("ALEXNET_DATA_DIR", str(PROJECT / ".pytest_cache" / "alexnet-data"))
if "ALEXNET_RUNS_DIR" not in os.environ:
    _runs = tempfile.mkdtemp(prefix="alexnet-test-runs-")
    os.environ["ALEXNET_RUNS_DIR"] = _runs
    atexit.register(shutil.rmtree, _runs, ignore_errors=True)

# The suite compares runs to 1e-5 and restarts processes mid-run: it means the CPU's
# deterministic kernels, also on a machine with a GPU (whose decisions the tests fake:
# see test_distribute's and test_train's precision and strategy tests). Subprocesses and
# notebook kernels inherit this. ALEXNET_TEST_GPU=1 leaves the GPUs visible.
if os.environ.get("ALEXNET_TEST_GPU", "") in ("", "0"):
    os.environ["CUDA_VISIBLE_DEVICES"] = ""

import alexnet_lib.quiet  # noqa: E402,F401  (TensorFlow without its start-up lines)

# isort: split

import keras  # noqa: E402
import pytest  # noqa: E402


def pytest_collection_modifyitems(items):
    """A test that needs the shared trained run is slow (it trains once per session)."""
    for item in items:
        if "trained" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _seed_and_policy():
    """Every test starts from the same seeds and the float32 policy."""
    keras.utils.set_random_seed(1234)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture(scope="session")
def tree(tmp_path_factory):
    """``helpers.tiny.make_tree``'s four-class data (read-only: copy it to change it)."""
    from helpers.tiny import make_tree

    return make_tree(tmp_path_factory.mktemp("tree"))


@pytest.fixture(scope="session")
def trained(tree, tmp_path_factory):
    """One finished run of ``helpers.tiny.config`` (3 epochs), evaluated with the centre
    view: its ``trainer`` (model, datasets, optimizer) and ``run_dir``. Read-only: tests that
    change a run work on ``helpers.tiny.copy_run``'s copy."""
    from helpers.tiny import config

    from alexnet_lib.evaluate import evaluate
    from alexnet_lib.train import Trainer

    run_dir = tmp_path_factory.mktemp("trained") / "run"
    trainer = Trainer(config(tree, run_dir))
    trainer.history = trainer.fit()
    trainer.metrics = evaluate(run_dir, views="center")
    return trainer
