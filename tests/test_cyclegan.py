"""CycleGAN face-swap repair (DepthNets section 3.3; Zhu et al. 2017): the paper's architecture, save/load,
repair_face's blending contract, the training recipe's parts, and a short real training run on a synthetic
two-domain task whose answer is known (pasted faces carry a colour cast that real faces do not)."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import distance_transform_edt

from facehub.modeling.cyclegan import (
    CYCLEGAN_PRESETS,
    CycleGANGenerator,
    FaceRepairPipeline,
    PatchDiscriminator,
    crop_around_mask,
    cyclegan_config,
    repair_face,
)
from facehub.modeling.cyclegan.modeling_cyclegan import ResidualBlock, patchgan_receptive_field
from facehub.modeling.cyclegan.pipeline_cyclegan import DEFAULT_FEATHER
from facehub.modeling.modeling_utils import CheckpointError
from facehub.trainers.core import list_checkpoints, load_config, train
from facehub.trainers.core.method import get_method
from facehub.trainers.cyclegan import (
    METHOD_NAME,
    METHOD_TARGET,
    CycleGANRepairTraining,
    FakeImageHistory,
    UnpairedImageDomains,
    linear_decay_factor,
    open_image_domain,
)

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "tests" / "data" / "photos" / "astronaut.png"
CONFIG_FILE = ROOT / "trainers" / "configs" / "cyclegan-repair-cpu-small.yaml"

#: Networks small enough for a few hundred steps in seconds, at 32 px.
TINY_MODEL = {
    "preset": "cpu-small",
    "image_size": 32,
    "generator_channels": 16,
    "num_residual_blocks": 2,
    "discriminator_channels": 16,
    "discriminator_layers": 2,
}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These small convolutions run faster on one thread, and do not fight other jobs for the two cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def conv_parameters(in_channels: int, out_channels: int, kernel: int) -> int:
    return in_channels * out_channels * kernel * kernel + out_channels  # weights + bias


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------------------------------------------------
# Architecture


def test_paper_preset_is_cyclegans_resnet_generator_and_70x70_patchgan():
    config = cyclegan_config("paper")
    generator = CycleGANGenerator(**config.generator_kwargs())
    discriminator = PatchDiscriminator(**config.discriminator_kwargs())

    # Appendix 7.2: c7s1-64, d128, d256, R256 x 9, u128, u64, c7s1-3, every convolution with a bias (instance norm
    # has no affine parameters); C64-C128-C256-C512 and a 1-channel 4x4 convolution.
    residual = 2 * conv_parameters(256, 256, 3)
    expected_generator = (
        conv_parameters(3, 64, 7)
        + conv_parameters(64, 128, 3)
        + conv_parameters(128, 256, 3)
        + 9 * residual
        + conv_parameters(256, 128, 3)
        + conv_parameters(128, 64, 3)
        + conv_parameters(64, 3, 7)
    )
    expected_discriminator = sum(
        conv_parameters(i, o, 4) for i, o in ((3, 64), (64, 128), (128, 256), (256, 512), (512, 1))
    )
    assert parameter_count(generator) == expected_generator == 11_378_179  # "11.378 M" in CycleGAN's code
    assert parameter_count(discriminator) == expected_discriminator == 2_764_737  # "2.765 M"
    assert sum(isinstance(m, ResidualBlock) for m in generator.modules()) == 9
    assert all(not m.affine for m in generator.modules() if isinstance(m, torch.nn.InstanceNorm2d))
    assert any(isinstance(m, torch.nn.ReflectionPad2d) for m in generator.modules())
    assert isinstance(generator.layers[-1], torch.nn.Tanh)
    # The first discriminator layer is not normalised (C64 has no InstanceNorm).
    assert isinstance(discriminator.layers[1], torch.nn.LeakyReLU)

    # 128 px: 6 residual blocks.
    small = CycleGANGenerator(**cyclegan_config("paper-128").generator_kwargs())
    assert parameter_count(small) == expected_generator - 3 * residual == 7_837_699

    # Shapes at 256 px, on the meta device (no memory, no compute): same-size output, 30x30 patch scores.
    generator.to("meta")
    discriminator.to("meta")
    images = torch.empty(2, 3, 256, 256, device="meta")
    assert generator(images).image.shape == (2, 3, 256, 256)
    assert discriminator(images).patch_scores.shape == (2, 1, 30, 30)


def test_patchgan_scores_see_70x70_patches():
    assert PatchDiscriminator().receptive_field == patchgan_receptive_field(3) == 70
    assert patchgan_receptive_field(2) == 34  # cpu-small
    # Measured: the input pixels one interior score depends on. Without normalisation, because instance norm's
    # statistics would couple every pixel; the convolutions are those of the 70x70 PatchGAN.
    torch.manual_seed(0)
    discriminator = PatchDiscriminator(base_channels=8, num_layers=3, norm="none").double()
    image = torch.randn(1, 3, 128, 128, dtype=torch.float64, requires_grad=True)
    scores = discriminator(image).patch_scores
    assert scores.shape == (1, 1, 14, 14)
    scores[0, 0, 7, 7].backward()
    rows, cols = np.nonzero(image.grad[0].abs().sum(0).numpy())
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (70, 70)


def test_outputs_return_dict_and_input_checks():
    torch.manual_seed(0)
    generator = CycleGANGenerator(base_channels=8, num_residual_blocks=1, image_size=32)
    discriminator = PatchDiscriminator(base_channels=8, num_layers=2)
    images = torch.rand(2, 3, 32, 48) * 2 - 1
    out = generator(images).image
    assert out.shape == images.shape and out.abs().max() <= 1
    (as_tuple,) = generator(images, return_dict=False)
    assert torch.equal(as_tuple, out)
    assert discriminator(images).patch_scores.shape == (2, 1, 6, 10)
    assert torch.equal(discriminator(images, return_dict=False)[0], discriminator(images).patch_scores)
    with pytest.raises(ValueError, match=r"H and W divisible by 4, got shape \(2, 3, 30, 32\)"):
        generator(torch.zeros(2, 3, 30, 32))
    with pytest.raises(ValueError, match=r"expects \(B, 3, H, W\) images, got \(2, 1, 32, 32\)"):
        discriminator(torch.zeros(2, 1, 32, 32))


def test_configuration_errors_name_the_field_and_value():
    assert set(CYCLEGAN_PRESETS) >= {"paper", "paper-128", "cpu-small"}
    assert cyclegan_config("paper").cycle_loss_weight == 10.0
    with pytest.raises(ValueError, match=r"Got 'huge' for `preset`; known presets: \['cpu-small', 'paper'"):
        cyclegan_config("huge")
    with pytest.raises(ValueError, match=r"Got 250 for `image_size`; it must be divisible by 2 \*\* "):
        cyclegan_config("paper", image_size=250)
    with pytest.raises(ValueError, match=r"Got -1 for `history_size`"):
        cyclegan_config("paper", history_size=-1)
    with pytest.raises(ValueError, match=r"Unknown CycleGAN setting\(s\) \['ngf'\]"):
        cyclegan_config("paper", ngf=32)
    with pytest.raises(ValueError, match=r"Got 'group' for `norm`"):
        CycleGANGenerator(norm="group")
    with pytest.raises(ValueError, match=r"Got 0 for `num_layers`"):
        PatchDiscriminator(num_layers=0)
    defaults = {"method": METHOD_NAME}
    with pytest.raises(ValueError, match=r"Unknown config key `model.cycle_loss_weight` for method cyclegan; did you mean "
                                         r"`losses.cycle_loss_weight`\?"):
        CycleGANRepairTraining(load_config(overrides={"model": {"cycle_loss_weight": 5}}, defaults=defaults))
    with pytest.raises(ValueError, match=r"Unknown config key `losses.gan_weight` for method cyclegan"):
        CycleGANRepairTraining(load_config(overrides={"losses": {"gan_weight": 1}}, defaults=defaults))


def test_shipped_cpu_small_config_is_cyclegans_recipe():
    defaults = {"method": METHOD_NAME}
    config = load_config(CONFIG_FILE, defaults=defaults)
    assert config.method == METHOD_NAME and config.model["preset"] == "cpu-small"
    assert (config.learning_rate, config.adam_beta1, config.adam_beta2, config.max_grad_norm) == (
        2e-4,
        0.5,
        0.999,
        None,
    )
    method = CycleGANRepairTraining(config)
    objective = method.cyclegan
    assert (objective.cycle_loss_weight, objective.identity_loss_fraction, objective.history_size) == (10.0, 0.5, 50)
    assert objective.lr_decay_start_fraction == 0.5 and objective.image_size == 64
    with pytest.raises(ValueError, match=r"`data.domain_a` is not set"):
        method.build_dataset()  # the file leaves the two image sets to the command line


# --------------------------------------------------------------------------------------------------------------------
# Save / load


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(1)
    generator = CycleGANGenerator(base_channels=8, num_residual_blocks=1, image_size=32).eval()
    discriminator = PatchDiscriminator(base_channels=8, num_layers=2).eval()
    images = torch.rand(1, 3, 32, 32) * 2 - 1
    generator.save_pretrained(tmp_path / "generator")
    discriminator.save_pretrained(tmp_path / "discriminator")
    assert json.loads((tmp_path / "generator" / "config.json").read_text())["image_size"] == 32
    assert torch.equal(CycleGANGenerator.from_pretrained(tmp_path / "generator")(images).image, generator(images).image)
    loaded = PatchDiscriminator.from_pretrained(tmp_path / "discriminator")
    assert torch.equal(loaded(images).patch_scores, discriminator(images).patch_scores)
    with pytest.raises(CheckpointError, match="was saved by CycleGANGenerator, not PatchDiscriminator"):
        PatchDiscriminator.from_pretrained(tmp_path / "generator")

    reverse = CycleGANGenerator(base_channels=8, num_residual_blocks=1, image_size=32).eval()
    FaceRepairPipeline(repair=generator, real_to_swap=reverse).save_pretrained(tmp_path / "pipe")
    index = json.loads((tmp_path / "pipe" / "model_index.json").read_text())
    assert index["repair"] == ["facehub.modeling.cyclegan.modeling_cyclegan", "CycleGANGenerator"]
    pipe = FaceRepairPipeline.from_pretrained(tmp_path / "pipe")
    assert torch.equal(pipe.real_to_swap(images).image, reverse(images).image)
    FaceRepairPipeline(repair=generator).save_pretrained(tmp_path / "repair-only")
    assert FaceRepairPipeline.from_pretrained(tmp_path / "repair-only").real_to_swap is None


# --------------------------------------------------------------------------------------------------------------------
# repair_face


def face_photo_and_mask() -> tuple[np.ndarray, np.ndarray]:
    """The astronaut photo (public domain) with an elliptical "pasted face" region over her face."""
    photo = np.asarray(Image.open(PHOTO).convert("RGB"))[:256, 64:320].copy()
    rows, cols = np.mgrid[0:256, 0:256]
    mask = ((cols - 150) / 45.0) ** 2 + ((rows - 110) / 60.0) ** 2 < 1
    return photo, mask


def test_repair_face_changes_the_face_and_leaves_the_rest_bit_identical():
    torch.manual_seed(0)
    generator = CycleGANGenerator(base_channels=8, num_residual_blocks=1, image_size=64)
    photo, mask = face_photo_and_mask()
    repaired = repair_face(generator, photo, mask)
    assert repaired.shape == photo.shape and repaired.dtype == np.uint8

    changed = (repaired != photo).any(-1)
    assert changed[mask].mean() > 0.95  # the untrained generator's output replaces the pasted face
    rows, cols = np.nonzero(mask)
    face_size = max(np.ptp(rows), np.ptp(cols)) + 1  # 119 px
    feather_pixels = DEFAULT_FEATHER * face_size
    distance = distance_transform_edt(~mask)
    assert not changed[distance >= feather_pixels].any()  # outside the dilated mask: bit-identical
    assert changed[(distance > 0) & (distance < feather_pixels / 2)].mean() > 0.9  # the feathered band is blended

    # A float mask, the pipeline, and the same crop as the training framing.
    pipe = FaceRepairPipeline(repair=generator)
    out = pipe(Image.fromarray(photo), mask.astype(np.float32))
    np.testing.assert_array_equal(np.asarray(out.images[0]), repaired)  # a PIL image by default
    np.testing.assert_array_equal(pipe(photo, mask, output_type="np").images[0], repaired)
    assert out.blend_weight[mask].min() == 1.0 and out.blend_weight[distance >= feather_pixels].max() == 0.0
    x0, y0, x1, y1 = out.box
    assert x1 - x0 == y1 - y0 == int(np.ceil(face_size * 1.5))  # the face + 25 % margin on each side
    assert crop_around_mask(photo, mask, size=64).shape == (64, 64, 3)

    # A face at the photo's border: the box passes the edge, the crop is padded, the result still fits.
    corner = np.zeros_like(mask)
    corner[:40, -30:] = True
    near_edge = repair_face(generator, photo, corner)
    assert (near_edge != photo).any(-1)[corner].mean() > 0.95
    assert not (near_edge != photo).any(-1)[distance_transform_edt(~corner) >= DEFAULT_FEATHER * 40].any()


def test_repair_face_rejects_empty_masks_and_wrong_shapes():
    generator = CycleGANGenerator(base_channels=4, num_residual_blocks=0, image_size=16)
    photo, mask = face_photo_and_mask()
    with pytest.raises(ValueError, match=r"`mask` is empty"):
        repair_face(generator, photo, np.zeros(mask.shape, np.float32))
    with pytest.raises(ValueError, match=r"`mask` is empty"):
        repair_face(generator, photo, np.zeros(mask.shape, bool))
    with pytest.raises(ValueError, match=re.escape("`image` must be an (H, W, 3) RGB array, got shape (256, 256)")):
        repair_face(generator, photo[..., 0], mask)
    with pytest.raises(ValueError, match=re.escape("got shape (256, 256, 4)")):
        repair_face(generator, np.dstack([photo, photo[..., :1]]), mask)
    with pytest.raises(ValueError, match=r"`image` must be uint8 \(0-255\), got dtype float32"):
        repair_face(generator, photo.astype(np.float32) / 255, mask)
    with pytest.raises(
        ValueError, match=re.escape("`mask` must be (H, W) = (256, 256) like the image, got shape (256, 255)")
    ):
        repair_face(generator, photo, mask[:, 1:])
    with pytest.raises(ValueError, match=r"Got 0.5 for `feather` with margin 0.25"):
        repair_face(generator, photo, mask, feather=0.5)


# --------------------------------------------------------------------------------------------------------------------
# Training recipe parts


def test_fake_image_history_mixes_old_fakes_and_resumes_exactly():
    history = FakeImageHistory(capacity=4, seed=0)
    batches = [torch.full((2, 1, 1, 1), float(i)) for i in range(20)]  # fakes of step i carry the value i
    for step in range(2):
        assert torch.equal(history.query(batches[step]), batches[step])  # filling: shown as they come
    assert len(history) == 4
    shown = torch.cat([history.query(batches[step]) for step in range(2, 10)]).flatten()
    now = torch.arange(2, 10).repeat_interleave(2).float()
    assert (shown <= now).all() and (shown < now).any() and (shown == now).any()  # old fakes mixed with new ones
    assert len(history) == 4

    saved = history.state_dict()
    expected = [history.query(b) for b in batches[10:]]
    restored = FakeImageHistory(capacity=4, seed=123)
    restored.load_state_dict(saved)
    assert all(torch.equal(restored.query(b), e) for b, e in zip(batches[10:], expected, strict=True))
    with pytest.raises(ValueError, match="holds up to 4 images but this run's `history_size` is 5"):
        FakeImageHistory(capacity=5, seed=0).load_state_dict(saved)
    assert torch.equal(FakeImageHistory(0, 0).query(batches[1]), batches[1])


def test_learning_rate_is_constant_then_decays_linearly_to_zero():
    factors = [linear_decay_factor(step, 100, 0.5) for step in range(100)]
    assert factors[:50] == [1.0] * 50
    assert factors[50] == 1.0 and factors[99] == pytest.approx(1 / 50) and factors[75] == pytest.approx(0.5)
    assert np.all(np.diff(factors[50:]) < 0)
    assert linear_decay_factor(99, 100, 1.0) == 1.0


# --------------------------------------------------------------------------------------------------------------------
# Data and a real training run on a task with a known answer

COLOUR_CAST = np.array([-0.28, -0.12, 0.22])  # what "pasting" does to a face here: darker and bluer


def synthetic_face(seed: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A procedural "photo" (gradient background, skin-coloured face ellipse with two eyes, sensor noise), made
    twice from the same draws: ``(pasted, real, face_mask)``, where the pasted version's face carries
    ``COLOUR_CAST`` (its colour no longer matches the skin tone real faces have)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size] / (size - 1)
    start, end = rng.uniform(0.1, 0.9, 3), rng.uniform(0.1, 0.9, 3)
    angle = rng.uniform(0, 2 * np.pi)
    along = np.clip(0.5 + (cols - 0.5) * np.cos(angle) + (rows - 0.5) * np.sin(angle), 0, 1)[..., None]
    real = start * (1 - along) + end * along
    centre_x, centre_y = 0.5 + rng.uniform(-0.05, 0.05, 2)
    radius_x, radius_y = rng.uniform(0.22, 0.28), rng.uniform(0.28, 0.34)
    face = ((cols - centre_x) / radius_x) ** 2 + ((rows - centre_y) / radius_y) ** 2 < 1
    real[face] = np.array([0.85, 0.62, 0.5]) + rng.normal(0, 0.04, 3)
    for side in (-0.35, 0.35):
        eye = ((cols - centre_x - side * radius_x) / (0.12 * radius_x)) ** 2
        real[eye + ((rows - centre_y + 0.2 * radius_y) / (0.08 * radius_y)) ** 2 < 1] = 0.15
    pasted = real.copy()
    pasted[face] = np.clip(pasted[face] + COLOUR_CAST, 0, 1)
    noise = rng.normal(0, 0.015, real.shape)
    pasted, real = ((np.clip(image + noise, 0, 1) * 255 + 0.5).astype(np.uint8) for image in (pasted, real))
    return pasted, real, face


@pytest.fixture(scope="module")
def two_domains(tmp_path_factory):
    """domain A: a folder (with a subfolder and one broken file) of pasted faces; domain B: real faces saved as a
    datasets.Dataset with an ``image`` column, inside a folder laid out like ``facehub prepare``'s output."""
    import datasets

    root = tmp_path_factory.mktemp("domains")
    (root / "pasted" / "more").mkdir(parents=True)
    for index in range(48):
        folder = root / "pasted" / ("more" if index % 2 else "")
        Image.fromarray(synthetic_face(index, 40)[0]).save(folder / f"swap-{index}.png")
    (root / "pasted" / "more" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    real = [Image.fromarray(synthetic_face(1000 + index, 40)[1]) for index in range(40)]
    table = datasets.Dataset.from_dict({"image": real}, features=datasets.Features({"image": datasets.Image()}))
    table.save_to_disk(str(root / "prepared" / "dataset"))
    return root / "pasted", root / "prepared"


def test_unpaired_domains_read_folders_and_prepared_datasets(two_domains):
    pasted, prepared = two_domains
    with pytest.warns(UserWarning, match=r"data.domain_a: skipped 1 of 49 files .*broken.jpg"):
        data = UnpairedImageDomains(
            open_image_domain(pasted, "domain_a"), open_image_domain(prepared, "domain_b"), image_size=32
        )
    assert data.reports["domain_a"].readable == 48 and len(data.reports["domain_a"].skipped) == 1
    assert data.reports["domain_b"].readable == 40 and data.reports["domain_b"].source.endswith("dataset")
    assert len(data) == 48
    sample = data[47]
    assert sample["domain_a"].shape == sample["domain_b"].shape == (3, 32, 32)
    assert -1 <= sample["domain_a"].min() and sample["domain_b"].max() <= 1
    # The lazy path (no cache) reads the same crops.
    with pytest.warns(UserWarning):
        lazy = UnpairedImageDomains(
            open_image_domain(pasted, "domain_a"), open_image_domain(prepared, "domain_b"), 32, False, 0
        )
    assert lazy.cached["domain_a"] is None
    unflipped = UnpairedImageDomains.__new__(UnpairedImageDomains)
    unflipped.__dict__.update({**data.__dict__, "flip": False})
    assert torch.equal(lazy[5]["domain_b"], unflipped[5]["domain_b"])

    defaults = {"method": METHOD_NAME}
    method = CycleGANRepairTraining(load_config(overrides={"data": {"domain_b": str(prepared)}}, defaults=defaults))
    with pytest.raises(ValueError, match=r"`data.domain_a` is not set: give a folder of pasted face swaps"):
        method.build_dataset()
    with pytest.raises(FileNotFoundError, match=r"Got '/no/such/dir' for `data.domain_b`, which is not a folder"):
        open_image_domain("/no/such/dir", "domain_b")


def face_colour_gap_and_error(generator: CycleGANGenerator, size: int = 32, count: int = 32) -> dict[str, float]:
    """On held-out pairs: how far the mean face colour of the pasted input and of the generator's output are from
    that of the real faces (the domain statistic), and the mean pixel error of the output to the real image."""
    pasted, real, masks = zip(*[synthetic_face(5000 + index, size) for index in range(count)], strict=True)

    def to_tensor(images):
        return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1

    pasted, real = to_tensor(pasted), to_tensor(real)
    face = torch.from_numpy(np.stack(masks))[:, None].float()
    with torch.no_grad():
        output = generator.eval()(pasted).image

    def face_colour(images):
        return (images * face).sum((0, 2, 3)) / face.sum()

    return {
        "input_gap": (face_colour(pasted) - face_colour(real)).abs().mean().item(),
        "output_gap": (face_colour(output) - face_colour(real)).abs().mean().item(),
        "output_error": (output - real).abs().mean().item(),
    }


def test_training_learns_to_remove_the_pasted_colour_cast(two_domains, tmp_path):
    # The method registry's training entry is this recipe.
    from facehub import methods

    assert methods.get(METHOD_NAME).training == METHOD_TARGET
    assert get_method(METHOD_NAME) is CycleGANRepairTraining
    pasted, prepared = two_domains
    config = load_config(
        overrides={
            "output_dir": str(tmp_path),
            "seed": 0,
            "max_steps": 120,
            "train_batch_size": 8,
            "report_to": "none",
            "logging_steps": 20,
            "checkpointing_steps": 1000,
            "model": TINY_MODEL,
            "losses": {"history_size": 16},
            "data": {"domain_a": str(pasted), "domain_b": str(prepared)},
        },
        defaults={"method": METHOD_NAME},
    )
    method = get_method(METHOD_NAME)(config)
    method.sample_steps = 60  # sample grids at steps 60 and 120
    torch.manual_seed(config.seed)  # the loop seeds the same way, so this is the run's starting generator
    start = face_colour_gap_and_error(method.build_models()["generator_ab"])
    with pytest.warns(UserWarning, match="skipped 1 of 49"):
        summary = train(method, command="facehub train cyclegan --config run.yaml")
    assert summary["step"] == 120 and not summary["stopped"]

    pipe = FaceRepairPipeline.from_pretrained(tmp_path / "export")
    assert pipe.real_to_swap is not None and pipe.repair.config.image_size == 32
    trained = face_colour_gap_and_error(pipe.repair)
    # The pasted faces' mean colour is off by 0.41 per channel (in [-1, 1] units). After 120 steps the repaired
    # faces are within about 0.06 of real skin tone (the untrained generator: 0.43), and the output has moved towards
    # the real image as a whole (mean pixel error about 0.27, untrained 0.45).
    assert trained["output_gap"] < 0.4 * start["input_gap"], (start, trained)
    assert trained["output_gap"] < 0.4 * start["output_gap"], (start, trained)
    assert trained["output_error"] < 0.8 * start["output_error"], (start, trained)

    logs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    # The loop logs the rate each optimiser applied at the logged step: constant for the first half, then the
    # linear decay, down to 1/60 of it at the last step (step index 119).
    assert logs[0]["lr/generator"] == logs[0]["lr/discriminator"] == pytest.approx(2e-4, rel=1e-6)
    assert logs[-1]["lr/generator"] == pytest.approx(2e-4 * (120 - 119) / 60, rel=1e-6)
    assert logs[-2]["lr/discriminator"] == pytest.approx(2e-4 * (120 - 99) / 60, rel=1e-6)
    assert logs[-1]["cycle"] < logs[0]["cycle"]
    card = (tmp_path / "export" / "README.md").read_text()
    assert "CycleGAN" in card and "from facehub.modeling.cyclegan import FaceRepairPipeline" in card
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-120"]
    # Six rows (pasted, repaired, its cycle; real, real-to-swap, its cycle) of the batch's 8 faces, 32 px + 2 px gaps.
    grids = sorted((tmp_path / "samples").iterdir())
    assert [p.name for p in grids] == ["step-000060.png", "step-000120.png"]
    grid = np.asarray(Image.open(grids[-1]))
    assert grid.shape == (2 + 6 * 34, 2 + 8 * 34, 3)
    pasted, repaired = (grid[2 + 34 * row : 34 + 34 * row, 2:34].astype(float) for row in (0, 1))
    assert np.abs(pasted - repaired).mean() > 5  # the repair changed the face


def test_resume_continues_exactly_with_the_saved_history_of_fakes(two_domains, tmp_path):
    pasted, prepared = two_domains

    def run(output_dir, max_steps, resume=False):
        config = load_config(
            overrides={
                "output_dir": str(output_dir),
                "seed": 5,
                "max_steps": max_steps,
                "train_batch_size": 2,
                "report_to": "none",
                "checkpointing_steps": 1000,
                "resume": resume,
                "model": {**TINY_MODEL, "generator_channels": 4, "num_residual_blocks": 1, "discriminator_channels": 4},
                # A history that is full after two steps, so later steps swap stored fakes in; no decay, so the
                # 4-step run is the first half of the 8-step one.
                "losses": {"history_size": 4, "lr_decay_start_fraction": 1.0},
                "data": {"domain_a": str(pasted), "domain_b": str(prepared)},
            },
            defaults={"method": METHOD_NAME},
        )
        with pytest.warns(UserWarning, match="skipped 1 of 49"):
            train(CycleGANRepairTraining(config))
        return FaceRepairPipeline.from_pretrained(output_dir / "export")

    straight = run(tmp_path / "straight", 8)
    run(tmp_path / "resumed", 4)
    resumed = run(tmp_path / "resumed", 8, resume=True)
    for name, weight in straight.repair.state_dict().items():
        assert torch.equal(weight, resumed.repair.state_dict()[name]), name
