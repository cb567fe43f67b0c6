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
EVALUATIONS: dict[str, str] = {
    "depthnet": "facehub.trainers.evaluation.depthnet:main",
    "prn_dense": "facehub.trainers.evaluation.prn_dense:main",
}
BENCHMARKS: dict[str, str] = {}


def _check_method(name: str) -> None:
    get_method(name)  # raises UnknownMethodError listing the known methods


def cpu_threads_per_process(accelerate_args: list[str], environ=None, cpu_count: int | None = None) -> int | None:
    """Torch threads for each process of a ``--cpu`` launch: the machine's cores shared among the processes.

    ``accelerate launch --cpu`` exports ``OMP_NUM_THREADS=1`` unless told otherwise, so one training process on a
    two-core machine used one core (2.5 s a step instead of about 1.7 for ``prn-dense-default.yaml``). ``None`` (leave
    it to accelerate) when the launch is not ``--cpu`` or the user already chose (``--num_cpu_threads_per_process``,
    ``OMP_NUM_THREADS``).
    """
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--cpu", action="store_true")
    parser.add_argument("--num_processes", type=int, default=1)
    parser.add_argument("--num_cpu_threads_per_process")
    launch, _ = parser.parse_known_args(accelerate_args)
    if not launch.cpu or launch.num_cpu_threads_per_process is not None or environ.get("OMP_NUM_THREADS"):
        return None
    return max(1, (cpu_count or os.cpu_count() or 1) // max(1, launch.num_processes))


def accelerate_command(method: str, config: str | None, resume: bool, rest: list[str],
                       cpu_count: int | None = None) -> list[str]:
    """Split ``rest`` into config overrides (``k=v``) and accelerate options; build the launch command."""
    overrides = [a for a in rest if "=" in a and not a.startswith("-")]
    accelerate_args = [a for a in rest if a not in overrides]
    threads = cpu_threads_per_process(accelerate_args, cpu_count=cpu_count)
    if threads is not None:
        accelerate_args += ["--num_cpu_threads_per_process", str(threads)]
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


def _prepare(args: argparse.Namespace) -> int:
    from facehub.trainers.data.prepare import PrepareConfig, prepare, prepare_synthetic

    if args.synthetic == bool(args.images):
        raise ValueError("Give either --images DIR (photos) or --synthetic (the synthetic face world).")
    if args.synthetic:
        from facehub.trainers.data.synthetic_world import SyntheticWorldConfig

        world = SyntheticWorldConfig(num_identities=args.identities, views_per_identity=args.views,
                                     image_size=args.size, uv_size=args.uv_size, seed=args.seed)
        report = prepare_synthetic(world, args.out)
        print(f"{report.kept} synthetic faces rendered\ndataset: {report.dataset_dir}\nplot: {report.plot}")
        return 0
    report = prepare(
        PrepareConfig(
            images=args.images, out=args.out, attributes=args.attributes, size=args.size, uv_size=args.uv_size,
            num_proc=args.num_proc, shard_size=args.shard_size, max_pixels=args.max_pixels,
            push_to_hub=args.push_to_hub,
        )
    )
    print(report.summary())
    print(f"dataset: {report.dataset_dir}\nreport: {args.out}/report.json\nplot: {report.plot or 'none (no face kept)'}")
    return 0


def _prepare_swaps(args: argparse.Namespace) -> int:
    from facehub.trainers.data.pasted_swaps import make_pasted_swaps

    report = make_pasted_swaps(args.images, args.out, args.count, seed=args.seed, size=args.size, model=args.model)
    print(report.summary())
    print(f"domain A (pasted swaps): {args.out}/swaps\ndomain B (real faces): {args.out}/real\n"
          f"report: {args.out}/report.json")
    return 0


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

    prepare = subparsers.add_parser(
        "prepare",
        help="Turn a folder of photos into a labelled face dataset (datasets.Dataset on disk).",
        description="Nested folders name identities. Unreadable files and photos without a face are skipped and "
        "counted in OUT/report.json; a killed run continues where it stopped.",
    )
    prepare.add_argument("--images", help="Folder of photos (DIR/<identity>/<photo> for identities).")
    prepare.add_argument("--synthetic", action="store_true",
                         help="Render the synthetic face world instead of reading photos (exact ground truth).")
    prepare.add_argument("--identities", type=int, default=8, help="Synthetic identities (default 8).")
    prepare.add_argument("--views", type=int, default=4, help="Synthetic views per identity (default 4).")
    prepare.add_argument("--seed", type=int, default=0, help="Seed of the synthetic world (default 0).")
    prepare.add_argument("--out", required=True, help="Output folder (dataset/, report.json, pose_distribution.png).")
    prepare.add_argument("--attributes", help="CelebA list_attr_celeba.txt, matched by file name.")
    prepare.add_argument("--size", type=int, default=128, help="Aligned crop size in pixels (default 128).")
    prepare.add_argument("--uv-size", type=int, default=256, help="UV position map size (default 256).")
    prepare.add_argument("--num-proc", type=int, default=1, help="Worker processes for datasets.map (default 1).")
    prepare.add_argument("--shard-size", type=int, default=256, help="Photos per resumable shard (default 256).")
    prepare.add_argument("--max-pixels", type=int, default=40_000_000, help="Refuse larger images (default 40 MP).")
    prepare.add_argument("--push-to-hub", metavar="ID", help="Also push the dataset to the Hub under this id.")
    prepare.set_defaults(func=_prepare)

    swaps = subparsers.add_parser(
        "prepare-swaps",
        help="Make the two domains of the face-swap repair: DepthNet swaps pasted on target photos, and the targets.",
        description="Ordered pairs of different photos from --images are swapped with the DepthNet face-swap "
        "pipeline; the raw paste and the real target are cropped with the repair's framing into OUT/swaps and "
        "OUT/real (train with `facehub train cyclegan data.domain_a=OUT/swaps data.domain_b=OUT/real`).",
    )
    swaps.add_argument("--images", required=True, help="Folder of photos (searched recursively).")
    swaps.add_argument("--out", required=True, help="Output folder (swaps/, real/, report.json).")
    swaps.add_argument("--count", type=int, default=1000, help="Swaps to make (default 1000).")
    swaps.add_argument("--size", type=int, default=128, help="Side of the square crops (default 128).")
    swaps.add_argument("--seed", type=int, default=0, help="Seed of the pair draw (default 0).")
    swaps.add_argument("--model", default="facehub/depthnet", help="DepthNet checkpoint (default facehub/depthnet).")
    swaps.set_defaults(func=_prepare_swaps)

    for verb, table, text in (
        ("eval", EVALUATIONS, "Evaluate a trained method on held-out data and print its table."),
        ("bench", BENCHMARKS, "Time a method against references measured in the same run."),
    ):
        parser = subparsers.add_parser(verb, help=text)
        parser.add_argument("method", help=f"One of: {', '.join(known_methods())}.")
        parser.set_defaults(func=_dispatch(table, verb), accepts_rest=True)
