"""``facehub train``, ``facehub eval``, ``facehub bench`` and ``facehub prepare``: method-dispatching sub-commands.

``facehub train METHOD [--config FILE] [--preset NAME] [--resume] [KEY=VALUE ...] [accelerate launch options]``
validates the whole config in this process (a bad key or value is one line and exit status 2, before anything is
launched), then runs accelerate's launcher, in this process, as ``accelerate launch [options] -m
facehub.trainers.run METHOD ...`` with the same arguments: any ``--option`` that facehub does not know
(``--num_processes 2``, ``--multi_gpu``, ``--cpu``, ``--mixed_precision bf16``, ``--gradient_accumulation_steps 4``,
``--config_file``...) goes to ``accelerate launch`` untouched. The run's own exit status comes back as this
command's, without the launcher's traceback; Ctrl-C lets the run save a checkpoint and stop (:func:`launch`).

``facehub train METHOD --help`` lists every config key of the method with its type and default, and its presets;
``facehub eval METHOD --help`` and ``facehub bench METHOD --help`` show that method's own options. Methods, their
evaluations and benchmarks come from the method registry (:mod:`facehub.methods`).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys

# The command the user typed, handed to the training processes for the model card (read by facehub.trainers.run).
COMMAND_ENV = "FACEHUB_TRAIN_COMMAND"
TRAIN_USAGE = "facehub train METHOD [--config FILE] [--preset NAME] [--resume] [KEY=VALUE ...] [accelerate options]"


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


def launcher_accumulation(accelerate_args: list[str]) -> int | None:
    """``--gradient_accumulation_steps N`` among the launch options (``None``: not given).

    ``accelerate launch`` hands that flag to the processes only for DeepSpeed; ``facehub train`` exports it as
    ``ACCELERATE_GRADIENT_ACCUMULATION_STEPS``, which the Accelerator reads, so the flag works for every launch.
    """
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--gradient_accumulation_steps")
    launch, _ = parser.parse_known_args(accelerate_args)
    if launch.gradient_accumulation_steps is None:
        return None
    value = launch.gradient_accumulation_steps
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"Got {value!r} for --gradient_accumulation_steps; give a positive integer.")
    return int(value)


def check_launch_options(launch_args: list[str]) -> None:
    """Refuse, before launching, what ``accelerate launch`` would not run: options it does not know, and a stray
    argument (a config file given without ``--config``) that it would take for the training script."""
    from accelerate.commands.launch import launch_command_parser

    parsed, unknown = launch_command_parser().parse_known_args(launch_args)
    if unknown:
        raise ValueError(f"Neither facehub train nor accelerate launch knows {' '.join(unknown)}; `facehub train "
                         "METHOD --help` lists facehub's options and config keys, `accelerate launch --help` the rest.")
    if parsed.training_script != "facehub.trainers.run":
        hint = " (a config file goes after --config)" if parsed.training_script.endswith((".yaml", ".yml")) else ""
        raise ValueError(f"Unexpected argument {parsed.training_script!r}{hint}; give the config file as --config FILE "
                         "and settings as key=value.")


def split_arguments(rest: list[str]) -> tuple[list[str], list[str]]:
    """``(config overrides, accelerate launch options)`` of the arguments facehub does not know."""
    overrides = [a for a in rest if "=" in a and not a.startswith("-")]
    return overrides, [a for a in rest if a not in overrides]


def accelerate_command(method: str, config: str | None, resume: bool, rest: list[str],
                       cpu_count: int | None = None, preset: str | None = None) -> list[str]:
    """Split ``rest`` into config overrides (``k=v``) and accelerate options; build the launch command."""
    overrides, accelerate_args = split_arguments(rest)
    threads = cpu_threads_per_process(accelerate_args, cpu_count=cpu_count)
    if threads is not None:
        accelerate_args += ["--num_cpu_threads_per_process", str(threads)]
    command = [sys.executable, "-m", "accelerate.commands.launch", *accelerate_args, "-m", "facehub.trainers.run", method]
    if config:
        command += ["--config", config]
    if preset:
        command += ["--preset", preset]
    if resume:
        command.append("--resume")
    return command + overrides


def train_help(method: str | None) -> str:
    """``facehub train [METHOD] --help``: the usage, then the method's config keys and presets (or the methods)."""
    from facehub import methods
    from facehub.trainers.core.config import describe_config

    lines = [f"usage: {TRAIN_USAGE}", "", __doc__.split("\n\n")[1], ""]
    if method is None:
        lines.append(f"METHOD: one of {', '.join(methods.trainable())}; `facehub train METHOD --help` lists its keys.")
        return "\n".join(lines).replace("``", "`")
    spec = methods.get(method)
    lines += [f"{spec.name}: {spec.title}. {spec.summary}", "", describe_config(spec.config_class())]
    return "\n".join(lines).replace("``", "`")


def _train(args: argparse.Namespace, rest: list[str]) -> int:
    from facehub import methods
    from facehub.trainers.core.config import ConfigError, load_config

    if args.help:
        print(train_help(args.method))
        return 0
    if not args.method:
        raise ConfigError(f"Give the method to train: {TRAIN_USAGE} (methods: {', '.join(methods.trainable())}).")
    spec = methods.get(args.method)
    overrides, accelerate_args = split_arguments(rest)
    accumulation = launcher_accumulation(accelerate_args)
    # The whole config, validated here: a mistake costs one line, not a launch.
    load_config(args.config, overrides + (["resume=true"] if args.resume else []), method=spec.name,
                preset=args.preset, config_class=spec.config_class())
    command = accelerate_command(spec.name, args.config, args.resume, rest, preset=args.preset)
    check_launch_options(command[3:])
    print("launching: accelerate launch", shlex.join(command[3:]), flush=True)
    typed = shlex.join(["facehub", "train", spec.name, *(["--config", args.config] if args.config else []),
                        *(["--preset", args.preset] if args.preset else []), *(["--resume"] if args.resume else []),
                        *rest])
    env = {**os.environ, "PYTHONUNBUFFERED": "1", COMMAND_ENV: typed}
    if accumulation is not None:
        env["ACCELERATE_GRADIENT_ACCUMULATION_STEPS"] = str(accumulation)
    return launch(command[3:], env)


INTERRUPTED = "facehub train: interrupted; the run saves a checkpoint and stops (resume with --resume)."


def launch(accelerate_args: list[str], env: dict[str, str]) -> int:
    """Run ``accelerate launch ACCELERATE_ARGS`` in this process and return the training's exit status.

    The launcher starts the training processes with this process's environment, so ``env`` becomes it first. Ctrl-C
    reaches a single training process directly (a terminal signals its whole foreground process group; torchrun
    forwards it to its workers): the run saves a checkpoint and stops, and this process says so once and waits for
    it. A second Ctrl-C leaves at once.
    """
    import signal

    os.environ.update(env)

    def interrupted(signum, frame):
        print(INTERRUPTED, file=sys.stderr, flush=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        return _run_launcher(accelerate_args)
    finally:
        signal.signal(signal.SIGINT, previous)


def _run_launcher(accelerate_args: list[str]) -> int:
    """``accelerate launch ACCELERATE_ARGS`` minus its traceback on failure: the run has already said what was wrong
    in one line, so a failed training process's status comes back as the result instead of accelerate's or
    torchrun's "a worker failed" exception."""
    from accelerate.commands.launch import launch_command, launch_command_parser

    args = launch_command_parser().parse_args(accelerate_args)
    try:
        launch_command(args)
    except subprocess.CalledProcessError as error:  # one process: the worker's own status
        return error.returncode or 1
    except Exception as error:
        failures = getattr(error, "failures", None)  # torchrun's ChildFailedError: the first failed worker's status
        if failures:
            return next(iter(failures.values())).exitcode or 1
        from torch.distributed.elastic.multiprocessing.api import SignalException

        if isinstance(error, SignalException):  # torchrun stopped its workers on a signal (Ctrl-C, SIGTERM)
            print(INTERRUPTED, file=sys.stderr, flush=True)
            return 128 + int(error.sigval)
        raise
    return 0


#: ``facehub prepare --synthetic`` options for the world's poses and its v2 variation: field -> (type, help).
SYNTHETIC_VARIATION: dict[str, tuple[type, str]] = {
    "max_yaw": (float, "Largest |yaw| in degrees (default 60)."),
    "max_pitch": (float, "Largest |pitch| in degrees (default 25)."),
    "max_roll": (float, "Largest |roll| in degrees (default 15)."),
    "fine_detail": (float, "Amplitude of per-identity fine UV albedo detail, e.g. 0.15 (default 0: off)."),
    "fine_relief": (float, "Amplitude of per-identity fine relief (bump-mapped shading), fraction of the face width."),
    "glasses": (float, "Share of identities wearing glasses, 0-1 (default 0)."),
    "hair": (float, "Share of identities with a hair layer, 0-1 (default 0)."),
    "background_plane": (bool, "A textured, tilted background plane with depth instead of the flat backdrop."),
    "withheld_scale": (float, "RMS of a per-identity deformation outside the morphable prior, fraction of the face "
                              "width (default 0)."),
    "prior_modes": (int, "Identity modes a fitting's prior may use (the rest are withheld; default 0: all)."),
}


def _prepare(args: argparse.Namespace) -> int:
    from facehub.trainers.data.prepare import PrepareConfig, prepare, prepare_synthetic

    if args.synthetic == bool(args.images):
        raise ValueError("Give either --images DIR (photos) or --synthetic (the synthetic face world).")
    given = [f"--{name.replace('_', '-')}" for name in SYNTHETIC_VARIATION if getattr(args, name) is not None]
    if given and not args.synthetic:
        raise ValueError(f"{', '.join(given)} shape(s) the synthetic world; add --synthetic or drop them.")
    if args.synthetic:
        from facehub.trainers.data.synthetic_world import SyntheticWorldConfig

        variation = {name: getattr(args, name) for name in SYNTHETIC_VARIATION if getattr(args, name) is not None}
        world = SyntheticWorldConfig(num_identities=args.identities, views_per_identity=args.views,
                                     image_size=args.size, uv_size=args.uv_size, seed=args.seed, **variation)
        report = prepare_synthetic(world, args.out)
        print(f"{report.kept} synthetic faces rendered\ndataset: {report.dataset_dir}\nplot: {report.plot}")
        return 0
    report = prepare(
        PrepareConfig(
            images=args.images, out=args.out, attributes=args.attributes, size=args.size, uv_size=args.uv_size,
            num_proc=args.num_proc, shard_size=args.shard_size, max_pixels=args.max_pixels,
            push_to_hub=args.push_to_hub, fit=args.fit, landmarks=args.landmarks,
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


def _average_weights(args: argparse.Namespace) -> int:
    import warnings

    from facehub.trainers.core.weight_averaging import PROVENANCE_FILE, WeightAveragingError, average_model_folders

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = average_model_folders(args.folders, args.out, weights=args.weights, overwrite=args.overwrite)
    except (WeightAveragingError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    print(f"Averaged {len(args.folders)} models into {out} (sources and weights: {out / PROVENANCE_FILE})")
    return 0


#: ``facehub eval CAPABILITY``: evaluations that measure every registered method of a capability side by side.
CAPABILITY_EVALUATIONS = {
    "rotation": "facehub.trainers.evaluation.rotation:main",
    "swap": "facehub.trainers.evaluation.swap:main",
}


def _dispatch(verb: str, parser: argparse.ArgumentParser):
    """``facehub eval|bench METHOD [options]``: the registry's ``main(argv)`` of that method, given the options
    (``--help`` included, so the method's own help is shown); ``facehub eval rotation`` and the other
    :data:`CAPABILITY_EVALUATIONS` measure every method of a capability."""

    def run(args: argparse.Namespace, rest: list[str]) -> int:
        from facehub import methods

        if not args.method:
            if "-h" in rest or "--help" in rest:
                parser.print_help()
                return 0
            parser.error("the following arguments are required: METHOD")
        if verb == "eval" and args.method in CAPABILITY_EVALUATIONS:
            return int(methods.import_object(CAPABILITY_EVALUATIONS[args.method])(rest) or 0)
        main = methods.get(args.method).entry_point(verb)
        return int(main(rest) or 0)

    return run


def register(subparsers) -> None:
    from facehub import methods

    trainable = methods.trainable()
    train = subparsers.add_parser(
        "train",
        help="Train a method with the shared Accelerate loop (extra --options go to accelerate launch).",
        description=__doc__,
        usage=TRAIN_USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,
    )
    train.add_argument("method", nargs="?", metavar="METHOD", help=f"One of: {', '.join(trainable)}.")
    train.add_argument("--config", help="YAML config file.")
    train.add_argument("--preset", help="Named preset of the method's config (see `facehub train METHOD --help`).")
    train.add_argument("--resume", action="store_true", help="Continue from the newest complete checkpoint.")
    train.add_argument("-h", "--help", action="store_true", help="Show the method's config keys and presets.")
    train.set_defaults(func=_train, accepts_rest=True)

    prepare = subparsers.add_parser(
        "prepare",
        help="Turn a folder of photos into a labelled face dataset (datasets.Dataset on disk).",
        description="Nested folders name identities. Files that are not photos, unreadable files and photos without "
        "a face are skipped and counted in OUT/report.json with their reason; a killed run continues where it "
        "stopped, and photos added or changed since are processed (each exactly once).",
    )
    prepare.add_argument("--images", help="Folder of photos (DIR/<identity>/<photo> for identities).")
    prepare.add_argument("--synthetic", action="store_true",
                         help="Render the synthetic face world instead of reading photos (exact ground truth).")
    prepare.add_argument("--identities", type=int, default=8, help="Synthetic identities (default 8).")
    prepare.add_argument("--views", type=int, default=4, help="Synthetic views per identity (default 4).")
    prepare.add_argument("--seed", type=int, default=0, help="Seed of the synthetic world (default 0).")
    world = prepare.add_argument_group("synthetic world variation (with --synthetic; SyntheticWorldConfig fields)")
    for name, (kind, text) in SYNTHETIC_VARIATION.items():
        if kind is bool:
            world.add_argument(f"--{name.replace('_', '-')}", dest=name, action="store_true", default=None, help=text)
        else:
            world.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, help=text)
    prepare.add_argument("--out", required=True, help="Output folder (dataset/, report.json, pose_distribution.png).")
    prepare.add_argument("--attributes", help="CelebA list_attr_celeba.txt, matched by file name.")
    prepare.add_argument("--size", type=int, default=128, help="Aligned crop size in pixels (default 128).")
    prepare.add_argument("--uv-size", type=int, default=256, help="UV position map size (default 256).")
    prepare.add_argument("--num-proc", type=int, default=1, help="Worker processes for datasets.map (default 1).")
    prepare.add_argument("--shard-size", type=int, default=256, help="Photos per resumable shard (default 256).")
    prepare.add_argument("--max-pixels", type=int, default=40_000_000, help="Refuse larger images (default 40 MP).")
    prepare.add_argument("--push-to-hub", metavar="ID", help="Also push the dataset to the Hub under this id.")
    prepare.add_argument("--fit", action="store_true",
                         help="Label each face by fitting the morphable model; rows also carry its coefficients.")
    prepare.add_argument("--landmarks", metavar="CSV",
                         help="With --fit: AFLW 21-point hand labels by file name (3DDFA's AFLW_GT_crop_labels.csv "
                              "layout), fitted where MediaPipe misses the face or reads it beyond 40 degrees of yaw.")
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

    average = subparsers.add_parser(
        "average-weights",
        help="Average the weights of runs fine-tuned from the same checkpoint into one model (a model soup).",
        description="Write one model whose floating-point tensors are the (weighted) mean of several exported runs' "
        "(Wortsman et al., ICML 2022). The runs must be the same architecture and have started from the same "
        "init_from; configs are copied from the first folder, the sources go to averaged_from.json.",
    )
    average.add_argument("folders", nargs="+", metavar="FOLDER", help="Exported models (a run's export/), two or more.")
    average.add_argument("--out", required=True, help="Folder to write the averaged model to.")
    average.add_argument("--weights", type=float, nargs="+", help="One weight per folder (default: equal).")
    average.add_argument("--overwrite", action="store_true", help="Replace --out when it is not empty.")
    average.set_defaults(func=_average_weights)

    for verb, attribute, text in (
        ("eval", "evaluation", "Evaluate a trained method on held-out data and print its table."),
        ("bench", "benchmark", "Time a method against references measured in the same run."),
    ):
        with_it = [spec.name for spec in methods.all_methods() if getattr(spec, attribute)]
        if verb == "eval":
            with_it += [f"{name} (every {name} method)" for name in CAPABILITY_EVALUATIONS]
        parser = subparsers.add_parser(
            verb, help=text, add_help=False, usage=f"facehub {verb} METHOD [options of the method]",
            description=f"{text} `facehub {verb} METHOD --help` shows the method's own options.",
        )
        parser.add_argument("method", nargs="?", metavar="METHOD", help=f"One of: {', '.join(with_it) or 'none'}.")
        parser.set_defaults(func=_dispatch(verb, parser), accepts_rest=True)

