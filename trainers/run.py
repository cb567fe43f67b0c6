"""Process entry point of a training run: ``accelerate launch -m facehub.trainers.run METHOD --config FILE [k=v ...]``.

``facehub train`` builds exactly this command; every method's module (``facehub.trainers.depthnet``, ...) is also
runnable the same way without the METHOD argument.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from facehub.trainers.cli import COMMAND_ENV
from facehub.trainers.core import get_method, load_config, train


def build_parser(method: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"facehub.trainers.{method}" if method else "facehub.trainers.run",
        description="Train a facehub method in the shared Accelerate loop.",
    )
    if method is None:
        parser.add_argument("method", help="Registered method name (e.g. depthnet).")
    parser.add_argument("--config", help="YAML config file (fields: see facehub.trainers.core.config).")
    parser.add_argument("--resume", action="store_true", help="Continue from the newest complete checkpoint.")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="Config overrides, dotted for nesting.")
    return parser


def main(argv: list[str] | None = None, method: str | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(method).parse_intermixed_args(argv)
    name = method or args.method
    method_cls = get_method(name)
    overrides = list(args.overrides) + (["resume=true"] if args.resume else [])
    config = load_config(args.config, overrides, defaults={"method": name, **method_cls.default_config})
    if config.method != name:
        raise SystemExit(f"The config trains {config.method!r} but the command asked for {name!r}.")
    command = os.environ.get(COMMAND_ENV) or shlex.join(["facehub", "train", name, *(a for a in argv if a != name)])
    summary = train(method_cls(config), command=command)
    return 0 if summary["step"] >= config.max_steps or summary.get("stopped") else 1


if __name__ == "__main__":
    sys.exit(main())
