"""The paper's claims, tested by a sweep of ablations on CIFAR-10.

Each variant is the ``cifar`` preset with one of the paper's choices undone through the
preset overrides, trained with the ``ablation`` recipe for the same budget (images, epochs,
batch), on the same data split, for each seed; each (variant, seed) trains into its own run
folder ``<root>/<variant>-seed<seed>``, so an interrupted sweep resumes and a finished run is
not trained again. Every run is then measured the same way:

* the training error after each epoch (the running error of the epoch, as the paper's
  Figure 1 plots it), and the optimizer steps and seconds until it first reached 25%;
* the test error (centre view, dropout off) and the training-split error measured the same
  way, whose difference is the generalization gap dropout is meant to shrink;
* for Figure 3, a colour measure of every conv1 kernel (:func:`colour_share`), averaged per
  tower.

:func:`claims` compares the variants seed by seed (a paired difference per seed) and states
for each claim whether it holds: every seed's difference in the paper's direction and the
mean difference larger than the differences' standard deviation; ``does not hold``: the
same in the other direction; ``inconclusive`` otherwise.
"""

from __future__ import annotations

from . import quiet  # noqa: F401  (first: hides TensorFlow's start-up lines)

# isort: split

import dataclasses
import json
import logging
import math
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .analysis import conv1_kernels
from .checks import check_float, check_int, check_mapping
from .config import TrainConfig
from .evaluate import evaluate
from .files import claim_folder, write_atomic
from .metrics import classification_metrics, predict_probabilities
from .run_data import build_datasets
from .runs import RunFolder, load_model
from .train import Trainer

# Each variant: the preset overrides that undo one of the paper's choices.
VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {},                           # ReLU, LRN, 3x3/2 pools, dropout 0.5, two towers
    # Figure 1's networks had no regularization: tanh is compared with no-dropout's ReLU.
    "tanh": {"activation": "tanh", "dropout": 0.0},
    "no-lrn": {"lrn": False},
    "non-overlapping": {"pool": "non-overlapping"},
    "no-dropout": {"dropout": 0.0},
    "one-tower": {"towers": False},
}
# The error the paper's Figure 1 times the networks to.
TARGET_TRAIN_ERROR = 0.25


@dataclasses.dataclass(frozen=True)
class Claim:
    """One of the paper's claims as a comparison of two variants.

    ``measure`` names a per-run number (see :func:`measure_run`); ``better`` is ``"lower"``
    when the paper's variant should have the lower value.
    """

    name: str
    paper: str
    ours: str  # the variant the paper's choice is (its claim is about this one)
    other: str
    measure: str
    better: str = "lower"


CLAIMS = (
    Claim("ReLU trains faster than tanh", "25% training error 6x sooner (Figure 1; a 4-layer "
          "CNN on CIFAR-10, no regularization)", "no-dropout", "tanh", "steps_to_target"),
    Claim("LRN lowers the error", "13% -> 11% test error on CIFAR-10 (a 4-layer CNN); "
          "-1.4% top-1 on ImageNet", "baseline", "no-lrn", "test_error"),
    Claim("Overlapping pooling lowers the error", "-0.4% top-1, -0.3% top-5 on ImageNet",
          "baseline", "non-overlapping", "test_error"),
    Claim("Dropout curbs overfitting", "without it, substantial overfitting (section 4.2)",
          "baseline", "no-dropout", "generalization_gap"),
    Claim("Dropout lowers the test error", "implied (section 4.2: without it, substantial "
          "overfitting); it about doubles the iterations to converge", "baseline",
          "no-dropout", "test_error"),
    Claim("Two towers lower the error", "-1.7% top-1, -1.2% top-5 on ImageNet",
          "baseline", "one-tower", "test_error"),
)


@dataclasses.dataclass
class Sweep:
    """What a sweep trains: variants x seeds on one data source, all with one budget.

    Attributes:
        root: the sweep's folder (one run folder per variant and seed, and the summary).
        data: the data source (as ``train --data``).
        seeds: the seeds; each gives its own data split, order and initialization, shared
            by every variant.
        variants: names from :data:`VARIANTS`.
        train_subset, val_size, test_subset, epochs, batch_size: the budget.
        target_error: the training error the ReLU/tanh comparison times (the paper's 25%).
        overrides: further recipe fields for every variant (e.g. ``learning_rate``).
    """

    root: Path
    data: str
    seeds: tuple[int, ...] = (0, 1, 2)
    variants: tuple[str, ...] = tuple(VARIANTS)
    train_subset: int | None = 16000
    val_size: int = 2000
    test_subset: int | None = None
    epochs: int = 5
    batch_size: int = 64
    target_error: float = TARGET_TRAIN_ERROR
    overrides: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.root = Path(self.root)
        self.seeds = tuple(check_int("seeds", s, 0) for s in self.seeds)
        if not self.seeds:
            raise ValueError("`seeds` must name at least one seed. Received: seeds=()")
        unknown = sorted(set(self.variants) - set(VARIANTS))
        if unknown:
            raise ValueError(f"Unknown variant(s) {unknown}: choose from {list(VARIANTS)}.")
        self.variants = tuple(self.variants)
        self.epochs = check_int("epochs", self.epochs, 1)
        self.batch_size = check_int("batch_size", self.batch_size, 1)
        self.overrides = check_mapping("overrides", self.overrides)
        self.target_error = check_float("target_error", self.target_error, 0.0, 1.0,
                                        min_open=True, max_open=True)

    def run_dir(self, variant: str, seed: int) -> Path:
        return self.root / f"{variant}-seed{seed}"

    def config(self, variant: str, seed: int) -> TrainConfig:
        """The :class:`TrainConfig` of one run of the sweep."""
        recipe = {"epochs": self.epochs, "batch_size": self.batch_size, **self.overrides}
        return TrainConfig(preset="cifar", preset_overrides=dict(VARIANTS[variant]),
                           recipe="ablation", recipe_overrides=recipe, data=self.data,
                           val_size=self.val_size, train_subset=self.train_subset,
                           test_subset=self.test_subset, seed=seed,
                           run_dir=str(self.run_dir(variant, seed)))


def colour_share(kernels: np.ndarray) -> np.ndarray:
    """For each kernel of a ``kh x kw x 3 x filters`` conv1 weight, the share of its energy
    that is colour: ``sum (w - g)^2 / sum w^2``, where ``g`` is the kernel's grey part, the
    mean over R, G, B at each pixel. 0: a colour-agnostic (grey) kernel, which responds to
    luminance alone; 1: no grey part at all (the channels cancel at every pixel)."""
    w = np.asarray(kernels, np.float64)
    grey = w.mean(axis=2, keepdims=True)
    energy = (w ** 2).sum(axis=(0, 1, 2))
    return ((w - grey) ** 2).sum(axis=(0, 1, 2)) / np.maximum(energy, 1e-30)


def steps_to_target(history: Sequence[dict], steps_per_epoch: int,
                    target: float = TARGET_TRAIN_ERROR) -> tuple[float | None, float | None]:
    """``(optimizer steps, training seconds)`` at the end of the first epoch whose training
    error was at most ``target`` (``None``, ``None``: not within the run)."""
    seconds = 0.0
    for row in history:
        seconds += float(row.get("seconds") or 0.0)
        if 1.0 - row["accuracy"] <= target:
            return float((row["epoch"] + 1) * steps_per_epoch), seconds
    return None, None


def measure_run(trainer: Trainer, target_error: float = TARGET_TRAIN_ERROR) -> dict[str, Any]:
    """The sweep's measures of a finished run (see the module's docstring)."""
    datasets, run = trainer.datasets, trainer.run
    history = run.read_history()
    test = evaluate(run.path, views="center", datasets=datasets)
    model = load_model(run.model("best"))
    probs, labels = predict_probabilities(model, datasets.evaluation("train"))
    train = classification_metrics(probs, labels, datasets.class_names, split="train")
    steps, seconds = steps_to_target(history, trainer.steps_per_epoch, target_error)
    kernel, towers = conv1_kernels(model)
    share = colour_share(kernel)
    halves = np.array_split(share, 2)  # the towers' kernels (arbitrary halves of one tower)
    return {
        "test_error": 1.0 - test["test_top1"],
        "test_top5_error": 1.0 - test["test_top5"],
        "train_error": 1.0 - train["train_top1"],
        "generalization_gap": train["train_top1"] - test["test_top1"],
        "steps_to_target": steps,
        "seconds_to_target": seconds,
        "steps_per_epoch": trainer.steps_per_epoch,
        "train_error_by_epoch": [1.0 - row["accuracy"] for row in history],
        "seconds_by_epoch": [float(row.get("seconds") or 0.0) for row in history],
        "towers": towers,
        "colour_share": share.tolist(),
        "colour_share_by_tower": [float(h.mean()) for h in halves],
        "parameters": int(trainer.model.count_params()),
    }


def run_sweep(sweep: Sweep, *, log: Callable[[str], None] = print) -> dict[str, dict]:
    """Train and measure every (variant, seed) not done yet; returns
    ``{"<variant>-seed<seed>": measures}``. A run whose measures are saved is not trained
    again; an interrupted one resumes from its checkpoint."""
    # Many models in one process: TensorFlow warns of retracing at every new one; that is
    # expected here, and the warnings would drown the one line per run.
    # The sweep's folder holds its runs and its summary: only one of this project's.
    claim_folder(sweep.root, what="an ablation sweep of this project",
                 option="--run-dir", proof=lambda root: (root / "claims.json").is_file() or any(
                     RunFolder(sweep.run_dir(v, s)).is_run() for v in sweep.variants
                     for s in sweep.seeds))
    tf_log = logging.getLogger("tensorflow")
    level = tf_log.level
    tf_log.setLevel(logging.ERROR)
    try:
        return _run_sweep(sweep, log)
    finally:
        tf_log.setLevel(level)


def _run_sweep(sweep: Sweep, log: Callable[[str], None]) -> dict[str, dict]:
    results = {}
    for seed in sweep.seeds:
        datasets = None
        for variant in sweep.variants:
            key = f"{variant}-seed{seed}"
            folder = RunFolder(sweep.run_dir(variant, seed))
            if folder.ablation.exists():
                results[key] = folder.read_ablation()
                log(f"{key}: measured before ({folder.ablation})")
                continue
            config = sweep.config(variant, seed)
            if datasets is None:  # one data split per seed, shared by the variants
                datasets = build_datasets(config.resolve())[0]
            started = time.time()
            with open(os.devnull, "w") as silent:  # the sweep logs one line per run
                trainer = Trainer(config, datasets=datasets, log=silent)
                trainer.fit()
            measures = measure_run(trainer, sweep.target_error)
            measures["wall_seconds"] = round(time.time() - started, 2)
            folder.write_ablation(measures)
            results[key] = measures
            log(f"{key}: test error {measures['test_error']:.4f}, training error "
                f"{measures['train_error']:.4f}, {measures['wall_seconds']:.0f} s")
    return results


def _stats(values: Sequence[float | None]) -> dict[str, Any]:
    clean = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not clean or len(clean) < len(values):
        return {"mean": None, "std": None, "n": len(clean), "values": list(values)}
    array = np.asarray(clean)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if len(array) > 1
            else 0.0, "n": len(array), "values": clean}


def claims(sweep: Sweep, results: dict[str, dict]) -> list[dict[str, Any]]:
    """Each claim of :data:`CLAIMS` whose two variants the sweep ran: both variants' mean and
    standard deviation over the seeds, the paired difference per seed, and the verdict."""
    rows = []
    for claim in CLAIMS:
        if claim.ours not in sweep.variants or claim.other not in sweep.variants:
            continue
        ours = [results[f"{claim.ours}-seed{s}"][claim.measure] for s in sweep.seeds]
        other = [results[f"{claim.other}-seed{s}"][claim.measure] for s in sweep.seeds]
        rows.append({"claim": claim.name, "paper": claim.paper, "measure": claim.measure,
                     "ours_variant": claim.ours, "other_variant": claim.other,
                     "ours": _stats(ours), "other": _stats(other),
                     **_verdict(ours, other, claim.better)})
        if claim.measure == "steps_to_target":
            rows.append(_to_shared_error(sweep, results, claim))
    if "baseline" in sweep.variants:
        rows.append(tower_colour(sweep, results))
    return rows


def steps_to_error(errors: Sequence[float], error: float, steps_per_epoch: int) -> float:
    """Optimizer steps at the end of the first epoch whose training error was at most
    ``error`` (which the curve must reach)."""
    for epoch, value in enumerate(errors):
        if value <= error + 1e-12:
            return float((epoch + 1) * steps_per_epoch)
    raise ValueError(f"The training error never reached {error}.")


def _to_shared_error(sweep: Sweep, results: dict[str, dict], claim: Claim) -> dict[str, Any]:
    """Figure 1's comparison at the lowest training error both variants reached in each seed
    (when the budget is too short for the paper's 25%): the steps each needed for it."""
    ours, other, levels = [], [], []
    for seed in sweep.seeds:
        a, b = results[f"{claim.ours}-seed{seed}"], results[f"{claim.other}-seed{seed}"]
        level = max(min(a["train_error_by_epoch"]), min(b["train_error_by_epoch"]))
        levels.append(level)
        ours.append(steps_to_error(a["train_error_by_epoch"], level, a["steps_per_epoch"]))
        other.append(steps_to_error(b["train_error_by_epoch"], level, b["steps_per_epoch"]))
    row = {"claim": f"{claim.name} (to the training error both reach)",
           "paper": "the same comparison at a common error (the paper's curves: about 6x at "
                    "every error down to 25%)",
           "measure": "steps_to_target", "ours_variant": claim.ours,
           "other_variant": claim.other, "ours": _stats(ours), "other": _stats(other),
           "levels": levels, **_verdict(ours, other, "lower")}
    speedups = np.asarray(other) / np.asarray(ours)
    row["why"] += (f"; training errors compared: {', '.join(f'{v:.1%}' for v in levels)} "
                   f"(the worse variant's best, per seed); the paper's variant got there "
                   f"{speedups.mean():.2f}x sooner on average (a lower bound where the other "
                   f"got there only in its last epoch)")
    return row


def _verdict(ours: Sequence[float | None], other: Sequence[float | None],
             better: str) -> dict[str, Any]:
    """The paired differences (other - ours, so positive favours the paper's variant when
    lower is better) and the verdict."""
    sign = 1.0 if better == "lower" else -1.0
    if any(a is None for a in ours):
        # The paper's variant never reached the target within the budget.
        return {"difference": None, "verdict": "inconclusive",
                "why": "the paper's variant did not reach the target within the budget"}
    if any(b is None for b in other):
        # The other variant never reached the target: the paper's is faster by more than the
        # budget allows to measure.
        return {"difference": None, "verdict": "holds",
                "why": "only the paper's variant reached the target within the budget"}
    diffs = sign * (np.asarray(other, np.float64) - np.asarray(ours, np.float64))
    stats = _stats(diffs.tolist())
    if len(diffs) < 2:
        return {"difference": stats, "verdict": "inconclusive",
                "why": "one seed cannot decide a claim: its spread is unknown (run the sweep "
                       "with two or more seeds)"}
    agree = bool((diffs > 0).all())
    disagree = bool((diffs < 0).all())
    beyond = abs(stats["mean"]) > stats["std"]
    verdict = ("holds" if agree and beyond else "does not hold" if disagree and beyond
               else "inconclusive")
    why = ("every seed's difference favours the paper's choice and the mean exceeds the "
           "spread" if verdict == "holds" else
           "every seed's difference goes against the paper's choice, beyond the spread"
           if verdict == "does not hold" else
           "the seeds disagree in sign or the mean difference is within the spread")
    return {"difference": stats, "verdict": verdict, "why": why}


def tower_colour(sweep: Sweep, results: dict[str, dict]) -> dict[str, Any]:
    """Figure 3 quantified: per seed, the two towers' mean colour share of conv1 kernels in
    the baseline, the difference between towers against the same difference between two
    arbitrary halves of the one-tower model's kernels (a control: no split, no reason to
    differ), and which tower is the more colour-specific."""
    seeds = sweep.seeds
    towered = [results[f"baseline-seed{s}"]["colour_share_by_tower"] for s in seeds
               if f"baseline-seed{s}" in results]
    gaps = [abs(a - b) for a, b in towered]
    control = [abs(a - b) for a, b in (results[f"one-tower-seed{s}"]["colour_share_by_tower"]
                                       for s in seeds if f"one-tower-seed{s}" in results)]
    colourful = [int(np.argmax(pair)) + 1 for pair in towered]
    stable = len(set(colourful)) == 1
    beyond = bool(control) and min(gaps) > max(control)
    verdict = "holds" if beyond else "inconclusive"
    return {"claim": "The towers specialise (colour vs luminance)",
            "paper": "Figure 3: GPU 1's kernels largely colour-agnostic, GPU 2's "
                     "colour-specific", "measure": "tower_colour_gap",
            "ours_variant": "baseline", "other_variant": "one-tower",
            "ours": _stats(gaps), "other": _stats(control) if control else None,
            "colourful_tower": colourful, "stable": stable,
            "difference": None, "verdict": verdict,
            "why": (f"the towers' colour shares differ more than two halves of a one-tower "
                    f"model's kernels in every seed; the more colour-specific tower is "
                    f"{'the same' if stable else 'not the same'} in every seed ({colourful})"
                    if beyond else
                    "the towers' colour shares differ no more than two halves of a "
                    "one-tower model's kernels")}


# ----------------------------------------------------------------------------- the table

def _number(value: float | None, scale: float, digits: int) -> str:
    return "n/a" if value is None else f"{value * scale:.{digits}f}"


def _cell(stats: dict | None, measure: str) -> str:
    """``mean ± std`` of a measure (errors in %, steps as counts)."""
    if stats is None:
        return "n/a"
    scale, digits, unit = ((1, 0, " steps") if measure == "steps_to_target" else
                           (1, 3, "") if measure == "tower_colour_gap" else (100, 2, "%"))
    if stats["mean"] is None:
        reached = [v for v in stats["values"] if v is not None]
        return (f"not reached in {len(stats['values']) - len(reached)} of "
                f"{len(stats['values'])} seeds")
    return (f"{_number(stats['mean'], scale, digits)} ± {_number(stats['std'], scale, digits)}"
            f"{unit}")


def claims_table(rows: Sequence[dict], sweep: Sweep) -> list[dict[str, str]]:
    """The claims as table rows of text: claim, the paper's figure, the paper's variant and
    the other (mean ± standard deviation over the seeds), the verdict and why."""
    budget = (f"{len(sweep.seeds)} seeds; {sweep.epochs} epochs of "
              f"{sweep.train_subset or 'all'} images, batch {sweep.batch_size}")
    table = []
    for row in rows:
        table.append({
            "claim": row["claim"], "paper": row["paper"],
            "ours": f"{row['ours_variant']}: {_cell(row['ours'], row['measure'])}",
            "other": f"{row['other_variant']}: {_cell(row['other'], row['measure'])}",
            "difference": _cell(row.get("difference"), row["measure"]),
            "verdict": row["verdict"], "why": row["why"], "budget": budget})
    return table


def check_table(table: Sequence[dict[str, str]]) -> None:
    """Raise ``ValueError`` unless every cell of every row is filled and every number in it
    is finite."""
    if not table:
        raise ValueError("The claims table is empty.")
    for row in table:
        for key, text in row.items():
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"Claim {row.get('claim')!r}: the cell {key!r} is empty.")
            if re.search(r"\b(nan|inf)\b", text, flags=re.IGNORECASE):
                raise ValueError(f"Claim {row.get('claim')!r}: the cell {key!r} holds a "
                                 f"non-finite number: {text!r}")


def markdown_table(table: Sequence[dict[str, str]]) -> str:
    """The claims table in Markdown (as claims.md holds it; the README shows it condensed)."""
    lines = ["| claim | the paper | ours | without it | difference | verdict |",
             "|---|---|---|---|---|---|"]
    for row in table:
        lines.append(f"| {row['claim']} | {row['paper']} | {row['ours']} | {row['other']} | "
                     f"{row['difference']} | **{row['verdict']}**: {row['why']} |")
    return "\n".join(lines)


def error_curves(sweep: Sweep, results: dict[str, dict],
                 variants: Sequence[str] = ("no-dropout", "tanh")) -> dict[str, list]:
    """``{variant: [training error by epoch, per seed]}`` for the Figure 1 plot."""
    return {v: [results[f"{v}-seed{s}"]["train_error_by_epoch"] for s in sweep.seeds]
            for v in variants if v in sweep.variants}


def summarize(sweep: Sweep, results: dict[str, dict]) -> tuple[list[dict], list[dict]]:
    """The claims and their table (checked: every cell filled, every number finite), saved
    in the sweep's folder (:func:`save_summary`). Returns ``(rows, table)``."""
    rows = claims(sweep, results)
    table = claims_table(rows, sweep)
    check_table(table)
    save_summary(sweep, results, rows, table)
    return rows, table


def save_summary(sweep: Sweep, results: dict[str, dict], rows: Sequence[dict],
                 table: Sequence[dict[str, str]]) -> Path:
    """``<root>/claims.json`` (every measure and verdict) and ``<root>/claims.md``."""
    write_atomic(sweep.root / "claims.json", json.dumps(
        {"sweep": {k: (str(v) if isinstance(v, Path) else v)
                   for k, v in dataclasses.asdict(sweep).items()},
         "claims": list(rows), "table": list(table), "runs": results}, indent=1))
    write_atomic(sweep.root / "claims.md", markdown_table(table) + "\n")
    return sweep.root / "claims.json"

