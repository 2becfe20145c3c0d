"""Shared test set-up: quiet TensorFlow, deterministic seeds, the shared data path."""

import os
import tempfile

# Downloads and decoded-image caches of the test data go to a temporary folder, not the
# project's data/ (notebook kernels started by nbval inherit this too).
os.environ.setdefault("ALEXNET_DATA_DIR", tempfile.mkdtemp(prefix="alexnet-test-data-"))

# The suite compares runs to 1e-5 and restarts processes mid-run: it means the CPU's
# deterministic kernels, also on a machine with a GPU (whose decisions the tests fake:
# see test_distribute's and test_train's precision and strategy tests). Subprocesses and
# notebook kernels inherit this. ALEXNET_TEST_GPU=1 leaves the GPUs visible.
if os.environ.get("ALEXNET_TEST_GPU", "") in ("", "0"):
    os.environ["CUDA_VISIBLE_DEVICES"] = ""

import alexnet_lib.quiet  # noqa: E402,F401  (TensorFlow without its start-up lines)
import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_and_policy():
    """Every test starts from the same seeds and the float32 policy."""
    keras.utils.set_random_seed(1234)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")
