"""``facehub hub ...``: list the embedded defaults, push an exported model, pull a model into a folder.

Registered into the ``facehub`` command by :func:`register`; also runnable alone as ``python -m facehub.hub.cli``.
Each sub-command's ``func`` takes the parsed arguments and returns the exit code (0 success, 1 failure, 2 usage).
"""

from __future__ import annotations

import argparse
import json
import sys


def _list(args) -> int:
    from facehub import methods
    from facehub.hub.resolver import list_embedded

    models = list_embedded()
    owners = {spec.default_model: spec for spec in methods.all_methods() if spec.default_model}

    def owner(model) -> methods.MethodSpec | None:
        return owners.get(model.model_id) or (methods.method_of_class(model.class_name) if model.class_name else None)

    if args.json:
        rows = []
        for m in models:
            spec = owner(m)
            rows.append({"id": m.model_id, "class_name": m.class_name, "method": spec.name if spec else None,
                         "capabilities": sorted(spec.capabilities) if spec else [], "description": m.description,
                         "path": str(m.path)})
        print(json.dumps(rows, indent=2))
        return 0
    if not models:
        print("No embedded default checkpoints are installed.", file=sys.stderr)
        return 0
    rows = []
    for m in models:
        spec = owner(m)
        rows.append((m.model_id, m.class_name or "?", spec.name if spec else "?",
                     ", ".join(sorted(spec.capabilities)) if spec else "", m.description))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(f"{cell:<{w}}" for cell, w in zip(row[:4], widths, strict=True)) + f"  {row[4]}".rstrip())
    return 0


def _push(args) -> int:
    from facehub.hub.cards import NotAModelFolderError
    from facehub.hub.push import PushError, init_bare_repo, mirror_repo_path, push_to_git, push_to_hub

    if args.git_remote and args.mirrors_dir:
        print("error: pass either --git-remote or --mirrors-dir, not both.", file=sys.stderr)
        return 2
    try:
        if args.git_remote or args.mirrors_dir:
            remote = args.git_remote
            if args.mirrors_dir:
                remote = str(init_bare_repo(mirror_repo_path(args.mirrors_dir, args.repo_id), branch=args.branch))
            commit = push_to_git(
                args.path,
                remote,
                branch=args.branch,
                message=args.message,
                repo_id=args.repo_id,
                create_card=not args.no_card,
            )
            print(f"Pushed {args.path} to {remote} ({args.branch}): commit {commit}")
        else:
            url = push_to_hub(
                args.path,
                args.repo_id,
                token=args.token,
                private=args.private,
                commit_message=args.message,
                revision=None if args.branch == "main" else args.branch,
                create_card=not args.no_card,
            )
            print(f"Pushed {args.path} to {args.repo_id}: {url}")
    except (PushError, NotAModelFolderError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def _pull(args) -> int:
    from facehub.hub.pull import pull
    from facehub.hub.resolver import ModelNotFoundError

    try:
        folder = pull(args.repo_id, args.dir, revision=args.revision, token=args.token)
    except (ModelNotFoundError, NotADirectoryError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"Pulled {args.repo_id} into {folder}")
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``hub`` with its ``list``, ``push`` and ``pull`` sub-commands to the ``facehub`` command's sub-parsers."""
    hub = subparsers.add_parser(
        "hub",
        help="List embedded default models, push an exported model, pull a model into a folder.",
        description="Move facehub checkpoints between this machine, the Hugging Face Hub and plain git remotes.",
    )
    commands = hub.add_subparsers(dest="hub_command", metavar="HUB_COMMAND")

    def usage(_args) -> int:
        hub.print_help()
        return 2

    hub.set_defaults(func=usage)

    listing = commands.add_parser("list", help="Print the embedded default model ids, their classes and descriptions.")
    listing.add_argument("--json", action="store_true", help="Print a JSON list instead of one line per model.")
    listing.set_defaults(func=_list)

    push = commands.add_parser(
        "push",
        help="Publish an exported model folder to the Hub, or to a git remote with --git-remote / --mirrors-dir.",
        description="Publish an exported model folder. Writes a model card (README.md) first when it has none.",
    )
    push.add_argument("path", help="Folder written by save_pretrained (holds model_index.json or config.json).")
    push.add_argument("repo_id", help="Hub id 'org/name' (also the id the model card is written for).")
    push.add_argument("--private", action="store_true", help="Create the Hub repo private.")
    push.add_argument("--token", default=None, help="Hub token with write access (default: HF_TOKEN or the login).")
    push.add_argument(
        "--git-remote",
        metavar="URL",
        default=None,
        help="Push to this git remote (URL or path of a bare repository) instead of the Hub; no git-lfs needed.",
    )
    push.add_argument(
        "--mirrors-dir",
        metavar="DIR",
        default=None,
        help="Push into an olah mirrors-path: DIR/models/ORG/NAME, created as a bare repository when missing.",
    )
    push.add_argument("--branch", default="main", help="Branch to push to (default: main).")
    push.add_argument("--message", default="Upload model with facehub", help="Commit message.")
    push.add_argument("--no-card", action="store_true", help="Do not write a model card when the folder has none.")
    push.set_defaults(func=_push)

    pull = commands.add_parser(
        "pull",
        help="Download a model from the Hub (or HF_ENDPOINT) into a plain folder, e.g. for an air-gapped copy.",
    )
    pull.add_argument("repo_id", help="Hub id 'org/name'.")
    pull.add_argument("dir", help="Destination folder (created when missing).")
    pull.add_argument("--revision", default=None, help="Branch, tag or commit (default: main).")
    pull.add_argument("--token", default=None, help="Hub token for private repos (default: HF_TOKEN or the login).")
    pull.set_defaults(func=_pull)
    return hub


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone parser whose only command is ``hub`` (what ``python -m facehub.hub.cli`` uses)."""
    parser = argparse.ArgumentParser(prog="facehub", description="facehub model hub commands.")
    register(parser.add_subparsers(dest="command", metavar="COMMAND"))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``facehub hub ARGS``; ``argv`` may start with ``hub`` or go straight to its sub-command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "hub":
        argv = ["hub", *argv]
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
