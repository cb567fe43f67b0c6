"""The ``facehub`` command: one entry point, sub-commands registered by the package that owns them."""

from __future__ import annotations

import argparse
import os
import sys


def _add_demo(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="Serve the Gradio demo hub (embedded defaults, no network needed).")
    parser.add_argument("--host", default="127.0.0.1", help="Interface to bind (default: 127.0.0.1).")
    parser.add_argument("--port", type=int, default=7860, help="Port (default: 7860).")
    parser.add_argument("--share", action="store_true", help="Also open a public Gradio share link.")
    parser.add_argument(
        "--models-dir",
        default=None,
        metavar="DIR",
        help="Folder of saved models (DIR/<name> or DIR/<org>/<name>) the demo offers besides the embedded defaults; "
        "no other folder or Hub id is accepted (default: $FACEHUB_MODELS_DIR).",
    )
    parser.add_argument(
        "--allow-any-model",
        action="store_true",
        help="Also accept any local folder or Hub id typed in a model box. Only for a demo that trusted users alone "
        "can reach: it lets them read and load any model folder on the server.",
    )

    def run(args) -> int:
        from facehub.apps.demo import launch

        launch(host=args.host, port=args.port, share=args.share, models_dir=args.models_dir,
               allow_any_model=args.allow_any_model)
        return 0

    parser.set_defaults(func=run)


def _add_compare(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="Run one photo (two for swap) through every registered rotation, reconstruction and swap method.",
        description="Every method of the registry with the rotation, reconstruction and swap capabilities on the "
        "same photo, on its embedded default, with the same measured figures (the demo's Compare tab): prints a "
        "table per capability and writes a contact sheet.",
    )
    parser.add_argument("photo", help="Photo with a face.")
    parser.add_argument("second", nargs="?", help="Second photo: the swap's target (no swap rows without it).")
    parser.add_argument("--yaw", type=float, default=30.0, help="Rotation request in degrees (default 30).")
    parser.add_argument("--capability", action="append", choices=("rotation", "reconstruction", "swap"),
                        help="Compare only the methods of this capability; repeat for several (default: all three).")
    parser.add_argument("--out", default="runs/compare.png", help="Contact sheet to write (default runs/compare.png).")

    def run(args) -> int:
        from facehub.apps.comparison import CAPABILITIES, compare, save_sheet
        from facehub.modeling.faces.image_io import load_image

        photo = load_image(args.photo)
        second = load_image(args.second) if args.second else None
        result = compare(photo, second, yaw=args.yaw, capabilities=tuple(args.capability or CAPABILITIES))
        print(result.table())
        print(f"contact sheet: {save_sheet(result, args.out)}")
        return 0

    parser.set_defaults(func=run)


def _add_convert(subparsers) -> None:
    parser = subparsers.add_parser("convert", help="Convert weights from another project's layout into a facehub folder.")
    kinds = parser.add_subparsers(dest="kind", metavar="KIND")
    stylegan2 = kinds.add_parser(
        "stylegan2",
        help="A StyleGAN2 checkpoint in the common PyTorch layout (rosinality/stylegan2-pytorch: g_ema, g, d, args).",
        description="Convert a StyleGAN2 checkpoint in rosinality/stylegan2-pytorch's layout into a "
        "StyleGAN2Pipeline folder (safetensors). The file is read with torch.load(weights_only=True); sizes come from "
        "the tensors; any tensor that does not fit is reported and nothing is written.",
    )
    stylegan2.add_argument("checkpoint", help="the .pt file")
    stylegan2.add_argument("output_dir", help="folder to write (model_index.json, image_generator/, discriminator/)")
    stylegan2.add_argument("--generator", choices=("g_ema", "g"), default="g_ema",
                           help="which generator to convert (default: g_ema, the weight average)")
    stylegan2.add_argument("--no-discriminator", action="store_true", help="leave the discriminator out")
    stylegan2.add_argument("--w-avg-samples", type=int, default=10_000, metavar="N",
                           help="draws of z averaged for the truncation centre when the checkpoint has no latent_avg "
                           "(default: 10000)")

    def run(args) -> int:
        from facehub.modeling.stylegan2 import convert_rosinality_checkpoint

        pipe = convert_rosinality_checkpoint(args.checkpoint, args.output_dir, generator_key=args.generator,
                                             with_discriminator=not args.no_discriminator,
                                             w_avg_samples=args.w_avg_samples)
        c = pipe.image_generator.config
        print(f"converted {args.checkpoint} ({args.generator}): StyleGAN2 {c.resolution} px, latent {c.latent_dim}, "
              f"{c.mapping_layers} mapping layers, widths {list(c.channels)}; discriminator: "
              f"{'yes' if pipe.discriminator is not None else 'no'}")
        print(f"saved to {args.output_dir}; load it with StyleGAN2Pipeline.from_pretrained({str(args.output_dir)!r})")
        return 0

    stylegan2.set_defaults(func=run)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def build_parser() -> argparse.ArgumentParser:
    from facehub.hub import cli as hub_cli
    from facehub.trainers import cli as trainers_cli

    parser = argparse.ArgumentParser(prog="facehub", description="Face geometry toolkit: models, trainers, hub, demo.")
    parser.add_argument("--version", action="version", version=f"facehub {version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_demo(subparsers)
    _add_compare(subparsers)
    _add_convert(subparsers)
    trainers_cli.register(subparsers)
    hub_cli.register(subparsers)
    return parser


def version() -> str:
    import facehub

    return facehub.__version__


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions a user can cause (bad input, missing files, an unreachable or refusing Hub): one line, no trace."""
    from facehub.hub.push import PushError

    return ValueError, OSError, PushError


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from facehub.modeling.cpu_allocator import reuse_freed_memory

    reuse_freed_memory()  # network passes reuse freed memory instead of faulting in fresh pages (its docstring)
    try:
        if getattr(args, "accepts_rest", False):
            return int(args.func(args, rest) or 0)
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"facehub {args.command}: interrupted", file=sys.stderr)
        return 130
    except _user_errors() as err:  # user errors: one clear line, no traceback (FACEHUB_DEBUG=1 shows it)
        if os.environ.get("FACEHUB_DEBUG"):
            raise
        message = " ".join(str(err).split()) or err.__class__.__name__
        print(f"facehub {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
