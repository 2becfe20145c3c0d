"""The configuration of a run: recipes, ``TrainConfig``, and resolving them once.

A run is named by a :class:`TrainConfig` (what ``config.yaml`` holds): a preset and a recipe
by name, with overrides, plus the data and the run's own settings. :meth:`TrainConfig.resolve`
checks every field and turns the names and overrides into one :class:`ResolvedConfig` (the
checked :class:`~alexnet_lib.model.Preset` and :class:`Recipe`), which is what everything
downstream receives. Preset fields are settled in one order, in one place
(:meth:`TrainConfig.resolve`): the preset's own values, then the recipe's
``preset_overrides``, then the configuration's ``preset_overrides``, then the number of
classes the data has (unless overridden).

:func:`make_train_config` is the one translation from parameters (the CLI's flags and
``--set`` items, a notebook's parameters) to a ``TrainConfig``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from .checks import (
    check_bool,
    check_choice,
    check_device_pair,
    check_float,
    check_int,
    check_mapping,
)
from .data.preprocessing import NORMALIZATIONS, Augment, check_views
from .data.sources import resolve_source
from .model import OVERRIDABLE, RENAMED_PRESETS, Preset, get_preset, scaled_widths
from .paths import runs_dir

OPTIMIZERS = ("sgd", "adam", "adamw")
# auto: decided by the devices and the CPU (alexnet_lib.precision); the rest as named.
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
# tf.distribute strategies by name (alexnet_lib.distribute.make_strategy).
STRATEGIES = ("auto", "one", "mirrored", "multiworker")
CONV1_INITS = ("preset", "whiten")
SCHEDULES = ("constant", "plateau", "onecycle", "cosine")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How to train: optimizer, schedule, batch size, epochs, augmentation, precision.

    Attributes:
        name: the recipe's name.
        description: one line on where it comes from.
        preset: the preset it is meant for (``train`` uses it when no preset is given).
        optimizer: ``sgd`` (with ``momentum``, ``nesterov``), ``adam`` or ``adamw``.
        learning_rate: the base (``constant``, ``plateau``) or peak (``onecycle``,
            ``cosine``) learning rate.
        weight_decay: the paper's L2 weight decay, added to the gradient of every
            kernel before the optimizer (for ``adamw``: Keras' decoupled decay, of every
            weight, the biases included).
        schedule: ``constant``; ``plateau`` (divide by ``plateau_factor`` when validation
            accuracy has not improved for ``plateau_patience`` epochs, as the paper did by
            hand); ``onecycle`` (linear warm-up over ``warmup_epochs``, then linear decay to
            zero); ``cosine`` (warm-up, then cosine decay to zero).
        label_smoothing: mass moved from the true class to the others.
        augment: training augmentation (see ``Augment.from_value``).
        precision: ``auto`` (see :mod:`alexnet_lib.precision`), ``float32``, ``mixed_bfloat16``
            or ``mixed_float16`` (with loss scaling).
        jit_compile: compile the train step with XLA.
        normalization: ``channel`` (mean/std per channel) or ``mean_image`` (the paper's).
        resize_in_model: for upsampled inputs, move stored-size images and resize in the
            model's first layer instead of in the data pipeline.
        preset_overrides: what the recipe changes in its preset (e.g. ``{"dropout": 0.0}``,
            ``{"image_size": 24}``); the configuration's own preset overrides (``--set``)
            still win.
        eval_views: the test-time views of the evaluation after training: ``center``,
            ``flip`` (each image and its mirror image, probabilities averaged), ``shift6``
            (those and their one-pixel shifts up-left and down-right: 6 views), ``shift10``
            (the image and its two-pixel shifts up, down, left and right, mirrored: 10 views)
            or ``tta`` (the paper's 10 views).
            ``evaluate --views`` picks others later.
        conv1_init: ``preset`` (the preset's ``init``) or ``whiten``: conv1's filters start
            as the leading principal components of the training images' patches, scaled to
            unit variance, each with its negative (:func:`~alexnet_lib.model.whitening_kernel`).
        freeze_conv1: keep conv1's weights as they start (with ``conv1_init: whiten``, a
            fixed whitening of the image patches): no gradient reaches conv1, so the step
            skips its backward pass.
        val_size: validation images carved from the training split when the configuration
            does not say (0: train on every training image; the best model is then the one
            with the best training accuracy).
        ema: the momentum of a moving average of the weights, updated after every step
            (``0.999`` averages over about the last 1,000 steps); validation, the saved models
            and so the evaluation use the average, and the model holds it after training.
            0: off.
    """

    name: str
    description: str
    preset: str
    optimizer: str = "sgd"
    learning_rate: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 10
    schedule: str = "constant"
    warmup_epochs: float = 0.0
    plateau_factor: float = 0.1
    plateau_patience: int = 2
    min_learning_rate: float = 1e-6
    label_smoothing: float = 0.0
    augment: str = "crop,flip"
    precision: str = "auto"
    jit_compile: bool = False
    normalization: str = "channel"
    resize_in_model: bool = False
    preset_overrides: dict = dataclasses.field(default_factory=dict)
    eval_views: str = "center"
    conv1_init: str = "preset"
    freeze_conv1: bool = False
    val_size: int = 5000
    ema: float = 0.0

    def replace(self, **overrides) -> "Recipe":
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"Unknown recipe field(s) {unknown}: choose from {sorted(names)}.")
        return dataclasses.replace(self, **overrides).validate()

    def validate(self) -> "Recipe":
        """Check every field; return the recipe with its values in their proper types
        (``1`` -> ``1.0`` for a rate, ``"1e-3"`` -> ``0.001``), or raise one ``ValueError``
        naming the recipe, the field and the value received."""
        try:
            values = dict(
                optimizer=check_choice("optimizer", self.optimizer, OPTIMIZERS),
                learning_rate=check_float("learning_rate", self.learning_rate, 0.0, min_open=True),
                momentum=check_float("momentum", self.momentum, 0.0, 1.0, max_open=True),
                nesterov=check_bool("nesterov", self.nesterov),
                weight_decay=check_float("weight_decay", self.weight_decay, 0.0),
                batch_size=check_int("batch_size", self.batch_size, 1),
                epochs=check_int("epochs", self.epochs, 1),
                schedule=check_choice("schedule", self.schedule, SCHEDULES),
                plateau_factor=check_float("plateau_factor", self.plateau_factor, 0.0, 1.0,
                                           min_open=True, max_open=True),
                plateau_patience=check_int("plateau_patience", self.plateau_patience, 1),
                min_learning_rate=check_float("min_learning_rate", self.min_learning_rate, 0.0),
                label_smoothing=check_float("label_smoothing", self.label_smoothing, 0.0, 1.0,
                                            max_open=True),
                precision=check_choice("precision", self.precision, PRECISIONS),
                jit_compile=check_bool("jit_compile", self.jit_compile),
                normalization=check_choice("normalization", self.normalization, NORMALIZATIONS),
                resize_in_model=check_bool("resize_in_model", self.resize_in_model),
                preset_overrides=check_mapping("preset_overrides", self.preset_overrides,
                                               OVERRIDABLE),
                eval_views=check_views(self.eval_views, "eval_views"),
                conv1_init=check_choice("conv1_init", self.conv1_init, CONV1_INITS),
                freeze_conv1=check_bool("freeze_conv1", self.freeze_conv1),
                val_size=check_int("val_size", self.val_size, 0),
                ema=check_float("ema", self.ema, 0.0, 1.0, max_open=True),
            )
            values["warmup_epochs"] = check_float("warmup_epochs", self.warmup_epochs, 0.0,
                                                  float(values["epochs"]))
            Augment.from_value(self.augment)
        except ValueError as error:
            raise ValueError(f"Recipe {self.name!r}: {error}") from None
        return dataclasses.replace(self, **values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


RECIPES: dict[str, Recipe] = {
    "origin": Recipe(
        name="origin",
        description="The original experiment this project grew from: Adam, lr 5e-5, batch "
                    "64, 18 epochs, images upsampled to the model's input, no augmentation.",
        preset="upsampled", optimizer="adam", learning_rate=5e-5, batch_size=64, epochs=18,
        schedule="constant", augment="none"),
    "paper": Recipe(
        name="paper",
        description="The paper's (Section 5): SGD, momentum 0.9, weight decay 5e-4, batch 128, "
                    "lr 0.01 divided by 10 when validation accuracy stops improving; random "
                    "crops, flips and PCA colour jitter; the mean image subtracted.",
        preset="paper", optimizer="sgd", learning_rate=0.01, momentum=0.9, weight_decay=5e-4,
        batch_size=128, epochs=90, schedule="plateau", plateau_factor=0.1, plateau_patience=2,
        augment="crop,flip,pca", normalization="mean_image"),
    "cpu": Recipe(
        name="cpu",
        description="The default for the cifar preset on a CPU: the cifar topology narrowed "
                    "where its maps are dearest (32-64-128-128-96 maps, fc 384; 0.70M "
                    "parameters; every tower's width a multiple of 16, which the CPU's "
                    "convolution kernels run fastest), AdamW (peak lr 4e-3, decay 0.2), batch "
                    "128, a one-cycle learning rate over 23 epochs of all 50,000 training "
                    "images (no validation split), conv1 whitened at the start, label "
                    "smoothing 0.2, alternating flips and translations of up to 2 pixels, no "
                    "dropout, ten test views averaged (each image and its two-pixel shifts, "
                    "mirrored, as far as training translates); sized for 30 minutes of 2 AVX2 "
                    "cores.",
        preset="cifar", optimizer="adamw", learning_rate=4e-3, weight_decay=0.2,
        batch_size=128, epochs=23, schedule="onecycle", warmup_epochs=0.5,
        label_smoothing=0.2, augment="crop=2,flip=alternate", eval_views="shift10",
        val_size=0, conv1_init="whiten",
        preset_overrides={"dropout": 0.0, "conv1_filters": 32,
                          "conv_filters": (64, 128, 128, 96), "fc_units": 384}),
    "ablation": Recipe(
        name="ablation",
        description="The ablation sweep's (alexnet_lib.ablations), the same for every variant: "
                    "AdamW at a constant lr 1e-3 (decay 0.05), batch 64, random flips, no "
                    "label smoothing, the preset's own dropout (the paper's 0.5), the centre "
                    "view; the budget (epochs, images) is the sweep's.",
        preset="cifar", optimizer="adamw", learning_rate=1e-3, weight_decay=0.05,
        batch_size=64, epochs=5, schedule="constant", augment="flip", eval_views="center"),
}


RECIPES["quick"] = dataclasses.replace(
    RECIPES["cpu"], name="quick", epochs=9, warmup_epochs=0.3, augment="flip=alternate",
    eval_views="shift6",
    preset_overrides={**RECIPES["cpu"].preset_overrides, **scaled_widths("cifar", 0.5)},
    description="A coffee-break run on a CPU: the cpu recipe on the cifar topology at 0.5x "
                "its widths (32-64-96-96-64 maps, fc 256; 0.35M parameters) over 9 epochs, "
                "flips only, six test views (the image and its one-pixel shifts, mirrored); "
                "at this budget the narrower network's extra epochs pay more than its width.")

RECIPES["long"] = dataclasses.replace(
    RECIPES["cpu"], name="long", epochs=38, warmup_epochs=1.0, weight_decay=0.15,
    preset_overrides={**RECIPES["cpu"].preset_overrides, **scaled_widths("cifar", 1.5),
                      "conv1_filters": 64},
    description="Sized for three hours of 2 AVX2 cores: the cpu recipe on the cifar "
                "topology at 1.5x its widths, conv1 at 64 maps (64-192-288-288-192 maps, "
                "fc 768; 3.11M parameters) over 38 epochs with weight decay 0.15 (the "
                "longer run decays the weights for longer), warmed up over 1 epoch. "
                "conv1's 32x32 maps are the dearest per filter, so it keeps 64 of them "
                "rather than 96.")


def get_recipe(recipe: str | Recipe = "cpu", **overrides) -> Recipe:
    """A named recipe with ``overrides`` applied (unknown names raise ``ValueError``)."""
    if isinstance(recipe, Recipe):
        return recipe.replace(**overrides) if overrides else recipe.validate()
    return RECIPES[check_recipe_name(recipe)].replace(**overrides)


def check_recipe_name(recipe: Any, name: str = "recipe") -> str:
    """``recipe`` if it names a recipe, else one ``ValueError`` naming the choices (or, for
    an earlier name, the new one)."""
    if isinstance(recipe, str) and recipe in RENAMED_RECIPES:
        raise ValueError(f"The recipe {recipe!r} is now named {RENAMED_RECIPES[recipe]!r}: "
                         f"give {name}={RENAMED_RECIPES[recipe]!r}. Received: {name}={recipe!r}")
    if not isinstance(recipe, str) or recipe not in RECIPES:
        raise ValueError(f"Unknown recipe {recipe!r}: choose from {sorted(RECIPES)}.")
    return recipe


def migrate_saved(saved: dict[str, Any]) -> dict[str, Any]:
    """A ``config.yaml`` mapping an earlier version wrote, with the names it used that have
    since changed (:data:`RENAMED_RECIPES`, :data:`~alexnet_lib.model.RENAMED_PRESETS`, the
    views of :data:`~alexnet_lib.data.preprocessing.RENAMED_VIEWS`) given their new ones."""
    saved = dict(saved)
    if isinstance(saved.get("preset"), str):
        saved["preset"] = RENAMED_PRESETS.get(saved["preset"], saved["preset"])
    if isinstance(saved.get("recipe"), str):
        saved["recipe"] = RENAMED_RECIPES.get(saved["recipe"], saved["recipe"])
    overrides = saved.get("recipe_overrides")
    if isinstance(overrides, dict) and isinstance(overrides.get("eval_views"), str):
        saved["recipe_overrides"] = {**overrides, "eval_views": check_views(
            overrides["eval_views"], "eval_views", saved=True)}
    return saved


# The recipe a preset trains with when none is named.
DEFAULT_RECIPE = {"cifar": "cpu", "upsampled": "origin", "paper": "paper"}
# Earlier names, refused with the new one (and read in the run folders they name).
RENAMED_RECIPES = {"seed": "origin"}


@dataclasses.dataclass(frozen=True)
class ResolvedConfig:
    """A checked :class:`TrainConfig` with its preset and recipe resolved: what everything
    below the edge receives, and never changes. The run's set-up settles the two things
    only it can know, each once, into a new one: the data's class count
    (:meth:`with_classes`) and the precision on this machine (:meth:`with_precision`)."""

    config: "TrainConfig"
    preset: Preset
    recipe: Recipe
    precision_reason: str = ""

    def with_classes(self, num_classes: int) -> "ResolvedConfig":
        """The preset's ``num_classes`` set to the data's, unless the configuration
        overrides it."""
        if "num_classes" in self.config.preset_overrides or num_classes == self.preset.num_classes:
            return self
        return dataclasses.replace(self, preset=self.preset.replace(num_classes=num_classes))

    def with_precision(self, precision: str, reason: str) -> "ResolvedConfig":
        """The recipe's ``precision`` decided (``auto`` no more), and why."""
        return dataclasses.replace(self, recipe=dataclasses.replace(self.recipe,
                                                                    precision=precision),
                                   precision_reason=reason)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs; saved as ``config.yaml`` and compared on resume. Frozen:
    :meth:`resolve` returns a checked copy, :func:`dataclasses.replace` makes another."""

    preset: str = "cifar"
    preset_overrides: dict = dataclasses.field(default_factory=dict)
    recipe: str = "cpu"
    recipe_overrides: dict = dataclasses.field(default_factory=dict)
    data: str = "cifar10"
    val_size: int | None = None  # None: the recipe's
    train_subset: int | None = None
    test_subset: int | None = None
    seed: int = 0
    run_dir: str | None = None
    skip_corrupt: bool = False
    checkpoint_every: int = 200  # optimizer steps between resume checkpoints (and every epoch)
    keep_epochs: bool = False  # also keep each epoch's model (checkpoints/epoch-N.keras)
    strategy: str = "auto"  # tf.distribute strategy (distribute.STRATEGIES)
    tower_devices: list | None = None  # run the two towers on these two devices

    def resolve(self) -> ResolvedConfig:
        """Check every field with its type and range, and resolve the preset and the recipe
        with their overrides; one ``ValueError`` names the first bad value. The resolved
        configuration holds a checked copy: values in their proper types, ``val_size`` the
        recipe's when not given, ``data`` an absolute path (or ``cifar10``), ``run_dir``
        ``runs/<preset>-<recipe>`` when not given."""
        if not isinstance(self.data, (str, os.PathLike)) or not str(self.data).strip():
            raise ValueError(f"`data` must be 'cifar10' or a path. Received: data={self.data!r}")
        preset_overrides = check_mapping("preset_overrides", self.preset_overrides)
        recipe_overrides = check_mapping("recipe_overrides", self.recipe_overrides)
        recipe = get_recipe(self.recipe, **recipe_overrides)
        val_size = check_int("val_size", self.val_size, 0, allow_none=True)
        checked = dataclasses.replace(
            self, preset_overrides=preset_overrides, recipe_overrides=recipe_overrides,
            val_size=recipe.val_size if val_size is None else val_size,
            train_subset=check_int("train_subset", self.train_subset, 1, allow_none=True),
            test_subset=check_int("test_subset", self.test_subset, 1, allow_none=True),
            seed=check_int("seed", self.seed, 0),
            checkpoint_every=check_int("checkpoint_every", self.checkpoint_every, 1),
            skip_corrupt=check_bool("skip_corrupt", self.skip_corrupt),
            keep_epochs=check_bool("keep_epochs", self.keep_epochs),
            strategy=check_choice("strategy", self.strategy, STRATEGIES),
            tower_devices=check_device_pair("tower_devices", self.tower_devices),
            data=resolve_source(self.data),
            run_dir=str(self.run_dir or runs_dir() / f"{self.preset}-{self.recipe}"))
        preset = get_preset(self.preset, **{**recipe.preset_overrides, **preset_overrides})
        return ResolvedConfig(config=checked, preset=preset, recipe=recipe)

    def validate(self) -> "TrainConfig":
        """The checked copy of the configuration (see :meth:`resolve`)."""
        return self.resolve().config

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """The configuration a ``config.yaml`` holds (see :func:`migrate_saved`)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in migrate_saved(data).items() if k in names})


PRESET_FIELDS = frozenset(OVERRIDABLE)
RECIPE_FIELDS = frozenset(f.name for f in dataclasses.fields(Recipe)) - {
    "name", "description", "preset", "preset_overrides"}


def split_overrides(overrides: dict[str, Any], where: str = "overrides") -> tuple[dict, dict]:
    """``{field: value}`` overrides sorted into the preset's and the recipe's, by name
    (``where`` names them in the error: ``--set``, a notebook's ``overrides``)."""
    preset, recipe = {}, {}
    for key, value in check_mapping("overrides", overrides).items():
        if key in PRESET_FIELDS:
            preset[key] = value
        elif key in RECIPE_FIELDS:
            recipe[key] = value
        else:
            raise ValueError(f"{where} {key}=...: {key!r} is neither a preset field "
                             f"({', '.join(sorted(PRESET_FIELDS))}) nor a recipe field "
                             f"({', '.join(sorted(RECIPE_FIELDS))}).")
    return preset, recipe


def make_train_config(*, preset: str | None = None, recipe: str | None = None,
                      overrides: dict[str, Any] | None = None,
                      recipe_flags: dict[str, tuple[str, Any]] | None = None,
                      overrides_name: str = "--set", **fields: Any) -> TrainConfig:
    """The checked :class:`TrainConfig` of parameters as the CLI and the notebooks take them.

    Args:
        preset, recipe: names; either may be left out (``None``): the recipe's own preset,
            or the preset's default recipe (:data:`DEFAULT_RECIPE`); both: ``cifar``/``cpu``.
        overrides: preset and recipe fields by name (``--set``; a notebook's ``overrides``).
        recipe_flags: ``{field: (flag, value)}`` recipe fields given by their own flag
            (``--epochs``, a notebook's ``epochs``); ``None`` values are ignored, and one that
            contradicts ``overrides`` is refused.
        overrides_name: what the caller calls ``overrides``, for the error messages.
        fields: other :class:`TrainConfig` fields (``data``, ``run_dir``, ``seed``...).
    """
    if recipe is not None:
        check_recipe_name(recipe)
    preset = preset or (RECIPES[recipe].preset if recipe else "cifar")
    recipe = recipe or DEFAULT_RECIPE.get(preset, "cpu")
    preset_overrides, recipe_overrides = split_overrides(overrides or {}, overrides_name)
    for field, (flag, value) in (recipe_flags or {}).items():
        if value is None:
            continue
        if field in recipe_overrides and recipe_overrides[field] != value:
            raise ValueError(f"{flag} and {overrides_name} {field}={recipe_overrides[field]!r} "
                             f"contradict "
                             f"each other: give one of them.")
        recipe_overrides[field] = value
    config = TrainConfig(preset=preset, preset_overrides=preset_overrides, recipe=recipe,
                         recipe_overrides=recipe_overrides, **fields)
    return config.validate()  # fail now, not after loading the data
