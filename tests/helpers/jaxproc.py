"""Running code in a fresh Python on Keras's JAX backend (CPU), where ``import tensorflow``
fails: what a JAX-only GPU machine is, rehearsed here."""

import json
import subprocess
import sys
from pathlib import Path


def jax_env(tmp_path: Path, block_tensorflow: bool = True, **extra: str) -> dict:
    """A minimal environment: JAX on the CPU, and (by default) a ``sitecustomize.py`` that
    makes ``import tensorflow`` fail."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    if block_tensorflow:
        (site / "sitecustomize.py").write_text(
            'import sys\nsys.modules["tensorflow"] = None  # "import tensorflow" fails\n')
    return {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "KERAS_BACKEND": "jax",
            "JAX_PLATFORMS": "cpu", "HOME": str(tmp_path), **extra}


def run_python(code: str, *args, env: dict, timeout: int = 300) -> dict:
    """Run ``code`` with ``args``; the JSON object on its last line of output."""
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
