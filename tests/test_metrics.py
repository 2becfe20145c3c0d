"""Metrics over every example: top-1, top-5, per-class accuracy and the confusion matrix
(alexnet_lib.metrics)."""

import numpy as np
import pytest

from alexnet_lib.metrics import classification_metrics


def test_metrics_count_every_example():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    labels = np.array([0, 1, 1, 2])
    m = classification_metrics(probs, labels, ["a", "b", "c"])
    assert m["test_top1"] == 0.5 and m["test_top5"] == 1.0
    assert m["per_class"] == {"a": 1.0, "b": 0.5, "c": 0.0}
    assert m["confusion"] == [[1, 0, 0], [0, 1, 1], [1, 0, 0]]


def test_metrics_are_keyed_by_their_split():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    m = classification_metrics(probs, np.array([0, 0, 0]), ["a", "b"], split="val")
    assert m["val_top1"] == 2 / 3 and m["val_top5"] == 1.0
    assert m["val_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.2, 0.6])), rel=1e-12)
    assert not [key for key in m if key.startswith("test_")]
