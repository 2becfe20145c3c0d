"""The GPU kit: what a JAX-only GPU machine (JAX with CUDA, NumPy, Pillow, Matplotlib,
pandas, PyYAML, h5py, TensorBoard, pytest; no network) lacks to train, evaluate, predict and
run the notebooks through papermill -- Keras, papermill, nbclient, ipykernel and their
dependencies as wheels for CPython 3.11 and 3.12 -- and the CIFAR-10 JPEG copy packed.

    python tools/gpu_kit.py lock      # resolve the pins and hashes (network): tools/gpu-kit/
    python tools/gpu_kit.py build     # gpu-kit/: the locked wheels, hash-checked, + the data
    python tools/gpu_kit.py install --target DIR   # offline, on the GPU machine (stdlib only)

``make gpu-kit`` runs ``build``. The lock files (``tools/gpu-kit/requirements-cp3XX.txt``)
are tracked; ``gpu-kit/`` is not. Left out: what the GPU machine has (:data:`PRESENT`) and
the optional heavy packages nothing here needs (:data:`LEFT_OUT`: the debugger and the
completion engine of IPython, which import them only when present).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ROOT / "tools" / "gpu-kit"
KIT = ROOT / "gpu-kit"
PYTHONS = ("3.11", "3.12")
# What the kit brings (with their dependencies); keras pinned to the version the project
# is tested with, so that .keras files move between the machines.
WANTED = ("keras==3.15.1", "papermill", "nbclient", "ipykernel", "nbformat")
# On the GPU machine already (and what they depend on), by normalized name.
PRESENT = {
    "jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda12-pjrt", "numpy", "pillow", "matplotlib",
    "pandas", "pyyaml", "h5py", "tensorboard", "pytest", "ml-dtypes", "opt-einsum", "scipy",
    "contourpy", "cycler", "fonttools", "kiwisolver", "packaging", "pyparsing",
    "python-dateutil", "six", "pytz", "tzdata", "absl-py", "grpcio", "markdown", "protobuf",
    "setuptools", "tensorboard-data-server", "werkzeug", "markupsafe", "iniconfig", "pluggy",
}
# Optional and heavy: IPython and ipykernel run without them.
LEFT_OUT = {"debugpy", "jedi", "parso"}
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64",
             "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux1_x86_64",
             "manylinux2010_x86_64", "linux_x86_64")
LIMIT_MIB = 60
_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)-.*\.whl$")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_file(python: str) -> Path:
    return LOCKS / f"requirements-cp{python.replace('.', '')}.txt"


def _download(python: str, args: list[str], dest: Path) -> None:
    platforms = [f"--platform={p}" for p in PLATFORMS]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(dest),
                    "--only-binary=:all:", f"--python-version={python}",
                    "--implementation=cp", *platforms, *args], check=True)


def lock() -> None:
    """Resolve :data:`WANTED` for each Python and write the lock files (name, version and
    the sha256 of each wheel kept)."""
    LOCKS.mkdir(parents=True, exist_ok=True)
    for python in PYTHONS:
        with tempfile.TemporaryDirectory() as tmp:
            _download(python, list(WANTED), Path(tmp))
            lines = []
            for wheel in sorted(Path(tmp).glob("*.whl")):
                match = _WHEEL.match(wheel.name)
                name = normalize(match["name"])
                if name in PRESENT or name in LEFT_OUT:
                    continue
                digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
                lines.append(f"{name}=={match['version']} --hash=sha256:{digest}")
        lock_file(python).write_text(
            f"# The GPU kit's wheels for CPython {python} (tools/gpu_kit.py lock).\n"
            + "\n".join(lines) + "\n")
        print(f"{lock_file(python).relative_to(ROOT)}: {len(lines)} wheels")


def build(data: Path | None) -> None:
    """``gpu-kit/``: the locked wheels (pip checks every hash), the lock files, this
    script, and ``data`` packed as ``cifar10-jpeg.tar.gz`` when given."""
    wheels = KIT / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    for python in PYTHONS:
        _download(python, ["--no-deps", "--require-hashes", "-r", str(lock_file(python))],
                  wheels)
        shutil.copy2(lock_file(python), KIT / lock_file(python).name)
    wanted = {line.split()[0].replace("==", "-").lower() for python in PYTHONS
              for line in lock_file(python).read_text().splitlines()
              if line and not line.startswith("#")}
    for wheel in wheels.glob("*.whl"):  # wheels of an older lock
        match = _WHEEL.match(wheel.name)
        if f"{normalize(match['name'])}-{match['version']}".lower() not in wanted:
            wheel.unlink()
    shutil.copy2(Path(__file__), KIT / "gpu_kit.py")
    if data is not None and data.is_dir():
        packed = KIT / "cifar10-jpeg.tar.gz"
        if not packed.exists():
            partial = packed.with_suffix(".partial")
            with tarfile.open(partial, "w:gz") as tar:
                tar.add(data, arcname="cifar10-jpeg")
            partial.rename(packed)
    elif data is not None:
        print(f"note: {data} is not here; the kit holds no data (the check then uses a "
              f"generated stand-in).")
    total = sum(p.stat().st_size for p in KIT.rglob("*") if p.is_file())
    print(f"{KIT.relative_to(ROOT)}/: {len(list(wheels.glob('*.whl')))} wheels, "
          f"{total / 2 ** 20:.1f} MiB in all")
    if total > LIMIT_MIB * 2 ** 20:
        sys.exit(f"error: the kit is {total / 2 ** 20:.1f} MiB, over {LIMIT_MIB} MiB.")


def _compatible(wheel: str, python: str) -> bool:
    """Whether a wheel's tags fit CPython ``python`` (``3.12``) on Linux x86-64."""
    tags = wheel[:-4].split("-")[-3:]
    pys, abis, platforms = (t.split(".") for t in tags)
    cp = f"cp{python.replace('.', '')}"
    if not (cp in pys or "py3" in pys or "py2.py3" in tags[0] or any(
            p.startswith("cp3") and "abi3" in abis and int(p[3:]) <= int(cp[3:]) for p in pys)):
        return False
    if not ({"none", cp, "abi3"} & set(abis)):
        return False
    return any(p == "any" or p.endswith("x86_64") for p in platforms)


def install(target: Path, kit: Path) -> None:
    """Unpack the kit's wheels for this Python into ``target`` (no network, no pip): each
    wheel's files, its ``.data/purelib`` and ``platlib`` merged in, as pip would."""
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    locked = kit / f"requirements-cp{python.replace('.', '')}.txt"
    if not locked.is_file():
        sys.exit(f"error: the kit has no wheels for Python {python} (it has "
                 f"{sorted(p.name for p in kit.glob('requirements-*.txt'))}); run the check "
                 f"with python3.11 or python3.12.")
    pins = {}
    for line in locked.read_text().splitlines():
        if line and not line.startswith("#"):
            name, rest = line.split("==", 1)
            pins[name] = (rest.split()[0], rest.split("sha256:")[1])
    target.mkdir(parents=True, exist_ok=True)
    done = []
    for wheel in sorted((kit / "wheels").glob("*.whl")):
        match = _WHEEL.match(wheel.name)
        name = normalize(match["name"])
        if name not in pins or pins[name][0] != match["version"] or not _compatible(
                wheel.name, python):
            continue
        if hashlib.sha256(wheel.read_bytes()).hexdigest() != pins[name][1]:
            continue  # another build of the same version (another Python's)
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                parts = member.split("/")
                if ".." in parts or member.startswith("/"):
                    sys.exit(f"error: {wheel.name} holds an unsafe path {member!r}.")
                if parts[0].endswith(".data"):
                    if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                        continue
                    out = target.joinpath(*parts[2:])
                else:
                    out = target / member
                if member.endswith("/"):
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(archive.read(member))
        done.append(name)
    missing = sorted(set(pins) - set(done))
    if missing:
        sys.exit(f"error: the kit lacks wheels for {', '.join(missing)} (Python {python}): "
                 f"run make gpu-kit again.")
    print(f"installed {len(done)} wheels into {target}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("lock", help="resolve the pins and hashes (needs the package index)")
    build_parser = commands.add_parser("build", help="fill gpu-kit/ from the lock files")
    build_parser.add_argument("--data", type=Path,
                              default=ROOT.parent / "shared" / "datasets" / "cifar10-jpeg")
    install_parser = commands.add_parser("install", help="unpack the kit (offline)")
    install_parser.add_argument("--target", type=Path, required=True)
    install_parser.add_argument("--kit", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args(argv)
    if args.command == "lock":
        lock()
    elif args.command == "build":
        build(args.data)
    else:
        install(args.target, args.kit)


if __name__ == "__main__":
    os.umask(0o022)
    main()
