"""Convert a StyleGAN2 checkpoint in the common PyTorch layout (rosinality/stylegan2-pytorch's ``train.py`` output:
a dict with ``g_ema``, ``g``, ``d`` state dicts and ``args``; its ``convert_weight.py`` output with ``g_ema`` and
``latent_avg``) into facehub's :class:`~facehub.modeling.stylegan2.StyleGAN2Pipeline` folder.

Safety: the file is a pickle, so it is read with ``torch.load(weights_only=True)``, which only rebuilds tensors and
plain containers, with exactly one extra global allowed (``argparse.Namespace``, the ``args`` entry). Nothing else in
the file can run code.

Sizes are read from the tensors, never from a table: the latent width from the mapping layers, the mapping depth
from how many there are, the resolution from the number of ToRGB layers, and every level's width from its
convolution weights (checkpoints with narrowed or widened channels convert as they are). Every tensor is then
checked against the model those sizes describe: a missing, unexpected or wrongly shaped tensor, or a resampling
filter other than the one the model uses, is a :class:`StyleGAN2ConversionError` listing them; nothing is ever
partially loaded.

The truncation centre ``w_avg``: taken from the checkpoint's ``latent_avg`` when present, otherwise the mean of
``f(z)`` over ``w_avg_samples`` draws with a fixed seed (the converted folder's config records which).
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import torch

from facehub.modeling.stylegan2.layers import resampling_kernel
from facehub.modeling.stylegan2.modeling_stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator

#: Draws of z averaged for ``w_avg`` when the checkpoint carries none, and the seed they come from.
W_AVG_SAMPLES = 10_000
W_AVG_SEED = 0
#: Largest checkpoint file read (bytes): config F at 1024 px with g, g_ema, d and optimiser-free state is ~370 MB.
MAX_CHECKPOINT_BYTES = 4 * 1024**3


class StyleGAN2ConversionError(ValueError):
    """The checkpoint is not a StyleGAN2 in the layout this converter reads, or it does not fit the model its own
    tensors describe."""


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint with ``torch.load(weights_only=True)``, allowing ``argparse.Namespace`` only."""
    path = Path(path)
    if not path.is_file():
        raise StyleGAN2ConversionError(f"{path} is not a file.")
    if path.stat().st_size > MAX_CHECKPOINT_BYTES:
        raise StyleGAN2ConversionError(f"{path} is {path.stat().st_size / 1e9:.1f} GB; a StyleGAN2 checkpoint is at "
                                       f"most {MAX_CHECKPOINT_BYTES / 1e9:.0f} GB.")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError... for unreadable files
        raise StyleGAN2ConversionError(
            f"{path} could not be read as a PyTorch checkpoint with weights_only=True ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}). Only plain state-dict checkpoints are read; a file "
            "that needs other Python objects to unpickle is refused."
        ) from None
    if not isinstance(checkpoint, dict):
        raise StyleGAN2ConversionError(f"{path} holds a {type(checkpoint).__name__}; expected a dict with `g_ema` "
                                       "(and optionally `g`, `d`, `args`, `latent_avg`).")
    return checkpoint


def _indexed(state: dict, pattern: str) -> list[int]:
    found = {int(m.group(1)) for key in state if (m := re.fullmatch(pattern, key))}
    return sorted(found)


def generator_config(state: dict[str, torch.Tensor], blur_taps=(1, 3, 3, 1)) -> dict:
    """The :class:`StyleGAN2Generator` arguments a rosinality ``g``/``g_ema`` state dict describes."""
    mapping = _indexed(state, r"style\.(\d+)\.weight")
    if not mapping or "input.input" not in state or "conv1.conv.weight" not in state:
        raise StyleGAN2ConversionError(
            "The generator state dict lacks `style.N.weight`, `input.input` or `conv1.conv.weight`: it is not a "
            f"StyleGAN2 generator in rosinality's layout (first keys: {sorted(state)[:6]})."
        )
    if mapping != list(range(1, len(mapping) + 1)):
        raise StyleGAN2ConversionError(f"Mapping layers are numbered {mapping}; expected style.1 ... style.N.")
    latent_dim = int(state["style.1.weight"].shape[1])
    up_convs = _indexed(state, r"convs\.(\d+)\.conv\.weight")
    to_rgbs = _indexed(state, r"to_rgbs\.(\d+)\.conv\.weight")
    if len(up_convs) != 2 * len(to_rgbs):
        raise StyleGAN2ConversionError(f"Found {len(up_convs)} convolutions for {len(to_rgbs)} ToRGB layers; a "
                                       "StyleGAN2 generator has two per resolution.")
    channels = [int(state["input.input"].shape[1])]
    channels += [int(state[f"convs.{2 * level}.conv.weight"].shape[1]) for level in range(len(to_rgbs))]
    return dict(resolution=2 ** (len(to_rgbs) + 2), latent_dim=latent_dim, mapping_layers=len(mapping),
                channels=channels, blur_taps=tuple(blur_taps))


def discriminator_config(state: dict[str, torch.Tensor], blur_taps=(1, 3, 3, 1)) -> dict:
    """The :class:`StyleGAN2Discriminator` arguments a rosinality ``d`` state dict describes."""
    blocks = _indexed(state, r"convs\.(\d+)\.conv2\.1\.weight")
    if "convs.0.0.weight" not in state or "final_conv.0.weight" not in state or not blocks:
        raise StyleGAN2ConversionError("The discriminator state dict lacks `convs.0.0.weight`, `convs.N.conv2` or "
                                       "`final_conv.0.weight`: not a StyleGAN2 discriminator in rosinality's layout.")
    widths = [int(state["convs.0.0.weight"].shape[0])]
    widths += [int(state[f"convs.{block}.conv2.1.weight"].shape[0]) for block in blocks]
    mbstd_features = int(state["final_conv.0.weight"].shape[1]) - widths[-1]
    return dict(resolution=2 ** (len(blocks) + 2), channels=widths[::-1], blur_taps=tuple(blur_taps),
                mbstd_group_size=4, mbstd_features=max(mbstd_features, 1))


def _rename_styled(prefix: str, ours: str) -> dict[str, tuple[str, str]]:
    return {
        f"{prefix}.conv.weight": (f"{ours}.conv.weight", "squeeze0"),
        f"{prefix}.conv.modulation.weight": (f"{ours}.conv.affine.weight", ""),
        f"{prefix}.conv.modulation.bias": (f"{ours}.conv.affine.bias", ""),
        f"{prefix}.noise.weight": (f"{ours}.noise_strength", ""),
        f"{prefix}.activate.bias": (f"{ours}.bias", ""),
    }


def _rename_to_rgb(prefix: str, ours: str) -> dict[str, tuple[str, str]]:
    return {
        f"{prefix}.conv.weight": (f"{ours}.conv.weight", "squeeze0"),
        f"{prefix}.conv.modulation.weight": (f"{ours}.conv.affine.weight", ""),
        f"{prefix}.conv.modulation.bias": (f"{ours}.conv.affine.bias", ""),
        f"{prefix}.bias": (f"{ours}.bias", "flatten"),
    }


def generator_key_map(config: dict) -> tuple[dict[str, tuple[str, str]], dict[str, torch.Tensor]]:
    """rosinality key -> (our key, reshape), and rosinality filter buffer -> the kernel our model uses there."""
    levels = len(config["channels"])
    names: dict[str, tuple[str, str]] = {"input.input": ("const", "")}
    for index in range(config["mapping_layers"]):
        names[f"style.{index + 1}.weight"] = (f"mapping.{index}.weight", "")
        names[f"style.{index + 1}.bias"] = (f"mapping.{index}.bias", "")
    names.update(_rename_styled("conv1", "convs.0"))
    names.update(_rename_to_rgb("to_rgb1", "to_rgbs.0"))
    up_kernel = resampling_kernel(config["blur_taps"], gain=4.0)
    filters: dict[str, torch.Tensor] = {}
    for index in range(2 * (levels - 1)):
        names.update(_rename_styled(f"convs.{index}", f"convs.{index + 1}"))
        if index % 2 == 0:
            filters[f"convs.{index}.conv.blur.kernel"] = up_kernel
    for index in range(levels - 1):
        names.update(_rename_to_rgb(f"to_rgbs.{index}", f"to_rgbs.{index + 1}"))
        filters[f"to_rgbs.{index}.upsample.kernel"] = up_kernel
    for index in range(2 * levels - 1):
        names[f"noises.noise_{index}"] = (f"noise_const_{index}", "")
    return names, filters


def discriminator_key_map(config: dict) -> tuple[dict[str, tuple[str, str]], dict[str, torch.Tensor]]:
    """rosinality key -> (our key, reshape) for the discriminator, and its filter buffers."""
    names: dict[str, tuple[str, str]] = {
        "convs.0.0.weight": ("from_rgb.weight", ""),
        "convs.0.1.bias": ("from_rgb.bias", ""),
        "final_conv.0.weight": ("final_conv.weight", ""),
        "final_conv.1.bias": ("final_conv.bias", ""),
        "final_linear.0.weight": ("final_dense.weight", ""),
        "final_linear.0.bias": ("final_dense.bias", ""),
        "final_linear.1.weight": ("output.weight", ""),
        "final_linear.1.bias": ("output.bias", ""),
    }
    kernel = resampling_kernel(config["blur_taps"])
    filters: dict[str, torch.Tensor] = {}
    for block in range(len(config["channels"]) - 1):
        theirs, ours = f"convs.{block + 1}", f"blocks.{block}"
        names.update({
            f"{theirs}.conv1.0.weight": (f"{ours}.conv1.weight", ""),
            f"{theirs}.conv1.1.bias": (f"{ours}.conv1.bias", ""),
            f"{theirs}.conv2.1.weight": (f"{ours}.conv2.weight", ""),
            f"{theirs}.conv2.2.bias": (f"{ours}.conv2.bias", ""),
            f"{theirs}.skip.1.weight": (f"{ours}.skip.weight", ""),
        })
        filters[f"{theirs}.conv2.0.kernel"] = kernel
        filters[f"{theirs}.skip.0.kernel"] = kernel
    return names, filters


def _reshape(tensor: torch.Tensor, how: str) -> torch.Tensor:
    if how == "squeeze0" and tensor.ndim == 5 and tensor.shape[0] == 1:
        return tensor[0]
    if how == "flatten":
        return tensor.reshape(-1)
    return tensor


def convert_state_dict(state: dict[str, torch.Tensor], model: torch.nn.Module, names: dict[str, tuple[str, str]],
                       filters: dict[str, torch.Tensor], label: str) -> dict[str, torch.Tensor]:
    """Our state dict for ``model`` from ``state``; every key accounted for and every shape checked, or
    :class:`StyleGAN2ConversionError` listing all problems."""
    ours = model.state_dict()
    converted, problems = {}, []
    for key, tensor in state.items():
        if key in filters:
            if tuple(tensor.shape) != tuple(filters[key].shape) or not torch.allclose(tensor.float(), filters[key],
                                                                                     atol=1e-6):
                problems.append(f"{key}: resampling filter {tensor.tolist()} differs from ours (blur_taps "
                                f"(1, 3, 3, 1)); pass the taps the checkpoint was trained with")
            continue
        if key not in names:
            problems.append(f"{key}: unexpected tensor {tuple(tensor.shape)}")
            continue
        target, how = names[key]
        value = _reshape(tensor, how)
        if target not in ours:
            problems.append(f"{key}: no place for it in our model ({target})")
        elif tuple(value.shape) != tuple(ours[target].shape):
            problems.append(f"{key}: shape {tuple(tensor.shape)} does not fit {target} {tuple(ours[target].shape)}")
        else:
            converted[target] = value.to(ours[target].dtype).contiguous()
    expected_missing = {"w_avg"}
    missing = sorted(set(ours) - set(converted) - expected_missing)
    theirs = {target: key for key, (target, _) in names.items()}
    problems += [f"{theirs.get(key, key)}: missing from the checkpoint (needed for our {key})" for key in missing]
    if problems:
        shown = "\n  ".join(problems[:12]) + (f"\n  ... and {len(problems) - 12} more" if len(problems) > 12 else "")
        raise StyleGAN2ConversionError(f"The {label} does not convert cleanly ({len(problems)} problem(s)):\n  {shown}")
    return converted


def convert_generator(state: dict[str, torch.Tensor], latent_avg: torch.Tensor | None = None,
                      w_avg_samples: int = W_AVG_SAMPLES, blur_taps=(1, 3, 3, 1)) -> StyleGAN2Generator:
    """Our generator with the weights of a rosinality generator state dict (see the module docstring)."""
    if latent_avg is None and int(w_avg_samples) < 1:
        raise StyleGAN2ConversionError(f"Got {w_avg_samples} for the w_avg samples; at least 1 draw is needed when the "
                                       "checkpoint has no latent_avg.")
    config = generator_config(state, blur_taps)
    generator = StyleGAN2Generator(**config)
    names, filters = generator_key_map(config)
    converted = convert_state_dict(state, generator, names, filters, "generator")
    if latent_avg is not None:
        latent_avg = latent_avg.reshape(-1)
        if latent_avg.numel() != config["latent_dim"]:
            raise StyleGAN2ConversionError(f"latent_avg has {latent_avg.numel()} values; the generator's latent is "
                                           f"{config['latent_dim']} wide.")
        converted["w_avg"] = latent_avg.float()
    generator.load_state_dict(converted, strict=latent_avg is not None)
    if latent_avg is None:
        generator.w_avg.copy_(generator.mean_w(w_avg_samples, torch.Generator().manual_seed(W_AVG_SEED)))
    return generator.eval()


def convert_discriminator(state: dict[str, torch.Tensor], blur_taps=(1, 3, 3, 1)) -> StyleGAN2Discriminator:
    """Our discriminator with the weights of a rosinality discriminator state dict."""
    config = discriminator_config(state, blur_taps)
    discriminator = StyleGAN2Discriminator(**config)
    names, filters = discriminator_key_map(config)
    discriminator.load_state_dict(convert_state_dict(state, discriminator, names, filters, "discriminator"))
    return discriminator.eval()


def convert_rosinality_checkpoint(path: str | os.PathLike, output_dir: str | os.PathLike | None = None, *,
                                  generator_key: str = "g_ema", with_discriminator: bool = True,
                                  w_avg_samples: int = W_AVG_SAMPLES, blur_taps=(1, 3, 3, 1)):
    """Convert the checkpoint at ``path``; returns a :class:`~facehub.modeling.stylegan2.StyleGAN2Pipeline` and, with
    ``output_dir``, saves it there (``model_index.json``, ``image_generator/``, ``discriminator/``, safetensors).

    ``generator_key`` picks ``g_ema`` (the averaged generator everyone samples from) or ``g``. The discriminator is
    converted when the checkpoint has ``d`` and ``with_discriminator`` is set.
    """
    from facehub.modeling.stylegan2.pipeline_stylegan2 import StyleGAN2Pipeline

    checkpoint = load_checkpoint(path)
    if generator_key not in checkpoint:
        raise StyleGAN2ConversionError(f"{path} has no {generator_key!r} entry (it has {sorted(checkpoint)}).")
    latent_avg = checkpoint.get("latent_avg")
    generator = convert_generator(checkpoint[generator_key], latent_avg, w_avg_samples, blur_taps)
    discriminator = None
    if with_discriminator and "d" in checkpoint:
        discriminator = convert_discriminator(checkpoint["d"], blur_taps)
        if discriminator.config.resolution != generator.config.resolution:
            raise StyleGAN2ConversionError(f"The discriminator reads {discriminator.config.resolution} px images; the "
                                           f"generator makes {generator.config.resolution} px.")
    pipeline = StyleGAN2Pipeline(image_generator=generator, discriminator=discriminator)
    if output_dir is not None:
        pipeline.save_pretrained(output_dir)
    return pipeline
