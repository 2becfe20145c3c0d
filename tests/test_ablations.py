"""The ablation sweep: its measures against NumPy references, its verdicts on forced
numbers, and a tiny sweep end to end (resumed, not retrained, reproduced)."""

import json

import numpy as np
import pytest

from alexnet_lib import ablations
from alexnet_lib.ablations import (
    VARIANTS,
    Sweep,
    check_table,
    claims,
    claims_table,
    colour_share,
    markdown_table,
    run_sweep,
    steps_to_target,
)


def test_colour_share_is_the_energy_outside_the_grey_part():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(5, 5, 3, 4))
    kernel[..., 0] = rng.normal(size=(5, 5, 1))          # grey: R = G = B at every pixel
    kernel[..., 1] = [1.0, -1.0, 0.0]                     # no grey part at all
    share = colour_share(kernel)
    assert share[0] == pytest.approx(0.0, abs=1e-12) and share[1] == pytest.approx(1.0)
    w = kernel[..., 2]
    grey = w.mean(-1, keepdims=True)
    assert share[2] == pytest.approx(((w - grey) ** 2).sum() / (w ** 2).sum())
    assert share.shape == (4,) and ((share >= 0) & (share <= 1)).all()


def test_steps_to_target_is_the_first_epoch_at_or_below_it():
    history = [{"epoch": 0, "accuracy": 0.5, "seconds": 10.0},
               {"epoch": 1, "accuracy": 0.75, "seconds": 11.0},
               {"epoch": 2, "accuracy": 0.9, "seconds": 12.0}]
    assert steps_to_target(history, 100) == (200.0, 21.0)
    assert steps_to_target(history, 100, target=0.05) == (None, None)


def _results(values: dict[str, list], measure: str) -> dict:
    return {f"{variant}-seed{s}": {measure: v, "colour_share_by_tower": [0.1, 0.1]}
            for variant, per_seed in values.items() for s, v in enumerate(per_seed)}


@pytest.mark.parametrize("ours, other, verdict", [
    ([0.20, 0.21, 0.19], [0.25, 0.27, 0.24], "holds"),          # every seed, beyond the spread
    ([0.25, 0.27, 0.24], [0.20, 0.21, 0.19], "does not hold"),
    ([0.20, 0.26, 0.19], [0.25, 0.21, 0.24], "inconclusive"),   # the seeds disagree
])
def test_verdicts_on_forced_numbers(tmp_path, ours, other, verdict):
    sweep = Sweep(root=tmp_path, data="x", variants=("baseline", "no-lrn"))
    rows = claims(sweep, _results({"baseline": ours, "no-lrn": other}, "test_error"))
    lrn = next(r for r in rows if r["claim"] == "LRN lowers the error")
    assert lrn["verdict"] == verdict
    assert lrn["ours"]["mean"] == pytest.approx(np.mean(ours))
    assert lrn["ours"]["std"] == pytest.approx(np.std(ours, ddof=1))
    assert lrn["difference"]["mean"] == pytest.approx(np.mean(other) - np.mean(ours))


def test_one_seed_decides_no_claim(tmp_path):
    """A single seed has no spread: even a large difference in the paper's favour is
    inconclusive, and the table says why."""
    sweep = Sweep(root=tmp_path, data="x", seeds=(0,), variants=("baseline", "no-lrn"))
    rows = claims(sweep, _results({"baseline": [0.10], "no-lrn": [0.40]}, "test_error"))
    lrn = next(r for r in rows if r["claim"] == "LRN lowers the error")
    assert lrn["verdict"] == "inconclusive"
    assert "one seed cannot decide a claim" in lrn["why"]


def test_a_sweep_folder_of_someone_elses_is_refused(tmp_path):
    (tmp_path / "claims.md").write_text("my own claims")
    (tmp_path / "notes").mkdir()
    sweep = Sweep(root=tmp_path, data="x", seeds=(0,), variants=("baseline",))
    with pytest.raises(ValueError, match="is not an ablation sweep of this project"):
        run_sweep(sweep)
    assert (tmp_path / "claims.md").read_text() == "my own claims"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["claims.md", "notes"]


def test_a_target_only_the_papers_variant_reached_holds_and_the_table_is_filled(tmp_path):
    sweep = Sweep(root=tmp_path, data="x", variants=("no-dropout", "tanh"))
    results = _results({"no-dropout": [400.0, 500.0, 450.0], "tanh": [None, None, 900.0]},
                       "steps_to_target")
    for key, measures in results.items():
        measures["steps_per_epoch"] = 100
        measures["train_error_by_epoch"] = ([0.6, 0.4, 0.2] if key.startswith("no-dropout")
                                            else [0.7, 0.5, 0.3])
    row = claims(sweep, results)[0]
    assert row["verdict"] == "holds" and "only the paper's variant" in row["why"]
    table = claims_table(claims(sweep, results), sweep)
    check_table(table)
    assert "not reached in 2 of 3 seeds" in table[0]["other"]
    assert "450 ± 50 steps" in table[0]["ours"]
    assert markdown_table(table).count("\n") == 1 + len(table)
    table[0]["difference"] = "nan ± 1"
    with pytest.raises(ValueError, match="non-finite"):
        check_table(table)


def test_the_sweep_refuses_unknown_variants_and_empty_seeds(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown variant\(s\) \['gelu'\]"):
        Sweep(root=tmp_path, data="x", variants=("baseline", "gelu"))
    with pytest.raises(ValueError, match="at least one seed"):
        Sweep(root=tmp_path, data="x", seeds=())
    config = Sweep(root=tmp_path, data="x").config("one-tower", 2)
    resolved = config.resolve()
    assert resolved.preset.towers is False and resolved.preset.dropout == 0.5
    assert resolved.recipe.name == "ablation" and config.seed == 2
    assert config.run_dir == str(tmp_path / "one-tower-seed2")
    assert Sweep(root=tmp_path, data="x").config("tanh", 0).resolve().preset.activation == "tanh"
    assert set(VARIANTS) == {"baseline", "tanh", "no-lrn", "non-overlapping", "no-dropout",
                             "one-tower"}


@pytest.mark.slow
def test_a_tiny_sweep_runs_resumes_and_reproduces(tree, tmp_path):
    """Two variants, two seeds on the suite's tiny data: every run measured; a second call
    trains nothing; a run trained again into a new folder gives the same numbers."""
    sweep = Sweep(root=tmp_path / "sweep", data=str(tree), seeds=(0, 1),
                  variants=("baseline", "one-tower"), train_subset=96, val_size=16,
                  epochs=2, batch_size=16, target_error=0.7)
    lines = []
    first = run_sweep(sweep, log=lines.append)
    assert sorted(first) == ["baseline-seed0", "baseline-seed1", "one-tower-seed0",
                             "one-tower-seed1"]
    for measures in first.values():
        assert 0 <= measures["test_error"] <= 1 and len(measures["train_error_by_epoch"]) == 2
        assert len(measures["colour_share"]) == 64 and len(measures["colour_share_by_tower"]) == 2
    assert first["baseline-seed0"]["towers"] == 2 and first["one-tower-seed0"]["towers"] == 1
    lines.clear()
    again = run_sweep(sweep, log=lines.append)
    assert all("measured before" in line for line in lines) and again == first
    # The same seed, trained again into another folder: the same figures to the last digit.
    twin = Sweep(**{**sweep.__dict__, "root": tmp_path / "twin", "variants": ("baseline",),
                    "seeds": (1,)})
    repeat = run_sweep(twin, log=lambda line: None)["baseline-seed1"]
    for key in ("test_error", "train_error", "train_error_by_epoch", "colour_share",
                "steps_to_target"):
        assert repeat[key] == first["baseline-seed1"][key], key
    rows = claims(sweep, first)
    check_table(claims_table(rows, sweep))
    ablations.save_summary(sweep, first, rows, claims_table(rows, sweep))
    saved = json.loads((tmp_path / "sweep" / "claims.json").read_text())
    assert [r["claim"] for r in saved["claims"]][-1].startswith("The towers specialise")


def test_relu_and_tanh_are_also_compared_at_the_error_both_reach(tmp_path):
    """Neither reaches 25%: the steps to the worse variant's best error, per seed."""
    sweep = Sweep(root=tmp_path, data="x", seeds=(0, 1), variants=("no-dropout", "tanh"))
    curves = {"no-dropout": [[0.7, 0.5, 0.35, 0.3], [0.7, 0.45, 0.4, 0.32]],
              "tanh": [[0.8, 0.6, 0.45, 0.35], [0.75, 0.6, 0.5, 0.45]]}
    results = {f"{v}-seed{s}": {"steps_to_target": None, "steps_per_epoch": 10,
                                "train_error_by_epoch": curves[v][s]}
               for v in curves for s in (0, 1)}
    first, shared = claims(sweep, results)
    assert first["verdict"] == "inconclusive"
    assert shared["levels"] == [0.35, 0.45]
    assert shared["ours"]["values"] == [30.0, 20.0] and shared["other"]["values"] == [40.0, 40.0]
    assert shared["verdict"] == "holds" and "1.67x sooner" in shared["why"]
