"""StyleGAN2: the converter against outputs of the original code, eq. 1-3 against the per-sample (grouped) form, the
resampling filters, the discriminator's minibatch statistics, the losses on hand-computed cases, and training in the
shared loop with two processes."""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from facehub.modeling.stylegan2 import (
    StyleGAN2ConversionError,
    StyleGAN2Discriminator,
    StyleGAN2Generator,
    StyleGAN2Pipeline,
    convert_rosinality_checkpoint,
    stylegan2_channels,
    stylegan2_config,
)
from facehub.modeling.stylegan2.layers import ModulatedConv2d, resampling_kernel, upfirdn2d
from facehub.modeling.stylegan2.modeling_stylegan2 import minibatch_stddev

FIXTURE = Path(__file__).parent / "data" / "stylegan2-rosinality"
CHECKPOINT = FIXTURE / "rosinality_tiny_64.pt"
TINY = dict(resolution=16, latent_dim=16, mapping_layers=2, channels=[16, 16, 8])


def _load_fixture_checkpoint() -> dict:
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(CHECKPOINT, weights_only=True)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("converted")
    convert_rosinality_checkpoint(CHECKPOINT, folder, w_avg_samples=256)
    return folder, StyleGAN2Pipeline.from_pretrained(folder)


def test_converted_checkpoint_reproduces_the_original_code(converted):
    """Every reference output of the fixture (computed by rosinality's own Generator / Discriminator), from the
    converted folder as saved and reloaded: W, truncation, style mixing, W+, explicit noise, discriminator scores."""
    folder, pipe = converted
    reference = load_file(FIXTURE / "reference_outputs.safetensors")
    g, d = pipe.image_generator, pipe.discriminator
    meta = json.loads((FIXTURE / "meta.json").read_text())
    assert (g.config.resolution, g.config.latent_dim, g.config.mapping_layers) == (64, 32, 2)
    assert list(g.config.channels) == [meta["channels"][str(2**k)] for k in range(2, 7)] == [32, 32, 32, 16, 16]
    assert g.num_ws == meta["n_latent"] and g.num_noise == meta["num_layers"]
    # meta's g_params counts the original's state dict: our parameters plus the noise maps and 8 stored 4x4 filters
    noise_values = sum(getattr(g, f"noise_const_{i}").numel() for i in range(g.num_noise))
    assert sum(p.numel() for p in g.parameters()) + noise_values + 8 * 16 == meta["g_params"]
    close = dict(rtol=1e-5, atol=2e-5)
    with torch.no_grad():
        z, z2 = reference["z"], reference["z2"]
        torch.testing.assert_close(g.map(z), reference["w"], **close)
        torch.testing.assert_close(g(z, noise_mode="const").images, reference["image_z"], **close)
        torch.testing.assert_close(g(z, noise_mode="const", truncation_psi=0.7,
                                     truncation_latent=reference["w_avg"]).images, reference["image_trunc07"], **close)
        torch.testing.assert_close(g(z, noise_mode="const", mixing_latents=z2, mixing_index=3).images,
                                   reference["image_mix3"], **close)
        torch.testing.assert_close(g(reference["wplus"], input_is_w=True, noise_mode="const").images,
                                   reference["image_wplus"], **close)
        noise = [reference[f"noise_{i}"] for i in range(g.num_noise)]
        torch.testing.assert_close(g(z, noise=noise).images, reference["image_z_noise"], **close)
        torch.testing.assert_close(d(reference["image_z"]).scores, reference["d_image_z"], **close)
        # No latent_avg in the checkpoint: w_avg is the mean of mapped draws, near the fixture's 1,000-draw mean.
        assert (g.w_avg - reference["w_avg"][0]).norm() < 0.25 * reference["w_avg"].norm()
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert files == ["discriminator/config.json", "discriminator/diffusion_pytorch_model.safetensors",
                     "image_generator/config.json", "image_generator/diffusion_pytorch_model.safetensors",
                     "model_index.json"]


def test_pipeline_draws_seeded_images_with_truncation(converted):
    _, pipe = converted
    first = pipe(num_images=2, generator=torch.Generator().manual_seed(3), output_type="np")
    again = pipe(num_images=2, generator=torch.Generator().manual_seed(3), output_type="np")
    assert first.images[0].shape == (64, 64, 3) and first.images[0].dtype == np.uint8
    assert np.array_equal(first.images[0], again.images[0]) and not np.array_equal(first.images[0], first.images[1])
    # psi = 0 sends every z to w_avg: with the stored noise, two draws give the same picture.
    centre = pipe(num_images=2, generator=torch.Generator().manual_seed(3), truncation_psi=0.0, output_type="pt")
    assert torch.allclose(centre.images[0], centre.images[1], atol=1e-5)
    assert torch.allclose(centre.w_plus[0, 0], pipe.image_generator.w_avg, atol=1e-6)
    with pytest.raises(ValueError, match="num_images"):
        pipe(num_images=0)


def test_converter_refuses_what_does_not_fit(tmp_path):
    checkpoint = _load_fixture_checkpoint()

    def converting(edit) -> str:
        broken = {key: (dict(value) if isinstance(value, dict) else value) for key, value in checkpoint.items()}
        edit(broken)
        path = tmp_path / "broken.pt"
        torch.save(broken, path)
        with pytest.raises(StyleGAN2ConversionError) as caught:
            convert_rosinality_checkpoint(path, tmp_path / "out")
        assert not (tmp_path / "out").exists()  # nothing written
        return str(caught.value)

    assert "convs.3.noise.weight: missing" in converting(lambda c: c["g_ema"].pop("convs.3.noise.weight"))
    assert "does not fit" in converting(lambda c: c["g_ema"].__setitem__("to_rgbs.1.bias", torch.zeros(1, 4, 1, 1)))
    assert "unexpected tensor" in converting(lambda c: c["d"].__setitem__("extra.weight", torch.zeros(2)))
    assert "resampling filter" in converting(lambda c: c["g_ema"].__setitem__("convs.0.conv.blur.kernel",
                                                                              torch.ones(4, 4)))
    assert "no 'g_ema'" in converting(lambda c: c.pop("g_ema"))

    class Payload:  # an object that needs code to unpickle is refused, not run
        def __reduce__(self):
            return (os.system, ("echo unpickled",))

    torch.save({"g_ema": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(StyleGAN2ConversionError, match="weights_only"):
        convert_rosinality_checkpoint(tmp_path / "evil.pt")


def test_convert_command_writes_a_loadable_folder(tmp_path, capsys):
    from facehub.apps.cli import main

    assert main(["convert", "stylegan2", str(CHECKPOINT), str(tmp_path / "out"), "--w-avg-samples", "64"]) == 0
    printed = capsys.readouterr().out
    assert "64 px" in printed and "latent 32" in printed
    assert StyleGAN2Generator.from_pretrained(tmp_path / "out", subfolder="image_generator").num_ws == 10
    assert main(["convert", "stylegan2", str(tmp_path / "nothing.pt"), str(tmp_path / "o2")]) == 2
    assert "is not a file" in capsys.readouterr().err


@pytest.mark.parametrize("upsample", [False, True])
def test_unfused_modulated_convolution_is_eq_1_to_3(upsample):
    """The unfused form (style on the input, demodulation as a matrix product) against the paper's per-sample
    weights, run one sample at a time and as a grouped convolution."""
    torch.manual_seed(0)
    layer = ModulatedConv2d(6, 5, 3, latent_dim=7, upsample=upsample)
    with torch.no_grad():
        layer.affine.bias.normal_()  # styles far from 1, different per channel
    x, w = torch.randn(3, 6, 8, 8), torch.randn(3, 7)
    expected = torch.cat([layer.forward_grouped(x[i: i + 1], w[i: i + 1]) for i in range(3)])  # one sample at a time
    torch.testing.assert_close(layer.forward_grouped(x, w), expected, rtol=1e-5, atol=1e-5)
    assert expected.shape == (3, 5, 16 if upsample else 8, 16 if upsample else 8)
    torch.testing.assert_close(layer(x, w), expected, rtol=1e-5, atol=1e-5)
    # Demodulation restores unit variance (the paper's assumption of i.i.d. unit inputs), whatever the style.
    big = ModulatedConv2d(64, 8, 3, latent_dim=4)
    out = big(torch.randn(4, 64, 32, 32), 10 * torch.randn(4, 4))[:, :, 1:-1, 1:-1]
    assert out.std(dim=(0, 2, 3)).sub(1).abs().max() < 0.08


def test_resampling_filters_keep_flat_images_flat():
    assert torch.allclose(resampling_kernel([1, 3, 3, 1]).sum(), torch.tensor(1.0))
    flat = torch.full((1, 2, 8, 8), 0.5)
    up = upfirdn2d(flat, resampling_kernel([1, 3, 3, 1], gain=4.0), up=2, pad=(2, 1))
    assert up.shape == (1, 2, 16, 16) and torch.allclose(up[..., 2:-2, 2:-2], torch.tensor(0.5))
    down = upfirdn2d(flat, resampling_kernel([1, 3, 3, 1]), down=2, pad=(1, 1))
    assert down.shape == (1, 2, 4, 4) and torch.allclose(down[..., 1:-1, 1:-1], torch.tensor(0.5))
    # A single bright pixel spreads as the outer product of the taps (a true convolution).
    impulse = torch.zeros(1, 1, 5, 5)
    impulse[0, 0, 2, 2] = 1
    spread = upfirdn2d(impulse, resampling_kernel([1, 2, 1]), pad=(1, 1))
    assert torch.allclose(spread[0, 0, 1:4, 1:4], torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16)


def test_minibatch_stddev_is_the_feature_spread_within_each_group():
    x = torch.zeros(4, 2, 3, 3)
    x[1] = 2.0  # group of four: values 0, 2, 0, 0 -> population std sqrt(0.75) in every feature
    out = minibatch_stddev(x, group_size=4, num_features=1)
    assert out.shape == (4, 3, 3, 3)
    assert torch.allclose(out[:, 2], torch.full((4, 3, 3), math.sqrt(0.75 + 1e-8)))
    with pytest.raises(ValueError, match="divisible"):
        minibatch_stddev(torch.zeros(6, 2, 3, 3), 4, 1)


def test_generator_inputs_truncation_and_mixing():
    torch.manual_seed(0)
    g = StyleGAN2Generator(**TINY).eval()
    assert g.num_ws == 6 and g.num_noise == 5
    z, z2 = torch.randn(2, 16), torch.randn(2, 16)
    with torch.no_grad():
        mixed = g.w_plus(z, mixing_latents=z2, mixing_index=4)
        assert torch.allclose(mixed[:, :4], g.map(z)[:, None].expand(-1, 4, -1))
        assert torch.allclose(mixed[:, 4:], g.map(z2)[:, None].expand(-1, 2, -1))
        g.w_avg.fill_(0.3)
        half = g.w_plus(z, truncation_psi=0.5)
        assert torch.allclose(half, 0.3 + 0.5 * (g.map(z)[:, None] - 0.3))
        same = g(mixed, input_is_w=True, noise_mode="const").images
        assert torch.allclose(same, g(z, mixing_latents=z2, mixing_index=4, noise_mode="const").images, atol=1e-6)
        # fresh noise changes the picture slightly once the noise strengths are non-zero
        for conv in g.convs:
            conv.noise_strength.fill_(0.1)
        first = g(z, generator=torch.Generator().manual_seed(1)).images
        second = g(z, generator=torch.Generator().manual_seed(2)).images
        assert 0 < (first - second).abs().mean() < first.abs().mean()
    with pytest.raises(ValueError, match="input_is_w"):
        g(torch.randn(2, 6, 16))
    with pytest.raises(ValueError, match="mixing_index"):
        g(z, mixing_latents=z2, mixing_index=6)


def test_presets_and_errors():
    assert stylegan2_channels(1024) == (512, 512, 512, 512, 512, 256, 128, 64, 32)
    paper = stylegan2_config("paper")
    assert (paper.resolution, paper.latent_dim, paper.mapping_layers) == (1024, 512, 8)
    with pytest.raises(ValueError, match="`resolution`"):
        stylegan2_config("cpu-small", resolution=48)
    with pytest.raises(ValueError, match="`channels`"):
        stylegan2_config("cpu-small", channels=(8, 8))
    d = StyleGAN2Discriminator(**{k: v for k, v in TINY.items() if k in ("resolution", "channels")})
    assert d(torch.zeros(4, 3, 16, 16)).scores.shape == (4, 1)


def test_losses_on_hand_computed_cases():
    from facehub.trainers.stylegan2 import (
        discriminator_logistic_loss,
        generator_logistic_loss,
        lazy_regularisation_factor,
        path_lengths,
    )

    zero = torch.zeros(3, 1)
    assert discriminator_logistic_loss(zero, zero).item() == pytest.approx(2 * math.log(2))
    assert generator_logistic_loss(torch.full((2, 1), math.log(3))).item() == pytest.approx(math.log(4 / 3))
    assert lazy_regularisation_factor(16) == pytest.approx(16 / 17)
    # A linear "generator": image = M @ (sum of the layers' styles). J_w^T y = M^T y for every layer, so the length
    # is ||M^T y|| with y the noise the function draws (replayed here from the same seed).
    w_plus = torch.randn(2, 3, 4, requires_grad=True)
    matrix = torch.randn(12, 4)
    images = (w_plus.sum(1) @ matrix.t()).reshape(2, 3, 2, 2)
    lengths = path_lengths(images, w_plus, generator=torch.Generator().manual_seed(5))
    y = torch.randn(images.shape, generator=torch.Generator().manual_seed(5)) / 2.0
    expected = (y.reshape(2, 12) @ matrix).norm(dim=1)
    assert torch.allclose(lengths, expected, atol=1e-5)
    # On the first rows of a non-linear generator's batch: the rows left out do not enter, and give no NaN through
    # the square root of their zero gradient.
    curved = (torch.tanh(w_plus.sum(1)) @ matrix.t()).reshape(2, 3, 2, 2)
    path_lengths(curved[:1], w_plus).sum().backward()
    assert torch.isfinite(w_plus.grad).all() and w_plus.grad[0].abs().sum() > 0 and w_plus.grad[1].abs().sum() == 0


@pytest.mark.slow
def test_two_process_training_separates_real_from_generated(tmp_path):
    """Config F's loop under ``accelerate launch`` with two processes: D learns to tell the faces from the samples,
    R1 and the path-length penalty run on their lazy steps, G_ema and w_avg move, and the export loads."""
    from PIL import Image

    facehub = Path(sys.executable).with_name("facehub")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    settings = {"output_dir": str(tmp_path), "report_to": "none", "max_steps": 16, "train_batch_size": 4,
                "logging_steps": 4, "checkpointing_steps": 1000, "sample_steps": 16, "losses.pl_weight": 2,
                "losses.pl_interval": 2, "losses.r1_interval": 4, "losses.r1_gamma": 1,
                **{f"model.{k}": json.dumps(v).replace(" ", "") if isinstance(v, list) else v
                   for k, v in TINY.items()},
                "data.synthetic.num_identities": 16, "data.synthetic.image_size": 64}
    argv = [str(facehub), "train", "stylegan2", "--multi_gpu", "--num_processes", "2", "--preset", "cpu-small",
            *[f"{key}={value}" for key, value in settings.items()]]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=400, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    logs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(v) for log in logs for v in log.values())
    assert {"r1", "path_length"} <= set(logs[-1])
    gap = [log["real_score"] - log["fake_score"] for log in logs]
    assert gap[-1] > gap[0] and gap[-1] > 0, gap
    grid = np.asarray(Image.open(tmp_path / "samples" / "step-000016.png"))
    assert grid.shape == (2 + 3 * 18, 2 + 8 * 18, 3)
    pipe = StyleGAN2Pipeline.from_pretrained(tmp_path / "export")
    assert pipe.image_generator.config.resolution == 16 and pipe.discriminator is not None
    assert pipe.image_generator.w_avg.abs().sum() > 0
    card = (tmp_path / "export" / "README.md").read_text()
    assert "G_ema" in card and "synthetic face world" in card
    shutil.rmtree(tmp_path / "checkpoints", ignore_errors=True)


def test_inversion_finds_the_styles_of_a_drawn_crop(converted):
    """The shared embedding (Image2StyleGAN's optimisation, without the identity term here): a crop the generator
    drew from a known ``w`` is reproduced from ``w_avg`` much better than the start in W (one stylecode), and better
    still in W+ (one per layer; measured on the fixture's random-weight generator: mean error 59 grey levels at the
    start, 30 in W, 17 in W+); a crop of another size is refused."""
    from facehub.modeling.stylegan2 import tensor_to_uint8
    from facehub.modeling.stylegan2.inversion import invert

    generator = converted[1].image_generator
    with torch.no_grad():
        w = generator.map(torch.randn(1, generator.input_dim, generator=torch.Generator().manual_seed(3)))
        crop = tensor_to_uint8(generator(w, input_is_w=True, noise_mode="const").images)[0]
        start = tensor_to_uint8(generator(generator.w_avg[None], input_is_w=True, noise_mode="const").images)[0]
    error = {"start": np.abs(start.astype(float) - crop).mean()}
    for space in ("w", "w+"):
        found = invert(generator, crop, generator.w_avg.reshape(1, -1), space, steps=80, learning_rate=0.05)
        assert found.styles.shape == ((1, generator.latent_dim) if space == "w" else (1, generator.num_ws,
                                                                                       generator.latent_dim))
        error[space] = np.abs(found.reconstruction.astype(float) - crop).mean()
    assert error["w"] < 0.6 * error["start"] and error["w+"] < 0.8 * error["w"], error
    with pytest.raises(ValueError, match="this generator draws"):
        invert(generator, crop[:-1], generator.w_avg.reshape(1, -1))
