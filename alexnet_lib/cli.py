"""``python -m alexnet_lib <command>``: thin commands over the library.

Commands:
    summary   build a preset (with overrides) and print its layers and parameter count.
    train     train (or resume) a run, then evaluate it on the test set.
    evaluate  top-1/top-5, per-class accuracy and confusion of a run's model -> metrics.json.
    predict   classes and probabilities for image files and folders.
    export    a TensorFlow SavedModel for serving (image bytes or pixels in, classes out).
    notebooks run the four notebooks with a parameter set through papermill.

Errors: one line on stderr, ``error: <what went wrong, the value, what to do>``, and no
traceback (``--traceback`` or ``ALEXNET_TRACEBACK=1`` shows it). Exit status:

* 0: success;
* 2: bad input -- an argument, a data source, a run folder, a model file or an image that
  cannot be used as given (nothing was trained or written);
* 1: the run failed -- training diverged, a download failed, the disk is full, some
  images given to ``predict`` could not be read, or an unexpected error;
* 130: interrupted (Ctrl-C); the same command resumes a training run;
* 143: terminated (SIGTERM, e.g. by a scheduler or ``kill``); the same command resumes.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import sys
import threading

from .checks import check_device_pair, check_int, parse_value
from .errors import Terminated, TrainingDiverged
from .files import FolderBusy
from .paths import shipped_model, shipped_run


def _parse_overrides(items: list[str]) -> dict:
    """``--set KEY=VALUE`` items: numbers in any notation (``1e-3``), booleans, lists; each
    value is then checked against its field's type by the preset or the recipe."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE (e.g. --set towers=false). "
                             f"Received: {item!r}")
        overrides[key.strip().replace("-", "_")] = parse_value(value)
    return overrides


def cmd_summary(args) -> int:
    from .model import build_alexnet, format_layer_table, get_preset  # lazy: keeps --help fast

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


def train_config_from_args(args) -> "TrainConfig":  # noqa: F821
    """The checked ``TrainConfig`` of ``train``'s flags (the translation the notebooks share:
    :func:`alexnet_lib.config.make_train_config`)."""
    from .config import make_train_config  # lazy: keeps --help fast

    flags = {"epochs": ("--epochs", args.epochs), "precision": ("--precision", args.precision),
             "jit_compile": ("--xla", None if args.xla is None else args.xla == "on"),
             "batch_size": ("--batch-size", args.batch_size)}
    return make_train_config(
        preset=args.preset, recipe=args.recipe, overrides=_parse_overrides(args.set),
        recipe_flags=flags, data=args.data, val_size=args.val_size,
        train_subset=args.train_subset, test_subset=args.test_subset, seed=args.seed,
        run_dir=args.run_dir, skip_corrupt=args.skip_corrupt,
        checkpoint_every=args.checkpoint_every, keep_epochs=args.keep_epochs,
        strategy=args.strategy, tower_devices=_tower_devices(args.towers_on))


def _tower_devices(text: str | None) -> list[str] | None:
    try:
        return check_device_pair("--towers-on", text)
    except ValueError:
        raise ValueError(f"--towers-on takes two devices, e.g. --towers-on /GPU:0,/GPU:1. "
                         f"Received: {text!r}") from None


def cmd_train(args) -> int:
    from .backend import backend_name  # lazy: keeps --help fast
    from .evaluate import evaluate  # lazy: keeps --help fast
    from .train import Trainer  # lazy: keeps --help fast

    strategy = None
    if backend_name() == "tensorflow":
        from .distribute import make_strategy  # lazy: TensorFlow's alone

        strategy = make_strategy(args.strategy)  # first: multiworker precedes other TF work
    config = train_config_from_args(args)
    trainer = Trainer(config, strategy=strategy)
    if trainer.datasets.skipped:
        print(f"Skipped {len(trainer.datasets.skipped)} unreadable file(s), e.g. "
              f"{trainer.datasets.skipped[0]}", file=sys.stderr)
    trainer.fit()
    if args.no_evaluate or not trainer.is_chief:
        return 0
    metrics = evaluate(trainer.run_dir, views=_views(args), datasets=trainer.datasets)
    print(f"Test accuracy (top-1) {metrics['test_top1']:.4f}, top-5 {metrics['test_top5']:.4f} "
          f"over {metrics['num_examples']} images of {metrics['data']}"
          f"{VIEW_NOTES[metrics['views']]}.")
    if metrics["views"] != "center":
        print(f"  (the centre view alone: top-1 {metrics['center_top1']:.4f}, "
              f"top-5 {metrics['center_top5']:.4f})")
    print(f"Checkpoint: {trainer.ckpt_dir / 'best.keras'}")
    print(f"Metrics: {trainer.run_dir / 'metrics.json'}")
    return 0


VIEW_NOTES = {"center": "", "flip": ", each image averaged with its mirror image",
              "shift6": ", averaging 6 views (the image and its one-pixel shifts, mirrored)",
              "shift10": ", averaging 10 views (the image and its two-pixel shifts, mirrored)",
              "tta": ", averaging the paper's 10 views"}
# What each choice of --views averages, for the commands' help.
VIEWS_HELP = ("center (the centre crop alone), flip (it and its mirror image), shift6 (those "
              "and their one-pixel shifts up-left and down-right: 6 views), shift10 (the centre "
              "and its two-pixel shifts up, down, left and right, mirrored: 10 views) or tta "
              "(the paper's 10 views: corners, centre, mirrors)")


def _views(args) -> str | None:
    """``--views``, or ``tta`` for ``--tta``; ``None``: the recipe's ``eval_views``."""
    if args.tta and args.views not in (None, "tta"):
        raise ValueError(f"--tta means --views tta; it contradicts --views {args.views}: "
                         f"give one of them.")
    return "tta" if args.tta else args.views


def cmd_evaluate(args) -> int:
    from .evaluate import evaluate  # lazy: keeps --help fast

    metrics = evaluate(args.run_dir, views=_views(args), checkpoint=args.checkpoint,
                       data=args.data, split=args.split)
    shown = {k: v for k, v in metrics.items() if k != "confusion"}
    print(json.dumps(shown, indent=2))
    written = "val-metrics.json" if args.split == "val" else "metrics.json"
    print(f"Wrote {os.path.join(args.run_dir, written)} (with the confusion matrix).")
    return 0


def cmd_predict(args) -> int:
    from .predict import predict  # lazy: keeps --help fast

    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint = shipped_model()
        recorded = json.loads((shipped_run() / "metrics.json").read_text())
        print(f"(no --checkpoint: the shipped model {checkpoint}, test top-1 "
              f"{recorded['test_top1']:.3f} on CIFAR-10)", file=sys.stderr)
    results = predict(checkpoint, args.images, top_k=args.top_k, views=args.views)
    failed = [r for r in results if r.error]
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        for r in results:
            if not r.error:
                print(f"{r.path}: " + ", ".join(f"{c} {p:.3f}" for c, p in r.top))
    for r in failed:
        print(f"error: {r.error}", file=sys.stderr)
    return 1 if failed else 0


def cmd_export(args) -> int:
    from .backend import refuse_on_jax  # lazy: keeps --help fast

    refuse_on_jax("export (a TensorFlow SavedModel)",
                  "Export where TensorFlow is installed (KERAS_BACKEND=tensorflow python -m "
                  "alexnet_lib export ...): the .keras file is the same on both backends.")
    from .export import export_saved_model  # lazy: TensorFlow's alone

    out = export_saved_model(args.checkpoint, args.out, views=args.views)
    print(f"Wrote the SavedModel {out}: signatures 'serving_default'/'serve' (uint8 images "
          f"[N, H, W, 3]) and 'serve_bytes' (encoded images [N]); load it with "
          f"tf.saved_model.load({str(out)!r}).")
    return 0


def cmd_notebooks(args) -> int:
    import papermill

    from .notebooks import run_notebooks  # lazy: keeps --help fast

    try:
        run_dir = run_notebooks(args.params, data=args.data, run_dir=args.run_dir,
                                log_output=args.log_output, prepare_only=args.prepare_only,
                                **({"notebooks": args.only.split(",")} if args.only else {}))
    except papermill.PapermillExecutionError as error:
        print(f"error: notebook cell {error.exec_count} failed: {error.ename}: {error.evalue} "
              f"(the executed notebook up to that cell is in the run folder's notebooks/)",
              file=sys.stderr)
        return 1
    if args.prepare_only:
        print(f"Notebooks with their parameters (not executed): {run_dir / 'notebooks'}")
        return 0
    print(f"Executed notebooks: {run_dir / 'notebooks'}")
    print(f"Figures: {run_dir / 'figures'}")
    return 0


def cmd_ablations(args) -> int:
    from .notebooks import run_ablations  # lazy: keeps --help fast

    chosen = {"variants": args.variants.split(",") if args.variants else None,
              "seeds": [check_int("--seeds", v.strip(), 0) for v in args.seeds.split(",")]
              if args.seeds else None}
    table = run_ablations(args.params, data=args.data, run_dir=args.run_dir,
                         **{k: v for k, v in chosen.items() if v is not None})
    print(table)
    return 0


def _integer(minimum: int):
    def parse(text: str) -> int:
        try:
            return check_int("value", text, minimum)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {minimum}. Received: {text!r}") from None
    parse.__name__ = f"integer >= {minimum}"
    return parse


_nonnegative, _positive = _integer(0), _integer(1)


class _Parser(argparse.ArgumentParser):
    """argparse with the project's error line: ``error: argument --seed: ...`` on stderr,
    a pointer to ``--help``, exit status 2."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


# Each command: what runs it, its one-line help and its description (``--help``).
COMMANDS = {
    "summary": (cmd_summary, "build a preset and print its layers", None),
    "train": (cmd_train, "train (or resume) a run, then evaluate it",
                 "Train AlexNet into a run folder; the same command resumes an interrupted "
                 "run. Recipes: cpu (default for cifar), quick, long, origin, paper."),
    "evaluate": (cmd_evaluate, "evaluate a run on the whole test set", None),
    "predict": (cmd_predict, "classify image files", None),
    "export": (cmd_export, "write a TensorFlow SavedModel for serving",
                 "Export a saved model as a TensorFlow SavedModel whose signatures take "
                 "encoded image files or uint8 images of any size and return class names "
                 "and probabilities, with the resizing, normalization and test-time views "
                 "the model carries; it loads with tf.saved_model.load alone."),
    "notebooks": (cmd_notebooks, "run the four notebooks with a parameter set (papermill)",
                 "Execute notebooks/01..04 in order with notebooks/params/<PARAMS>.yaml; "
                 "the executed copies go to <run_dir>/notebooks, figures to <run_dir>/figures."),
    "ablations": (cmd_ablations, "the paper's claims: train and compare the ablation variants",
                 "Train every variant of notebooks/params/ablations-<PARAMS>.yaml (each "
                 "variant and seed into its own run folder: an interrupted sweep resumes) "
                 "and print the claims table; notebook 05 (make ablations) shows the same "
                 "with its figures."),
}


def _command(sub, name: str) -> argparse.ArgumentParser:
    """The subcommand ``name``, running ``cmd_<name>``, with its help from :data:`COMMANDS`."""
    func, help_, description = COMMANDS[name]
    parser = sub.add_parser(name, help=help_, description=description)
    parser.set_defaults(func=func)
    return parser


def _views_name(text: str) -> str:
    """A ``--views`` value, checked as it is parsed (an earlier name gets its new one)."""
    from . import quiet  # noqa: F401  # lazy: first, it hides TensorFlow's start-up lines
    from .data.preprocessing import check_views  # lazy: keeps --help fast
    try:
        return check_views(text, "--views")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_views(parser: argparse.ArgumentParser, default: str, tta: bool = False) -> None:
    """``--views`` (and ``--tta``), with ``default`` said in the help."""
    parser.add_argument("--views", type=_views_name, metavar="{" + ",".join(VIEW_NOTES) + "}",
                        help=f"test-time views to average: {VIEWS_HELP}; default: {default}")
    if tta:
        parser.add_argument("--tta", action="store_true", help="the same as --views tta")


def _add_set(parser: argparse.ArgumentParser, fields: str, example: str) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a {fields} field, e.g. {example}")


def _add_parameter_set(parser: argparse.ArgumentParser, params: str, run_dir: str) -> None:
    """``--params`` (named in ``params``), and ``--data``/``--run-dir`` overriding the set's."""
    parser.add_argument("--params", default="smoke", help=params)
    parser.add_argument("--data", help="override the set's data source")
    parser.add_argument("--run-dir", help=f"override the set's {run_dir}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m alexnet_lib",
        description="AlexNet (Krizhevsky, Sutskever & Hinton, NIPS 2012) on CIFAR-10.",
    )
    parser.add_argument("--traceback", action="store_true",
                        help="show the Python traceback of an error (also ALEXNET_TRACEBACK=1)")
    sub = parser.add_subparsers(dest="command", required=True)
    summary = _command(sub, "summary")
    summary.add_argument("--preset", default="cifar",
                         help="paper, upsampled or cifar (default: cifar)")
    _add_set(summary, "preset", "--set towers=false --set image_size=64")

    train = _command(sub, "train")
    train.add_argument("--preset", help="cifar (default), upsampled or paper")
    train.add_argument("--recipe",
                       help="cpu, quick, long, origin or paper (default: the preset's own)")
    train.add_argument("--data", default="cifar10",
                       help="cifar10 (download), a CIFAR-10 archive or folder, or a class-folder "
                            "tree such as ../shared/datasets/cifar10-jpeg (default: cifar10)")
    train.add_argument("--epochs", type=_positive, help="override the recipe's epochs")
    train.add_argument("--batch-size", type=_positive, help="override the recipe's batch size")
    train.add_argument("--train-subset", type=_positive, help="use only this many training images")
    train.add_argument("--test-subset", type=_positive, help="use only this many test images")
    train.add_argument("--val-size", type=_nonnegative,
                       help="validation images carved from the training split (default: the "
                            "recipe's; cpu, quick and long: 0, every training image trains)")
    train.add_argument("--seed", type=_nonnegative, default=0, help="random seed (default 0)")
    train.add_argument("--run-dir", help="run folder (default runs/<preset>-<recipe>)")
    _add_set(train, "preset or recipe", "--set learning_rate=0.02 --set towers=false")
    train.add_argument("--checkpoint-every", type=_positive, default=200,
                       help="optimizer steps between resume checkpoints (default 200; one is "
                            "also written after every epoch)")
    train.add_argument("--keep-epochs", action="store_true",
                       help="also keep each epoch's model, checkpoints/epoch-N.keras (for "
                            "benchmarks/accuracy_curve.py's test accuracy against minutes)")
    train.add_argument("--skip-corrupt", action="store_true",
                       help="skip unreadable images of a class-folder tree (and report them)")
    train.add_argument("--strategy", choices=("auto", "one", "mirrored", "multiworker"),
                       default="auto",
                       help="tf.distribute strategy: auto (default: multiworker when TF_CONFIG "
                            "names a cluster, mirrored when several GPUs are visible, else one "
                            "device), one, mirrored, multiworker (from TF_CONFIG). The batch "
                            "size is the global batch, split over the replicas")
    train.add_argument("--towers-on", metavar="DEV0,DEV1",
                       help="run the paper's two towers on two devices (model parallelism), "
                            "e.g. /GPU:0,/GPU:1")
    train.add_argument("--precision", choices=("float32", "mixed_bfloat16", "mixed_float16"),
                       help="override the recipe's precision (LRN and the softmax stay float32; "
                            "float16 uses loss scaling)")
    train.add_argument("--xla", choices=("on", "off"), help="XLA-compile the training step")
    _add_views(train, "the recipe's (cpu and long: shift10, quick: shift6)", tta=True)
    train.add_argument("--no-evaluate", action="store_true", help="skip the final test evaluation")

    evaluate = _command(sub, "evaluate")
    evaluate.add_argument("--run-dir", required=True, help="the run folder of a train command")
    _add_views(evaluate, "the run's recipe's", tta=True)
    evaluate.add_argument("--checkpoint", choices=("best", "last"), default="best",
                          help="which saved model (default: best validation accuracy)")
    evaluate.add_argument("--data", help="where the run's data is now, if it moved (default: "
                                         "the source the run recorded); it must hold the "
                                         "same images")
    evaluate.add_argument("--split", choices=("test", "val"), default="test",
                          help="test (default; writes metrics.json) or val: the validation "
                               "images the run carved from its training split with "
                               "--val-size (writes val-metrics.json; what chooses a recipe "
                               "without reading the test images)")

    predict = _command(sub, "predict")
    predict.add_argument("--checkpoint",
                         help="a .keras model saved by train, or a run folder (default: the "
                              "shipped model, models/cifar-cpu/checkpoints/best.keras)")
    predict.add_argument("--top-k", type=_positive,
                         help="classes to show (default 5, or all of a model with fewer); at "
                              "most the model's class count")
    _add_views(predict, "the views the model's recipe evaluates with (the shipped model: "
                        "shift10)")
    predict.add_argument("--json", action="store_true", help="print JSON")
    predict.add_argument("images", nargs="+", metavar="IMAGE",
                         help="JPEG or PNG files, or folders (their images, sorted)")

    export = _command(sub, "export")
    export.add_argument("--checkpoint", required=True,
                        help="a .keras model saved by train, or a run folder")
    export.add_argument("--out", required=True, help="the SavedModel folder to write")
    _add_views(export, "the model's")

    notebooks = _command(sub, "notebooks")
    _add_parameter_set(notebooks, "smoke (default), cpu, gpu-origin, gpu-paper, or the name of any "
                                  "notebooks/params/*.yaml", "run folder")
    notebooks.add_argument("--log-output", action="store_true",
                           help="echo the notebooks' output while they run")
    notebooks.add_argument("--only", metavar="NAME[,NAME]",
                           help="run these notebooks instead of 01..04, e.g. --only "
                                "05_ablations (with --params ablations-smoke|ablations-full)")
    notebooks.add_argument("--prepare-only", action="store_true",
                           help="write the notebooks with their parameters injected, without "
                                "executing them (to run them in JupyterLab)")

    ablations = _command(sub, "ablations")
    _add_parameter_set(ablations, "smoke (default) or full: "
                                  "notebooks/params/ablations-<PARAMS>.yaml", "sweep folder")
    ablations.add_argument("--variants", metavar="NAME[,NAME]",
                           help="only these variants (baseline, tanh, no-lrn, non-overlapping, "
                                "no-dropout, one-tower)")
    ablations.add_argument("--seeds", metavar="N[,N]", help="only these seeds")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, or a bad argument (its error line is printed)
        return exit_.code if isinstance(exit_.code, int) else 2
    restore = _on_sigterm()
    try:
        return args.func(args)
    except BaseException as error:  # noqa: BLE001  (the one place errors become exit codes)
        if args.traceback or os.environ.get("ALEXNET_TRACEBACK", "") not in ("", "0"):
            raise
        if isinstance(error, SystemExit):
            raise
        code, message = describe_error(error)
        print(f"error: {message}", file=sys.stderr)
        return code
    finally:
        restore()


def _terminated(signum, frame):
    raise Terminated()


def _on_sigterm():
    """Make SIGTERM raise :class:`~alexnet_lib.errors.Terminated` where the command is (in
    the main thread; elsewhere nothing changes). Returns what restores the previous handler."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.signal(signal.SIGTERM, _terminated)
    return lambda: signal.signal(signal.SIGTERM,
                                 signal.SIG_DFL if previous is None else previous)


def describe_error(error: BaseException) -> tuple[int, str]:
    """``(exit status, one-line message)`` for an error that ended a command."""
    from .data.cifar10 import DownloadError  # lazy: keeps --help fast

    text = " ".join(str(error).split())
    if isinstance(error, OSError) and error.strerror:
        # "[Errno 13] Permission denied: 'x'" -> "Permission denied (x)"
        text = " ".join(error.strerror.split()) + (f" ({error.filename})" if error.filename else "")
        if not text.endswith((".", ")")) or error.filename:
            text += "."
    if isinstance(error, KeyboardInterrupt):
        return 130, ("interrupted. A training run resumes from its last checkpoint when the "
                     "same command runs again.")
    if isinstance(error, Terminated):
        return 143, ("terminated (SIGTERM). A training run resumes from its last checkpoint "
                     "when the same command runs again.")
    if isinstance(error, (TrainingDiverged, DownloadError)):
        return 1, text
    if isinstance(error, (ValueError, FolderBusy, FileNotFoundError, NotADirectoryError,
                          IsADirectoryError, FileExistsError, PermissionError)):
        return 2, text
    if (isinstance(error, OSError) and error.errno == errno.ENOSPC) or (
            "No space left on device" in text):  # TensorFlow's writers report it so
        where = f" ({error.filename})" if getattr(error, "filename", None) else ""
        return 1, (f"no space left on the device{where}. Free some space and run the same "
                   f"command again: training resumes from its last checkpoint, which is "
                   f"kept whole.")
    if isinstance(error, MemoryError) or type(error).__name__ == "ResourceExhaustedError":
        return 1, ("out of memory. Lower --batch-size, or the input size (--set image_size=...), "
                   "or use a machine with more memory.")
    if isinstance(error, OSError):
        return 1, text
    return 1, (f"unexpected {type(error).__name__}: {text[:500]} (run again with --traceback "
               f"to see where it happened)")


if __name__ == "__main__":
    sys.exit(main())
