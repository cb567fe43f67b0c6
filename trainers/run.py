"""Process entry point of a training run: ``accelerate launch -m facehub.trainers.run METHOD [--config FILE]
[--preset NAME] [--resume] [KEY=VALUE ...]``.

``facehub train`` builds exactly this command (after validating the config in its own process); every method's
module (``facehub.trainers.depthnet``, ...) is also runnable the same way without the METHOD argument.

A failure the user can fix (a bad config, a missing data folder, a dataset too small for one batch, a damaged
checkpoint, a refused or unreachable Hub at the final push) is one line on stderr from the main process, no traceback, and a non-zero exit: 2 for a config error,
1 otherwise. ``FACEHUB_DEBUG=1`` shows the traceback instead.

A run that seems stuck can be asked where it is: ``kill -USR1 PID`` on one of its training processes (this
module's; ``accelerate launch``'s own process would stop) prints the stack of each of its threads to stderr, and
the run carries on.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import io
import os
import shlex
import signal
import sys

from facehub.trainers.cli import COMMAND_ENV
from facehub.trainers.core.config import ConfigError, load_config

DEBUG_ENV = "FACEHUB_DEBUG"


def build_parser(method: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"facehub.trainers.{method}" if method else "facehub.trainers.run",
        description="Train a facehub method in the shared Accelerate loop.",
    )
    if method is None:
        parser.add_argument("method", help="Registered method name (e.g. depthnet).")
    parser.add_argument("--config", help="YAML config file (keys: `facehub train METHOD --help`).")
    parser.add_argument("--preset", help="Named preset of the method's config (paper, cpu-small, default...).")
    parser.add_argument("--resume", action="store_true", help="Continue from the newest complete checkpoint.")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="Config overrides, dotted for the sections.")
    return parser


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "fix your config, data or checkpoint", not a bug: reported in one line."""
    from facehub.hub.push import PushError
    from facehub.trainers.core.checkpointing import CheckpointError

    return ValueError, OSError, CheckpointError, PushError


def is_main_process() -> bool:
    """Rank 0 of the launch (``RANK`` is set by torchrun; a single process has none)."""
    return os.environ.get("RANK", "0") == "0" and os.environ.get("LOCAL_RANK", "0") == "0"


def report_error(error: BaseException) -> int:
    """Print ``error`` as one line (main process only); the exit code: 2 for a config error, 1 otherwise."""
    if is_main_process():
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"facehub train: error: {message}", file=sys.stderr, flush=True)
    return 2 if isinstance(error, ConfigError) else 1


def _print_stacks_on_sigusr1() -> None:
    """``kill -USR1 PID``: every thread's stack on stderr (module docstring). Only where stderr is a file the process
    can write to by itself: called in-process with stderr captured (a notebook, a test), there is nowhere to print."""
    if not hasattr(signal, "SIGUSR1"):
        return
    with contextlib.suppress(AttributeError, ValueError, io.UnsupportedOperation):
        faulthandler.register(signal.SIGUSR1, all_threads=True)


def main(argv: list[str] | None = None, method: str | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    _print_stacks_on_sigusr1()
    args = build_parser(method).parse_intermixed_args(argv)
    name = method or args.method
    try:
        from facehub.trainers.core import get_method, train

        method_cls = get_method(name)
        overrides = list(args.overrides) + (["resume=true"] if args.resume else [])
        config = load_config(args.config, overrides, method=name, preset=args.preset,
                             config_class=method_cls.config_class)
        command = os.environ.get(COMMAND_ENV) or shlex.join(["facehub", "train", name, *(a for a in argv if a != name)])
        summary = train(method_cls(config), command=command)
    except user_errors() as error:
        if os.environ.get(DEBUG_ENV):
            raise
        return report_error(error)
    except KeyboardInterrupt:  # before the loop listens for it (it saves and stops once training runs)
        return 130
    return 0 if summary["step"] >= config.max_steps or summary.get("stopped") else 1


if __name__ == "__main__":
    sys.exit(main())
