"""DiscoFaceGAN (seed 002): the factor VAEs learn the coefficient distribution, the render sits in the aligned frame
the regressor and the photos use, the contrastive warp follows the geometry, the losses of eq. 2-8 on hand-computed
cases, the pipeline's factor contract, and a short training run through every phase of the schedule."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facehub.modeling.disco_facegan import (
    FACTOR_KEYS,
    DiscoFaceGANPipeline,
    FactorRenderer,
    FactorVAEs,
    disco_facegan_config,
    factor_dims,
    warp_to,
)
from facehub.modeling.disco_facegan.rendering import five_points
from facehub.modeling.stylegan2 import StyleGAN2Generator, stylegan2_config

TINY_GAN = dict(resolution=16, latent_dim=16, mapping_layers=2, channels=[16, 16, 8])


def _lambda(count: int, seed: int = 0, yaw: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lighting = torch.zeros(count, 27)
    lighting[:, 0::9] = 0.925 / 0.886227  # the synthetic world's ambient light
    lighting[:, 1::9] = 0.2 * torch.randn(count, 1, generator=g)
    pose = torch.zeros(count, 3)
    if yaw is not None:
        pose[:, 0] = yaw
    return {"identity": 0.7 * torch.randn(count, 49, generator=g), "expression": 0.5 * torch.randn(count, 14, generator=g),
            "lighting": lighting, "pose": pose}


@pytest.fixture(scope="module")
def renderer():
    return FactorRenderer(64)


def test_factor_vaes_learn_the_coefficient_distribution(tmp_path):
    """Fitted to correlated coefficients, the VAEs' samples reproduce their mean, spread and correlation; the
    posterior mean reconstructs held-out values far better than the mean does; save and load keep them."""
    from facehub.trainers.disco_facegan import fit_factor_vaes

    g = torch.Generator().manual_seed(0)
    dims = factor_dims()
    data = {}
    for factor, width in dims.items():
        mixing = torch.randn(width, 2, generator=g)  # two underlying causes -> correlated coefficients
        data[factor] = torch.randn(2000, 2, generator=g) @ mixing.t() + 0.05 * torch.randn(2000, width, generator=g)
        data[factor] = data[factor] * 0.3 + torch.arange(width) * 0.01
    network = disco_facegan_config("cpu-small", latent_dims={"identity": 4, "expression": 4, "lighting": 4, "pose": 3},
                                   hidden_dims={"identity": 64, "expression": 64, "lighting": 64, "pose": 32})
    vaes, losses = fit_factor_vaes({k: v[:1500] for k, v in data.items()}, network, steps=350, batch_size=128, seed=0)
    samples = vaes.sample(4000, generator=torch.Generator().manual_seed(1))
    for factor, values in data.items():
        held_out = values[1500:]
        assert torch.allclose(samples[factor].mean(0), values.mean(0), atol=0.08), factor
        ratio = samples[factor].std(0) / values.std(0)
        assert 0.7 < ratio.median() < 1.3, (factor, ratio)
        error = (vaes(factor, held_out) - held_out).square().mean()
        baseline = (held_out - held_out.mean(0)).square().mean()
        assert error < 0.3 * baseline, (factor, float(error), float(baseline))
    first = data["identity"][:, :2]
    sampled = samples["identity"][:, :2]
    assert abs(np.corrcoef(sampled.T.numpy())[0, 1] - np.corrcoef(first.T.numpy())[0, 1]) < 0.15
    vaes.save_pretrained(tmp_path / "vaes")
    again = FactorVAEs.from_pretrained(tmp_path / "vaes")
    assert torch.allclose(again.decode("pose", torch.ones(1, 3)), vaes.decode("pose", torch.ones(1, 3)))


def test_render_sits_in_the_aligned_frame_and_turns_with_the_pose(renderer):
    from facehub.modeling.faces.alignment import template_points

    lam = _lambda(3, yaw=torch.tensor([-0.5, 0.0, 0.5]))
    out = renderer.render(lam)
    assert out.image.shape == (3, 3, 64, 64) and out.image.min() >= -1 and out.image.max() <= 1
    # the five alignment points are fitted onto the ArcFace template, as a photo's are in its aligned crop: same
    # centroid, same eye distance, a few pixels of residual where the face's proportions differ from the template's
    points, template = five_points(out.landmarks68), torch.as_tensor(template_points(64), dtype=torch.float32)
    assert torch.allclose(points.mean(dim=1), template.mean(dim=0).expand(3, 2), atol=1e-3)
    eyes = (points[:, 1] - points[:, 0]).norm(dim=-1) / (template[1] - template[0]).norm()
    assert ((eyes > 0.85) & (eyes < 1.15)).all(), eyes
    assert (points - template).norm(dim=-1).mean() < 4.0
    assert 0.25 < out.mask.mean() < 0.6
    # a face turned to its right (yaw > 0) shows more of its left cheek: the mask's mass moves to the image's left
    columns = torch.arange(64).float()
    centre = [(out.mask[i, 0].sum(0) * columns).sum() / out.mask[i, 0].sum() for i in range(3)]
    assert centre[2] < centre[1] < centre[0]


def test_warp_follows_the_expression_change(renderer):
    lam = _lambda(4, seed=1)
    other = {**lam, "expression": 0.8 * torch.randn(4, 14, generator=torch.Generator().manual_seed(7))}
    first, second = renderer.render(lam), renderer.render(other)
    same, valid = warp_to(first.image, first, first)
    assert torch.allclose(same * valid, first.image * valid, atol=0.05)
    warped, valid = warp_to(first.image, first, second)
    moved = ((warped - second.image).abs() * valid).sum() / valid.sum()
    unmoved = ((first.image - second.image).abs() * valid).sum() / valid.sum()
    assert moved < 0.6 * unmoved, (float(moved), float(unmoved))


def test_losses_on_hand_computed_cases(renderer):
    from facehub.trainers.losses.imitation import (
        colour_loss,
        cosine_distance,
        identity_imitation_loss,
        landmark_loss,
        lighting_loss,
        masked_l1,
    )

    a = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert identity_imitation_loss(a, b).item() == pytest.approx((0.0 + 0.7) / 2)  # max(1 - cos - 0.3, 0)
    assert cosine_distance(a, b).item() == pytest.approx(0.5)
    points = torch.zeros(1, 68, 2)
    assert landmark_loss(points + torch.tensor([3.0, 4.0]), points, 10).item() == pytest.approx(0.25)  # (5/10)^2
    assert lighting_loss(torch.ones(2, 27), torch.zeros(2, 3, 9)).item() == pytest.approx(1.0)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :2] = 1
    image = torch.zeros(1, 3, 4, 4)
    image[:, 0, :2, :2] = 0.5  # red 0.5 on the face, anything off it is ignored
    image[:, 2, 3, 3] = 9.0
    assert colour_loss(image, torch.zeros_like(image), mask).item() == pytest.approx(0.5 / 3)
    assert masked_l1(image, torch.zeros_like(image), mask).item() == pytest.approx(0.5 / 3)


def test_regressor_reads_the_render_where_the_imitation_expects(renderer):
    """The crop the imitative losses read generated faces through: on the renders themselves the regressor finds
    the rendered landmarks within a few pixels and the yaw within a few degrees."""
    from facehub.trainers.losses.imitation import FaceReader

    reader = FaceReader("facehub/face-fitting")
    yaw = torch.tensor([-0.5, -0.2, 0.2, 0.5])
    lam = _lambda(4, seed=2, yaw=yaw)
    out = renderer.render(lam)
    read = reader.regress(out.image, out.landmarks68)
    error = (read["landmarks68"] - out.landmarks68).norm(dim=-1).mean()
    assert error < 3.5, float(error)  # 64 px images
    assert (read["rotation"][:, 0] - yaw).abs().max() < math.radians(10)
    # and gradients reach the image
    image = out.image.clone().requires_grad_(True)
    reader.regress(image, out.landmarks68)["landmarks68"].sum().backward()
    assert image.grad.abs().sum() > 0


def _pipeline() -> DiscoFaceGANPipeline:
    torch.manual_seed(0)
    network = disco_facegan_config("cpu-small")
    vaes = FactorVAEs(factor_dims(), network.latent_dims, network.hidden_dims).eval()
    generator = StyleGAN2Generator(**{**stylegan2_config("cpu-small", **TINY_GAN).generator_kwargs(),
                                      "input_dim": network.generator_input_dim(), "normalize_input": False}).eval()
    return DiscoFaceGANPipeline(image_generator=generator, factor_vaes=vaes)


def test_pipeline_factor_contract():
    pipe = _pipeline()
    out = pipe(num_images=3, generator=torch.Generator().manual_seed(0), output_type="np")
    f = out.factors
    assert sorted(f) == sorted(FACTOR_KEYS) and out.images[0].shape == (16, 16, 3)
    assert {k: tuple(v.shape) for k, v in f.items()} == {"identity": (3, 49), "expression": (3, 14),
                                                         "lighting": (3, 27), "pose": (3, 3), "noise": (3, 32)}
    again = pipe(factors=f, output_type="np")
    assert np.array_equal(again.images[1], out.images[1])  # stored noise: the same factors draw the same face
    g = pipe.sample_factors(3, generator=torch.Generator().manual_seed(1))
    changed = pipe(factors={**f, "expression": g["expression"]}, output_type="np")
    for key in ("identity", "lighting", "pose", "noise"):
        assert torch.equal(changed.factors[key], f[key])
    assert not np.array_equal(changed.images[0], out.images[0])
    turned = pipe(factors=f, yaw=30.0)
    assert torch.allclose(turned.factors["pose"][:, 0], torch.full((3,), 30.0))
    assert torch.equal(turned.factors["pose"][:, 1:], f["pose"][:, 1:])
    # Supplement IV's truncation: w' = w + (1 - psi)(w_bar_alpha - w(alpha, u_j = 0)). With every other factor at
    # its neutral value (the data mean, no noise), psi = 0 sends every identity to the average identity's w ...
    vaes = pipe.factor_vaes
    neutral = {"identity": f["identity"], "expression": vaes.mean_expression.expand(3, -1),
               "lighting": vaes.mean_lighting.expand(3, -1), "pose": torch.rad2deg(vaes.mean_pose).expand(3, -1),
               "noise": torch.zeros(3, 32)}
    with torch.no_grad():
        w0 = pipe.styles(pipe.check_factors(neutral), truncation_psi=0.0)
        assert torch.allclose(w0, pipe.identity_centre().expand(3, -1), atol=1e-4)
    rendered = pipe(factors=f, return_renders=True, output_type="np")
    assert rendered.renders[0].shape == (16, 16, 3)
    with pytest.raises(ValueError, match="missing \\['noise'\\]"):
        pipe(factors={k: v for k, v in f.items() if k != "noise"})
    with pytest.raises(ValueError, match="14 values per face|reads 14"):
        pipe(factors={**f, "expression": torch.zeros(3, 5)})


@pytest.mark.slow
def test_the_schedule_lowers_the_imitative_losses_and_raises_ds_over_the_adversarial_only_row(tmp_path):
    """Table 1's rows at test scale: the same 64 px generator, start, data, seed, factor VAEs and 50 steps, trained
    adversarially only (no pixel or imitative loss) and with the paper's schedule (pixel loss, eq. 2-5, then eq. 6-8
    as well, resumed for the last steps).

    Both start from the shipped default's synthesis network and mapping, with the mapping's first layer (which reads
    the factors) fresh, so that they draw faces the grader can read from the first step; runs from scratch draw no
    face within a test's budget. What is compared is what the losses teach that layer.

    - The scheduled run logs each phase in turn, saves its VAEs and exports a pipeline.
    - On the same factors its faces are where the render puts them: its landmark (eq. 3), lighting (eq. 4) and
      skin-colour (eq. 5) losses, read by the training regressor, are well below the adversarial-only run's.
    - `facehub eval disco_facegan` (eq. 9, graded by the evaluation-only regressor, 8 groups of 4) scores its DS of
      lighting well above the adversarial-only row's, and its faces turn as asked better than faces drawn frontal
      whatever the request would. The figures follow the regressors of the shipped face-fitting bundle, which both
      train and grade: with today's, run alone on one thread, DS of lighting 35 against 0.20 and a yaw error of 20.1
      against that baseline's 22.4 degrees (26.6 for the adversarial-only row); with earlier regressors 4.30 against
      0.46, and yaw errors 13.6 against 17.7.

    What this budget cannot show: DS of identity, expression and pose, and which run controls yaw better. At 8-10
    groups their order flips between runs with small changes (40, 50 or 60 steps, a pixel phase or none, the thread
    count: identity 3.6 against 3.6 and 8.2 against 9.6 at 50 steps, 14.6 against 2.4 in another). The yaw error was
    below the adversarial-only row's in eight runs (15.2 against 29.0 degrees, 14.2 against 37.5) and level with it
    in the ninth (13.6 against 13.5), while the lighting DS kept its order in all nine; the default's card has the
    2,000-step rows.
    """
    import shutil

    from facehub.modeling.disco_facegan import generator_input
    from facehub.modeling.stylegan2 import StyleGAN2Pipeline
    from facehub.trainers.losses.imitation import FaceReader, colour_loss, landmark_loss, lighting_loss
    from facehub.trainers.run import main as train

    start = tmp_path / "start"
    StyleGAN2Pipeline(image_generator=DiscoFaceGANPipeline.from_pretrained("facehub/disco-facegan").image_generator
                      ).save_pretrained(start)
    settings = {"report_to": "none", "max_steps": 50, "train_batch_size": 8, "logging_steps": 10,
                "checkpointing_steps": 50, "sample_steps": 50, "losses.vae_steps": 1000, "losses.contrastive_from": 0,
                "model.synthesis_from": start, "data.synthetic.num_identities": 64, "data.synthetic.image_size": 64,
                "seed": 0}
    arms = {"imitative": {"losses.pixel_steps": 10},
            "adversarial": {"losses.pixel_weight": 0.0, "losses.pixel_steps": 51}}
    for name, extra in arms.items():
        if name == "adversarial":  # the same factor VAEs: the run reuses those in its output_dir
            shutil.copytree(tmp_path / "imitative" / "factor_vaes", tmp_path / name / "factor_vaes")
        argv = ["--preset", "cpu-small", f"output_dir={tmp_path / name}",
                *[f"{k}={v}" for k, v in {**settings, **extra}.items()]]
        assert train(argv, method="disco_facegan") == 0
    adversarial_logs = (tmp_path / "adversarial" / "metrics.jsonl").read_text()
    assert "landmark" not in adversarial_logs  # it never left the (weightless) pixel phase
    logs = [json.loads(line) for line in (tmp_path / "imitative" / "metrics.jsonl").read_text().splitlines()]
    assert [log["step"] for log in logs] == list(range(10, 51, 10))
    assert "pixel" in logs[0] and "landmark" not in logs[0]  # steps 0-9
    assert "landmark" in logs[1] and "expression_contrastive" not in logs[-1]  # steps 10-49
    assert all(math.isfinite(v) for log in logs for v in log.values())
    card = (tmp_path / "imitative" / "export" / "README.md").read_text()
    assert "hair-segmentation" in card and "facehub/face-fitting" in card

    pipes = {name: DiscoFaceGANPipeline.from_pretrained(tmp_path / name / "export") for name in arms}
    renderer = FactorRenderer(64)
    reader = FaceReader("facehub/face-fitting", renderer.face_model)
    generator = torch.Generator().manual_seed(5)
    lam = pipes["imitative"].factor_vaes.sample(32, generator=generator)
    noise = torch.randn(32, pipes["imitative"].noise_dim, generator=generator)
    render = renderer.render(lam)
    losses = {}
    with torch.no_grad():
        for name, pipe in pipes.items():
            images = pipe.image_generator(generator_input(pipe.factor_vaes, lam, noise), noise_mode="const").images
            read = reader.regress(images, render.landmarks68)
            losses[name] = {"landmark": float(landmark_loss(read["landmarks68"], render.landmarks68, 64)),
                            "lighting": float(lighting_loss(read["lighting"], lam["lighting"])),
                            "colour": float(colour_loss(images, render.image, render.mask))}
    # Measured 0.53 of the adversarial-only row's on an AVX-512 Xeon, under 0.5 on the machines this was written on:
    # the two runs' last bits, and so their paths, follow the CPU's BLAS code path.
    assert losses["imitative"]["landmark"] < 0.6 * losses["adversarial"]["landmark"], losses
    assert losses["imitative"]["lighting"] < 0.9 * losses["adversarial"]["lighting"], losses
    assert losses["imitative"]["colour"] < 0.9 * losses["adversarial"]["colour"], losses

    # Table 1 in miniature: `facehub eval disco_facegan` (README) on both exports
    from facehub.apps.cli import main

    assert main(["eval", "disco_facegan", "--model", f"imitative={tmp_path / 'imitative' / 'export'}",
                 "--model", f"adversarial={tmp_path / 'adversarial' / 'export'}", "--groups", "8",
                 "--per-group", "4", "--pairs", "4", "--others", "4", "--out", str(tmp_path / "eval")]) == 0
    rows = {row["name"]: row for row in json.loads((tmp_path / "eval" / "results.json").read_text())["rows"]}
    assert list(rows) == ["imitative", "adversarial", "renderer (ceiling)"]
    ours, theirs = rows["imitative"], rows["adversarial"]
    assert ours["disentanglement"]["lighting"] > 1.5 * theirs["disentanglement"]["lighting"], (ours, theirs)
    assert ours["control"]["yaw_error_deg"] < ours["control"]["yaw_error_if_frontal_deg"], ours["control"]

    # the contrastive phase (eq. 6-8): the imitative run resumed from its last checkpoint for 4 more steps
    argv = ["--config", str(tmp_path / "imitative" / "config.yaml"), "resume=true", "max_steps=54", "logging_steps=2",
            "losses.contrastive_from=50"]
    assert train(argv, method="disco_facegan") == 0
    logs = [json.loads(line) for line in (tmp_path / "imitative" / "metrics.jsonl").read_text().splitlines()]
    assert [log["step"] for log in logs[-2:]] == [52, 54]
    assert "expression_contrastive" in logs[-1] and "illumination_identity" in logs[-1]
    assert all(math.isfinite(v) for v in logs[-1].values())


def test_generate_tab_draws_seeded_faces_and_changes_one_factor(tmp_path):
    """The demo's Generate tab through the registry: DiscoFaceGAN with factor seeds and a set pose, and a converted
    StyleGAN2 through the same event; an uploaded photo embedded and edited; bad requests become a status line."""
    from facehub.apps.registry import DemoContext
    from facehub.apps.tabs.generate import run_generation, run_photo_edit
    from facehub.modeling.stylegan2 import convert_rosinality_checkpoint

    models = tmp_path / "models"
    _pipeline().save_pretrained(models / "tiny-disco")
    convert_rosinality_checkpoint(Path(__file__).parent / "data" / "stylegan2-rosinality" / "rosinality_tiny_64.pt",
                                  models / "tiny-stylegan2", w_avg_samples=64)
    ctx = DemoContext(device="cpu", models_dir=models)
    try:
        faces, status = run_generation(ctx, "disco_facegan", "tiny-disco", 2, 5, 1.0)
        assert len(faces) == 2 and faces[0].shape == (16, 16, 3) and "seed 5" in status
        again, _ = run_generation(ctx, "disco_facegan", "tiny-disco", 2, 5, 1.0)
        assert np.array_equal(again[0], faces[0])
        smiling, status = run_generation(ctx, "disco_facegan", "tiny-disco", 2, 5, 1.0, expression_seed=9)
        assert "Expression from seed 9" in status and not np.array_equal(smiling[0], faces[0])
        _, status = run_generation(ctx, "disco_facegan", "tiny-disco", 2, 5, 1.0, set_pose=True, yaw=30, pitch=-10)
        assert "(+30, -10); (+30, -10)" in status
        drawn, status = run_generation(ctx, "stylegan2", "tiny-stylegan2", 1, 0, 0.7)
        assert drawn[0].shape == (64, 64, 3) and "truncation 0.7" in status
        nothing, status = run_generation(ctx, "disco_facegan", "tiny-disco", 0, 5, 1.0)
        assert nothing == [] and "1 to 8" in status
        _, status = run_generation(ctx, "disco_facegan", "/etc", 1, 5, 1.0)
        assert "cannot use that model" in status and "/etc" not in status
        # an uploaded photo, embedded and edited
        photo = str(Path(__file__).parent / "data" / "photos" / "obama.jpg")
        pictures, status = run_photo_edit(ctx, "disco_facegan", "tiny-disco", photo, expression_seed=9)
        assert [p.shape for p in pictures[:3]] == [(16, 16, 3)] * 3 and pictures[3].ndim == 3, status
        assert "Expression from seed 9" in status and "measured yaw" in status
        assert not np.array_equal(pictures[1], pictures[2])  # the edit changed the embedded face
        _, status = run_photo_edit(ctx, "disco_facegan", "tiny-disco", photo)
        assert "Nothing changed" in status
        _, status = run_photo_edit(ctx, "stylegan2", "tiny-stylegan2", photo, expression_seed=1)
        assert "cannot embed" in status
        _, status = run_photo_edit(ctx, "disco_facegan", "tiny-disco", None)
        assert "Upload a photo" in status
    finally:
        ctx.close()


def test_embedding_finds_a_generated_face_and_edits_through_the_factors():
    """Eq. 11: a face the generator drew is found again in W+ (the pixel error falls far below the start's), an
    edit with no change gives back the reconstruction, and a pose edit moves W along w(b) - w(a)."""
    from facehub.modeling.disco_facegan import edit_face, embed_face, lambda_from_factors

    pipe = _pipeline()
    generator, vaes = pipe.image_generator, pipe.factor_vaes
    factors = pipe.sample_factors(2, generator=torch.Generator().manual_seed(3))
    target = pipe(factors={k: v[:1] for k, v in factors.items()}, output_type="np").images[0]
    guess = {k: v[1:] for k, v in lambda_from_factors(factors).items()}  # start from another face's factors
    short = embed_face(generator, vaes, target, guess, steps=1, identity_weight=0)
    long = embed_face(generator, vaes, target, guess, steps=80, identity_weight=0)
    assert long.loss < 0.3 * short.loss, (long.loss, short.loss)
    assert np.array_equal(edit_face(generator, vaes, long, {}), long.reconstruction)
    pose = long.factors["pose"].clone()
    pose[:, 0] += 0.4
    turned = edit_face(generator, vaes, long, {"pose": pose})
    assert not np.array_equal(turned, long.reconstruction)
    with pytest.raises(ValueError, match="Cannot edit"):
        edit_face(generator, vaes, long, {"hair": torch.zeros(1)})


def test_rotation_contract_embeds_edits_and_pastes_back():
    from facehub.modeling.disco_facegan import DiscoFaceGANRotationPipeline
    from facehub.modeling.pipeline_utils import UnreachablePoseError

    tiny = _pipeline()
    pipe = DiscoFaceGANRotationPipeline(image_generator=tiny.image_generator, factor_vaes=tiny.factor_vaes)
    photo = Path(__file__).parent / "data" / "photos" / "obama.jpg"
    out = pipe(photo, yaw=20.0, output_type="np", embed_steps=2)
    original = np.asarray(Image.open(photo).convert("RGB"))
    assert out.images[0].shape == original.shape and out.requested_pose.yaw == 20.0
    assert out.crops.shape == (16, 16, 3) and out.reconstructions.shape == (16, 16, 3)
    changed = np.abs(out.images[0].astype(int) - original).sum(axis=2) > 0
    assert 0.01 < changed.mean() < 0.5  # the face region is pasted, the rest of the photo is untouched
    with pytest.raises(UnreachablePoseError, match="at most 45"):
        pipe(photo, yaw=60.0)



def test_pipeline_embeds_a_photo_and_edits_one_factor_at_a_time():
    """`DiscoFaceGANPipeline.embed` / `.edit` (Sec. 5.2, eq. 11) on the shipped default: with no change the edit is
    the embedding's own reconstruction; a new expression changes the face and no other factor; a yaw edit moves the
    pose factor by the asked change from the photo's measured pose; wrong inputs are refused."""
    pipe = DiscoFaceGANPipeline.from_pretrained("facehub/disco-facegan")
    photo = Path(__file__).parent / "data" / "photos" / "obama.jpg"
    face = pipe.embed(photo, embed_steps=20)
    assert face.embedded.crop.shape == (64, 64, 3) and sorted(face.factors) == sorted(FACTOR_KEYS[:4])
    # the optimised W+ reproduces the photo's face better than its start, the read factors' own face
    start = pipe.embed(photo, embed_steps=0)
    target = face.embedded.crop.astype(np.float32)
    assert np.abs(face.embedded.reconstruction - target).mean() < 0.8 * np.abs(start.embedded.reconstruction - target).mean()

    unchanged = pipe.edit(face, output_type="np")
    assert np.array_equal(unchanged.crops, face.embedded.reconstruction)
    other = pipe.sample_factors(1, generator=torch.Generator().manual_seed(3))
    smiling = pipe.edit(face, expression=other["expression"], output_type="np")
    assert np.abs(smiling.crops.astype(int) - unchanged.crops).mean() > 1.0
    assert torch.equal(smiling.factors["expression"], other["expression"].float())
    assert torch.equal(smiling.factors["identity"], face.factors["identity"])
    original = np.asarray(Image.open(photo).convert("RGB"))
    assert smiling.images[0].shape == original.shape
    measured_yaw = float(face.face.pose[0])
    turned = pipe.edit(face, yaw=measured_yaw + 15.0, output_type="np")
    assert float(turned.factors["pose"][0, 0] - face.factors["pose"][0, 0]) == pytest.approx(15.0, abs=1e-3)
    with pytest.raises(ValueError, match="reads 14"):
        pipe.edit(face, expression=torch.zeros(1, 5))
    from facehub.modeling.pipeline_utils import UnreachablePoseError

    with pytest.raises(UnreachablePoseError, match="at most 45"):
        pipe.edit(face, yaw=70.0)

def test_synthesis_from_a_stylegan2_keeps_what_its_layers_compute(tmp_path):
    """``model.synthesis_from``: the synthesis network, D and the mapping layers after the first are copied; with
    another learning-rate multiplier the stored mapping weights are rescaled so that those layers compute the same."""
    from facehub.modeling.stylegan2 import StyleGAN2Discriminator, StyleGAN2Pipeline
    from facehub.trainers.disco_facegan import DiscoFaceGANModelConfig, DiscoFaceGANTraining, DiscoFaceGANTrainingConfig

    torch.manual_seed(0)
    kwargs = stylegan2_config("cpu-small", **TINY_GAN).generator_kwargs()
    source = StyleGAN2Pipeline(image_generator=StyleGAN2Generator(**kwargs),
                               discriminator=StyleGAN2Discriminator(**stylegan2_config("cpu-small", **TINY_GAN)
                                                                    .discriminator_kwargs()))
    source.save_pretrained(tmp_path / "sg2")
    config = DiscoFaceGANTrainingConfig(model=DiscoFaceGANModelConfig(
        **TINY_GAN, mapping_lr_multiplier=1.0, synthesis_from=str(tmp_path / "sg2")), output_dir=str(tmp_path / "run"))
    models = DiscoFaceGANTraining(config).build_models()
    generator, original = models["generator"], source.image_generator
    x = torch.randn(3, 16)
    assert torch.allclose(generator.mapping[1](x), original.mapping[1](x), atol=1e-5)
    assert torch.equal(generator.convs[2].conv.weight, original.convs[2].conv.weight)
    assert torch.equal(models["discriminator"].output.weight, source.discriminator.output.weight)
    assert generator.mapping[0].weight.shape == (16, 125)  # reads the factors: starts fresh


def test_embedded_default_changes_one_factor_and_keeps_the_person():
    """The shipped miniature through the contract, graded by the evaluation-only regressor's reader and dlib: faces
    whose expression alone changed stay nearer each other than different identities do, and the asked yaw moves what
    the grader reads in the asked direction."""
    from facehub.trainers.evaluation.disco_facegan import Grader

    pipe = DiscoFaceGANPipeline.from_pretrained("facehub/disco-facegan")
    out = pipe(num_images=8, generator=torch.Generator().manual_seed(0), output_type="pt")
    f = out.factors
    assert out.images.shape == (8, 3, 64, 64) and sorted(f) == sorted(FACTOR_KEYS)
    g = pipe.sample_factors(8, generator=torch.Generator().manual_seed(1))
    grader = Grader(FactorRenderer(64), pipe.factor_vaes)
    base = grader.descriptors(out.images.clamp(-1, 1))
    expression_only = grader.descriptors(pipe(factors={**f, "expression": g["expression"]}, output_type="pt")
                                         .images.clamp(-1, 1))
    others = grader.descriptors(pipe(factors=g, output_type="pt").images.clamp(-1, 1))
    assert (expression_only - base).norm(dim=1).mean() < 0.5 * (others - base).norm(dim=1).mean()  # 0.12 vs 0.39
    left = grader.read(pipe(factors=f, yaw=-25.0, output_type="pt").images.clamp(-1, 1))["pose"][:, 0]
    right = grader.read(pipe(factors=f, yaw=25.0, output_type="pt").images.clamp(-1, 1))["pose"][:, 0]
    # asked 50 degrees apart, the faces read about 14 degrees apart: the miniature's pose control is weak (its card)
    assert (right - left).mean() > math.radians(7) and ((right - left) > 0).all(), (left, right)


def test_disentanglement_score_is_eq_9():
    """DS_i = prod_{j != i} sigma_i / sigma_j, by hand; the bootstrap interval brackets the score of its groups."""
    from facehub.trainers.evaluation.disco_facegan import bootstrap_interval, disentanglement_score

    sigma = {"identity": 1.0, "expression": 0.5, "lighting": 0.25, "pose": 2.0}
    assert disentanglement_score(sigma, "pose") == pytest.approx((2 / 1) * (2 / 0.5) * (2 / 0.25))  # 64
    assert disentanglement_score(sigma, "lighting") == pytest.approx((0.25 / 1) * (0.25 / 0.5) * (0.25 / 2))
    groups = [{f: v * (1 + 0.1 * k) for f, v in sigma.items()} for k in range(-3, 4)]
    low, high = bootstrap_interval(groups, "pose", rounds=50)
    assert low <= 64.0 <= high and high / low < 2.0


def test_disentanglement_score_falls_when_a_factor_leaks_into_another():
    """DS on constructed generators whose disentanglement is known, through the evaluation's own grader: the
    renderer, where each factor moves only its own part of the face, and the same renderer with the expression's
    first coefficient turning the head. Varying the expression then moves the pose the grader reads 120 times more,
    and DS of the expression falls (33 to 7 here: the turned faces' expression also reads less steadily); the renderer's own row is what `facehub eval` prints as the ceiling."""
    from facehub.trainers.evaluation.disco_facegan import Grader, RendererSource, factor_variance, measure

    vaes = DiscoFaceGANPipeline.from_pretrained("facehub/disco-facegan").factor_vaes
    renderer = FactorRenderer(64)
    grader = Grader(renderer, vaes)
    prior = vaes.sample(64, generator=torch.Generator().manual_seed(1))
    reference = {f: factor_variance(v) for f, v in grader.read(renderer.render(prior).image).items()}

    class ExpressionTurnsTheHead:
        noise_dim = 0

        def __call__(self, lam, noise):
            pose = lam["pose"].clone()
            pose[:, 0] = pose[:, 0] + 2.0 * (lam["expression"][:, 0] - vaes.mean_expression[0])
            return renderer.render({**lam, "pose": pose}).image

    clean = measure("renderer", RendererSource(renderer, 0), grader, vaes, reference, 6, 4, seed=0)
    leaky = measure("leaky", ExpressionTurnsTheHead(), grader, vaes, reference, 6, 4, seed=0)
    # varying the expression: the pose read moves far more when the expression turns the head
    assert leaky.sigma["expression"]["pose"] > 30 * clean.sigma["expression"]["pose"]
    assert leaky.disentanglement["expression"] < clean.disentanglement["expression"] / 3
    # in the renderer, varying the pose moves the pose read most
    assert max(clean.sigma["pose"], key=clean.sigma["pose"].get) == "pose"
    assert clean.disentanglement["expression"] > 1.0
