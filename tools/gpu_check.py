"""The GPU check's stages (run by ``tools/gpu_check.sh``, which installs the kit first):

1. ``resume``: the ``upsampled`` preset on a small subset, trained unbroken and killed with
   SIGKILL in its second epoch then started again: the two ``history.csv`` files must agree
   in every column but the timings.
2. ``divergence``: a learning rate of 1e12 must stop the run with one ``error:`` line, exit
   status 1 and only finite checkpoints.
3. ``notebooks``: the four notebooks through papermill with ``--params gpu-origin`` (the
   original experiment: 18 epochs of 45,000 images upsampled to 227x227); their run's test top-1,
   images/s and wall time.
4. ``predict``: JPEG test files through ``predict``.
5. ``input``: the JAX input pipeline alone (the upsampled preset's uint8 batches gathered on the
   host, upsampled, cropped and flipped on the device) in images/s, against the step's.

``--tiny`` (``TINY=1``) rehearses every stage on a CPU in minutes: a few hundred images, one
epoch, the ``smoke`` parameter set for the notebooks. Writes ``<out>/summary.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PROGRESS = re.compile(r"(\d+)/(\d+) ")
EPOCH = re.compile(r"Epoch (\d+)/\d+")
TERMINAL = re.compile(r"\x1b\[[0-9;]*m")


def say(text: str) -> None:
    print(f"[gpu-check {time.strftime('%H:%M:%S')}] {text}", flush=True)


def cli(args: list, log: Path, env: dict, kill_at: tuple[int, int] | None = None) -> int:
    """``python -m alexnet_lib *args``, its output appended to ``log``; with ``kill_at``
    ``(epoch, step)``, SIGKILL once the progress bar shows that step."""
    with log.open("a") as out:
        out.write(f"\n$ python -m alexnet_lib {' '.join(map(str, args))}\n")
        proc = subprocess.Popen([sys.executable, "-m", "alexnet_lib", *map(str, args)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=env, cwd=ROOT)
        epoch = 0
        for line in proc.stdout:
            out.write(line)
            text = TERMINAL.sub("", line).strip()
            if (header := EPOCH.fullmatch(text)) is not None:
                epoch = int(header[1])
            elif kill_at and (bar := PROGRESS.match(text)) and (
                    (epoch, int(bar[1])) >= kill_at):
                proc.send_signal(signal.SIGKILL)
                break
        return proc.wait()


def history(run: Path) -> list[dict]:
    with (run / "history.csv").open() as handle:
        return list(csv.DictReader(handle))


def without_timings(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def prepare_data(kit: Path, out: Path, tiny: bool) -> Path:
    """The CIFAR-10 JPEG copy from the kit (unpacked once), the copy beside the project, or
    (none at hand) a generated class-folder tree."""
    beside = ROOT.parent / "shared" / "datasets" / "cifar10-jpeg"
    packed = kit / "cifar10-jpeg.tar.gz"
    unpacked = kit / "data" / "cifar10-jpeg"
    if packed.is_file():
        if not (unpacked / "test").is_dir():
            say(f"unpacking {packed}")
            with tarfile.open(packed) as tar:
                tar.extractall(unpacked.parent, filter="data")
        return unpacked
    if beside.is_dir():
        return beside
    tree = out / "generated-data"
    if not (tree / "test").is_dir():
        say("no CIFAR-10 copy at hand: generating a 10-class stand-in")
        from PIL import Image

        rng = np.random.default_rng(0)
        colours = rng.integers(30, 225, (10, 3))
        for split, n in (("train", 60), ("test", 20)):
            for c in range(10):
                folder = tree / split / f"class{c}"
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(n):
                    pixels = colours[c] + rng.normal(0, 40, (32, 32, 3))
                    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
                        folder / f"{i}.jpg", quality=90)
    return tree


def stage_resume(data: Path, out: Path, env: dict, tiny: bool) -> dict:
    sizes = (["--train-subset", "96", "--val-size", "32", "--test-subset", "32",
              "--batch-size", "16", "--checkpoint-every", "2"] if tiny else
             ["--train-subset", "2048", "--val-size", "512", "--test-subset", "512",
              "--checkpoint-every", "8"])
    common = ["train", "--preset", "upsampled", "--recipe", "origin", "--data", data, "--epochs",
              "2", "--precision", "float32", "--no-evaluate", *sizes]
    log = out / "resume.log"
    unbroken, killed = out / "resume-unbroken", out / "resume-killed"
    assert cli([*common, "--run-dir", unbroken], log, env) == 0, f"see {log}"
    first = cli([*common, "--run-dir", killed], log, env, kill_at=(2, 3 if tiny else 12))
    assert first == -signal.SIGKILL, f"the run ended ({first}) before it could be killed: {log}"
    assert cli([*common, "--run-dir", killed], log, env) == 0, f"see {log}"
    identical = without_timings(history(killed)) == without_timings(history(unbroken))
    return {"resume_identical": identical, "resume_epochs": len(history(killed))}


def stage_divergence(data: Path, out: Path, env: dict, tiny: bool) -> dict:
    log = out / "divergence.log"
    run = out / "diverged"
    code = cli(["train", "--preset", "upsampled", "--recipe", "origin", "--data", data, "--epochs",
                "1", "--train-subset", "96" if tiny else "1024", "--val-size", "32",
                "--batch-size", "16" if tiny else "64", "--no-evaluate", "--run-dir", run,
                "--set", "learning_rate=1e12"], log, env)
    text = log.read_text()
    finite = True
    for path in (run / "checkpoints").glob("ckpt-*.npz"):
        with np.load(path) as arrays:
            finite &= all(np.isfinite(arrays[k]).all() for k in arrays.files
                          if arrays[k].dtype.kind == "f")
    caught = code == 1 and text.count("error:") == 1 and "non-finite" in text and finite
    return {"divergence_caught": bool(caught), "divergence_exit": code}


def stage_notebooks(data: Path, out: Path, env: dict, tiny: bool) -> dict:
    log = out / "notebooks.log"
    run = out / "notebooks"
    code = cli(["notebooks", "--params", "smoke" if tiny else "gpu-origin", "--data", data,
                "--run-dir", run], log, env)
    executed = sorted(p.name for p in (run / "notebooks").glob("*.ipynb"))
    failed = []
    for path in (run / "notebooks").glob("*.ipynb"):
        cells = json.loads(path.read_text())["cells"]
        if any(o.get("output_type") == "error" for c in cells for o in c.get("outputs", [])):
            failed.append(path.name)
    result = {"notebooks_exit": code, "notebooks_executed": len(executed) - len(failed),
              "notebooks": executed, "notebooks_failed": failed,
              "figures": len(list((run / "figures").glob("*.png")))}
    if (run / "history.csv").is_file():
        rows = history(run)
        resolved = (run / "resolved.yaml").read_text()
        train = int(re.search(r"\n  train: (\d+)", resolved)[1])
        timed = rows[1:] or rows
        seconds = sum(float(r["seconds"]) for r in timed)
        result.update(epochs=len(rows), train_images=train,
                      training_seconds=round(sum(float(r["seconds"]) for r in rows), 1),
                      images_per_second=round(train * len(timed) / seconds, 1))
    if (run / "metrics.json").is_file():
        metrics = json.loads((run / "metrics.json").read_text())
        result.update(test_top1=metrics["test_top1"], test_top5=metrics["test_top5"],
                      evaluation_seconds=metrics["seconds"], test_views=metrics["views"])
    return result


def stage_predict(data: Path, out: Path, env: dict, tiny: bool) -> dict:
    log = out / "predict.log"
    model = out / "notebooks" / "checkpoints" / "best.keras"
    classes = sorted(p.name for p in (data / "test").iterdir() if p.is_dir())
    files = [f for c in classes for f in sorted((data / "test" / c).iterdir())[:3]]
    result = subprocess.run([sys.executable, "-m", "alexnet_lib", "predict", "--checkpoint",
                             str(model), "--json", *map(str, files)], capture_output=True,
                            text=True, env=env, cwd=ROOT)
    log.write_text(result.stdout + result.stderr)
    answers = json.loads(result.stdout[result.stdout.index("["):]) if result.returncode == 0 \
        else []
    correct = sum(a.get("top", [{}])[0].get("class") == Path(a["path"]).parent.name
                  for a in answers)
    return {"predict_exit": result.returncode, "predict_files": len(files),
            "predict_correct": correct}


def stage_input(data: Path, out: Path, env: dict, tiny: bool) -> dict:
    """The training pipeline alone, in this process: images/s it can feed."""
    os.environ["ALEXNET_DATA_DIR"] = env["ALEXNET_DATA_DIR"]
    import jax

    from alexnet_lib.data.datasets import make_datasets
    from alexnet_lib.model import get_preset

    datasets = make_datasets(str(data), get_preset("upsampled"), batch_size=64, val_size=0,
                             train_subset=640 if tiny else 12_800, augment="crop,flip",
                             normalization="channel")
    batches = list(datasets.train(0))[:2]  # compiles
    jax.block_until_ready(batches[0][0])
    started = time.perf_counter()
    count = 0
    for x, _ in datasets.train(1):
        count += len(x)
    jax.block_until_ready(x)
    return {"input_images_per_second": round(count / (time.perf_counter() - started), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/gpu-check"))
    parser.add_argument("--kit", type=Path, default=Path("gpu-kit"))
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()
    out = (ROOT / args.out) if not args.out.is_absolute() else args.out
    kit = (ROOT / args.kit) if not args.kit.is_absolute() else args.kit
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    import jax
    import keras

    devices = [f"{d.platform}:{d.id} {getattr(d, 'device_kind', '')}".strip()
               for d in jax.devices()]
    summary = {"backend": keras.backend.backend(), "python": platform.python_version(),
               "jax": jax.__version__, "keras": keras.__version__, "devices": devices,
               "tiny": args.tiny, "seconds": {}}
    say(f"Python {summary['python']}, JAX {summary['jax']}, Keras {summary['keras']} "
        f"({summary['backend']}); devices: {', '.join(devices)}")
    env = {**os.environ, "ALEXNET_DATA_DIR": str(out / "data-cache"),
           "ALEXNET_RUNS_DIR": str(out)}
    tick = time.time()
    data = prepare_data(kit, out, args.tiny)
    summary["data"] = str(data)
    summary["seconds"]["data"] = round(time.time() - tick, 1)
    for name, stage in (("resume", stage_resume), ("divergence", stage_divergence),
                        ("notebooks", stage_notebooks), ("predict", stage_predict),
                        ("input", stage_input)):
        tick = time.time()
        say(f"stage {name}")
        try:
            summary.update(stage(data, out, env, args.tiny))
        except Exception as error:  # noqa: BLE001  (a stage's failure is reported, not fatal)
            summary[f"{name}_error"] = f"{type(error).__name__}: {error}"
        summary["seconds"][name] = round(time.time() - tick, 1)
        say(f"  {name}: {summary['seconds'][name]} s")
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    summary["seconds"]["total"] = round(time.time() - started, 1)
    summary["ok"] = bool(summary.get("resume_identical") and summary.get("divergence_caught")
                         and summary.get("notebooks_executed", 0) >= 4
                         and summary.get("predict_exit") == 0)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
