"""``facehub train``, ``facehub eval`` and ``facehub bench``: method-dispatching sub-commands.

``facehub train METHOD --config FILE [--resume] [KEY=VALUE ...] [accelerate launch options]`` runs
``accelerate launch [options] -m facehub.trainers.run METHOD --config FILE ...``: any ``--option`` that facehub does
not know (``--num_processes 2``, ``--multi_gpu``, ``--cpu``, ``--mixed_precision bf16``, ``--config_file``...) goes
to ``accelerate launch`` untouched.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import subprocess
import sys

from facehub.trainers.core.method import UnknownMethodError, get_method, known_methods

# The command the user typed, handed to the training processes for the model card.
COMMAND_ENV = "FACEHUB_TRAIN_COMMAND"

# Where a method's evaluation and benchmark live ("module:function(args) -> int"); methods add theirs here.
EVALUATIONS: dict[str, str] = {}
BENCHMARKS: dict[str, str] = {}


def _check_method(name: str) -> None:
    get_method(name)  # raises UnknownMethodError listing the known methods


def accelerate_command(method: str, config: str | None, resume: bool, rest: list[str]) -> list[str]:
    """Split ``rest`` into config overrides (``k=v``) and accelerate options; build the launch command."""
    overrides = [a for a in rest if "=" in a and not a.startswith("-")]
    accelerate_args = [a for a in rest if a not in overrides]
    command = [sys.executable, "-m", "accelerate.commands.launch", *accelerate_args, "-m", "facehub.trainers.run", method]
    if config:
        command += ["--config", config]
    if resume:
        command.append("--resume")
    return command + overrides


def _train(args: argparse.Namespace, rest: list[str]) -> int:
    _check_method(args.method)
    command = accelerate_command(args.method, args.config, args.resume, rest)
    print("launching:", " ".join(command[2:]), flush=True)
    typed = shlex.join(["facehub", "train", args.method, *(["--config", args.config] if args.config else []),
                        *(["--resume"] if args.resume else []), *rest])
    env = {**os.environ, "PYTHONUNBUFFERED": "1", COMMAND_ENV: typed}
    return subprocess.call(command, env=env)


def _dispatch(table: dict[str, str], verb: str):
    def run(args: argparse.Namespace, rest: list[str]) -> int:
        if args.method not in table:
            _check_method(args.method)
            raise UnknownMethodError(
                f"Method {args.method!r} has no `facehub {verb}` yet. Methods with one: {sorted(table) or 'none'}."
            )
        module_name, _, function = table[args.method].partition(":")
        return int(getattr(importlib.import_module(module_name), function)(rest) or 0)

    return run


def register(subparsers) -> None:
    train = subparsers.add_parser(
        "train",
        help="Train a method with the shared Accelerate loop (extra --options go to accelerate launch).",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("method", help=f"One of: {', '.join(known_methods())}.")
    train.add_argument("--config", help="YAML config file.")
    train.add_argument("--resume", action="store_true", help="Continue from the newest complete checkpoint.")
    train.set_defaults(func=_train, accepts_rest=True)

    for verb, table, text in (
        ("eval", EVALUATIONS, "Evaluate a trained method on held-out data and print its table."),
        ("bench", BENCHMARKS, "Time a method against references measured in the same run."),
    ):
        parser = subparsers.add_parser(verb, help=text)
        parser.add_argument("method", help=f"One of: {', '.join(known_methods())}.")
        parser.set_defaults(func=_dispatch(table, verb), accepts_rest=True)
