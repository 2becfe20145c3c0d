"""A run's data: the ``tf.data`` pipelines of a resolved configuration
(:func:`build_datasets`, checked against the run folder's record of its data) and of a
finished run, normalized as it was trained (:func:`run_datasets`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .config import ResolvedConfig
from .data.datasets import Datasets, make_datasets
from .data.preprocessing import Normalization
from .data.sources import data_fingerprint, load_source, resolve_source
from .paths import shared_cifar10_jpeg
from .runs import RunFolder


def build_datasets(resolved: ResolvedConfig, normalization: Normalization | None = None, *,
                   run: RunFolder | None = None, **kwargs) -> tuple[Datasets, ResolvedConfig]:
    """The run's :class:`Datasets`, and ``resolved`` with the preset's ``num_classes``
    following the data (unless the configuration overrides it).

    Args:
        normalization: statistics to reuse (a resumed run's, an evaluation's); default:
            computed from the training split as the recipe says.
        run: a run folder whose recorded data these must be (checked as soon as the data is
            loaded, before anything depends on its size).
    """
    config, recipe = resolved.config, resolved.recipe
    loaded = load_source(config.data, skip_corrupt=config.skip_corrupt)
    fingerprint = data_fingerprint(loaded[0], loaded[1])
    if run is not None:
        run.check_data(fingerprint, config.data)
    resolved = resolved.with_classes(len(loaded[1]))
    options = dict(batch_size=recipe.batch_size, val_size=config.val_size,
                   train_subset=config.train_subset, test_subset=config.test_subset,
                   augment=recipe.augment, normalization=normalization or recipe.normalization,
                   seed=config.seed, resize_in_model=recipe.resize_in_model)
    options.update(kwargs)
    datasets = make_datasets(config.data, resolved.preset, loaded=loaded,
                             fingerprint=fingerprint, **options)
    return datasets, resolved


def run_datasets(run_dir: str | Path, data: str | None = None, **overrides) -> Datasets:
    """A finished run's data with the normalization it was trained with.

    Args:
        data: read the run's data from here instead of the recorded source (e.g. after
            moving it); it must hold the same images. By default: the recorded source, or,
            when that path does not exist here, the CIFAR-10 JPEG copy beside the project
            (``../shared/datasets/cifar10-jpeg``) if it holds the same images.

    Raises:
        ValueError: when the data found is not the data the run was trained on.
    """
    run = RunFolder(run_dir)
    config = run.read_config()
    if data is not None:
        config = dataclasses.replace(config, data=resolve_source(data))
    elif config.data != "cifar10" and not Path(config.data).exists() and (
            shared_cifar10_jpeg().is_dir()):
        # A run trained elsewhere (the shipped model) on the CIFAR-10 JPEG copy: the copy
        # beside this project holds the same images if the fingerprints agree (checked).
        config = dataclasses.replace(config, data=str(shared_cifar10_jpeg()))
    return build_datasets(config.resolve(), run.read_normalization(), run=run, **overrides)[0]
