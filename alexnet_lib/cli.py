"""``python -m alexnet_lib <command>``: thin commands over the library.

Commands:
    summary   build a preset (with overrides) and print its layers and parameter count.
"""

from __future__ import annotations

import argparse
import os
import sys

import yaml


def _parse_overrides(items: list[str]) -> dict:
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE (e.g. --set towers=false). Received: {item!r}")
        overrides[key.strip().replace("-", "_")] = yaml.safe_load(value)
    return overrides


def cmd_summary(args) -> int:
    from .model import build_alexnet, format_layer_table, get_preset

    overrides = _parse_overrides(args.set)
    preset = get_preset(args.preset, **overrides)
    model = build_alexnet(preset)
    print(f"Preset {preset.name!r}: {preset.description}\n")
    if overrides:
        print(f"Overrides: {overrides}\n")
    print(format_layer_table(model))
    sizes = preset.feature_sizes()
    print(f"\nInput {sizes['image']}x{sizes['image']}x3 -> conv1 {sizes['conv1']}x{sizes['conv1']} "
          f"-> pool1 {sizes['pool1']} -> pool2 {sizes['pool2']} -> pool5 {sizes['pool5']}; "
          f"{model.count_params():,} parameters.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m alexnet_lib",
        description="AlexNet (Krizhevsky, Sutskever & Hinton, NIPS 2012) on CIFAR-10.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    summary = sub.add_parser("summary", help="build a preset and print its layers")
    summary.add_argument("--preset", default="cifar", help="paper, seed or cifar (default: cifar)")
    summary.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="override a preset field, e.g. --set towers=false --set image_size=64")
    summary.set_defaults(func=cmd_summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
