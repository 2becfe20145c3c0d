"""alexnet_lib: AlexNet (Krizhevsky, Sutskever & Hinton, NIPS 2012) on CIFAR-10.

The tested library behind the notebooks and ``python -m alexnet_lib``.
"""

import os as _os

# TensorFlow's C++ start-up chatter (CUDA probing on CPU-only machines) hides the
# project's own output; set TF_CPP_MIN_LOG_LEVEL=0 to see it again.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .layers import LocalResponseNormalization, TowerConv2D
from .model import (
    DEFAULT_CPU_PRESET,
    PRESETS,
    Preset,
    build_alexnet,
    format_layer_table,
    get_preset,
    layer_table,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_CPU_PRESET",
    "LocalResponseNormalization",
    "PRESETS",
    "Preset",
    "TowerConv2D",
    "build_alexnet",
    "format_layer_table",
    "layer_table",
    "get_preset",
]
