"""StyleFaceUV (seed 004), Sec. 3.2 in oracle mode: F_3D learns the coefficients of stylecodes, the linear SVM finds
a known direction, and F_yaw turns a stylecode's face to a requested yaw without changing the person. The oracle
(the synthetic world playing the 2D generator) gives exact coefficients and the true yaw direction."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facehub.modeling.stylefaceuv import StyleToCoefficients, YawStepMapper, linear_svm_direction
from facehub.trainers.data.stylefaceuv_oracle import OracleStyleGenerator
from facehub.trainers.stylefaceuv import estimate_yaw_direction, fit_style_to_coefficients, fit_yaw_step


@pytest.fixture(scope="module")
def oracle():
    return OracleStyleGenerator(style_dim=32, image_size=64)


@pytest.fixture(scope="module")
def f3d(oracle):
    styles = oracle.sample(4000, torch.Generator().manual_seed(1))
    model, _ = fit_style_to_coefficients(styles, oracle.coefficients(styles), steps=1200,
                                         hidden_multipliers=[3, 2, 1], progress=False)
    return model


def test_linear_svm_finds_a_known_direction_in_a_constructed_latent_space():
    """Yaw = tanh(w . d) + noise over 20,000 normal stylecodes of width 64: the normal of the SVM between the top and
    bottom 2% is d (cosine 0.99), pointing to larger yaw; too few stylecodes are refused."""
    generator = torch.Generator().manual_seed(0)
    d = torch.randn(64, generator=generator)
    d = d / d.norm()
    styles = torch.randn(20000, 64, generator=generator)
    yaw = torch.tanh(styles @ d) + 0.05 * torch.randn(20000, generator=generator)
    found = linear_svm_direction(styles, yaw)
    assert found.count == 400 and found.accuracy == 1.0
    assert float(found.direction @ d) > 0.98
    assert found.margin_yaw[0] < -0.8 and found.margin_yaw[1] > 0.8
    flipped = linear_svm_direction(styles, -yaw)
    assert float(flipped.direction @ d) < -0.98
    with pytest.raises(ValueError, match="sample more"):
        linear_svm_direction(styles[:50], yaw[:50])


def test_f3d_learns_the_oracle_coefficients(oracle, f3d, tmp_path):
    """F_3D (two MLPs, Tanh for the face, ELU for the scene) on exact (stylecode, coefficient) pairs: on held-out
    stylecodes every factor's L1 error is under a third of the mean-coefficient baseline's, the yaw within 7
    degrees; a saved model loads back and gives the same coefficients."""
    styles = oracle.sample(4000, torch.Generator().manual_seed(1))
    test = oracle.sample(500, torch.Generator().manual_seed(2))
    truth, mean = oracle.coefficients(test), oracle.coefficients(styles)
    with torch.no_grad():
        predicted = f3d(test)
    for factor in truth:
        error = (predicted[factor] - truth[factor]).abs().mean()
        baseline = (truth[factor] - mean[factor].mean(0)).abs().mean()
        assert error < baseline / 3, (factor, float(error), float(baseline))
    yaw_error = math.degrees(float((predicted["pose"][:, 0] - truth["pose"][:, 0]).abs().mean()))
    assert yaw_error < 7.0, yaw_error
    assert isinstance(f3d.face[1], torch.nn.Tanh) and isinstance(f3d.scene[1], torch.nn.ELU)
    assert f3d.face[0].out_features == 3 * 32  # hidden widths in units of the stylecode width
    f3d.save_pretrained(tmp_path / "f3d")
    again = StyleToCoefficients.from_pretrained(tmp_path / "f3d")
    with torch.no_grad():
        assert torch.allclose(again(test)["identity"], predicted["identity"])


def test_yaw_direction_and_f_yaw_turn_a_face_without_changing_it(oracle, f3d):
    """Sec. 3.2.2 on the oracle: the SVM on F_3D's yaws finds the true yaw direction, and eq. 2 with F_yaw brings
    held-out faces to requested yaws in [-35, 35] (the oracle's exact yaw within 10 degrees; a step of 0 would be
    20 off) while their identity and expression stay."""
    direction = estimate_yaw_direction(f3d, oracle.sample(20000, torch.Generator().manual_seed(3)))
    assert float(direction.direction @ oracle.yaw_direction) > 0.95
    styles = oracle.sample(4000, torch.Generator().manual_seed(1))
    f_yaw, _ = fit_yaw_step(f3d, direction.direction, styles, max_step=3.0, steps=800, progress=False)
    test = oracle.sample(300, torch.Generator().manual_seed(4))
    target = torch.empty(300).uniform_(-math.radians(35), math.radians(35), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        turned = f_yaw.turn(test, target)
    before, after = oracle.coefficients(test), oracle.coefficients(turned)
    error = math.degrees(float((after["pose"][:, 0] - target).abs().mean()))
    unmoved = math.degrees(float((before["pose"][:, 0] - target).abs().mean()))
    assert error < 10.0 and unmoved > 15.0, (error, unmoved)
    for factor in ("identity", "expression"):
        assert (after[factor] - before[factor]).abs().mean() < 0.03
    # the oracle's own mirror: the symmetric stylecode has the negated yaw and the same face
    mirrored = oracle.coefficients(oracle.symmetric(test))
    assert torch.allclose(mirrored["pose"][:, 0], -before["pose"][:, 0], atol=1e-5)
    assert torch.allclose(mirrored["identity"], before["identity"], atol=1e-5)
    assert isinstance(f_yaw, YawStepMapper)


@pytest.fixture(scope="module")
def detailed():
    from facehub.modeling.stylefaceuv.rendering import DetailedFaceRenderer

    return DetailedFaceRenderer(64, mesh_resolution=96)


def _turned(oracle, count: int, yaw_degrees: float, seed: int = 0) -> dict[str, torch.Tensor]:
    lam = oracle.coefficients(oracle.sample(count, torch.Generator().manual_seed(seed)))
    lam["pose"] = torch.zeros_like(lam["pose"])
    lam["pose"][:, 0] = math.radians(yaw_degrees)
    return lam


def test_dense_mesh_and_the_displacement_path(oracle, detailed):
    """The dense mesh lies on the morphable model's surface (its render matches the 468-vertex render), a
    displacement map moves each vertex along its outward normal by the map's value, only where the map says, and the
    photometric loss reaches the displacement map only through texels the view sees."""
    from facehub.modeling.geometry.morphable import vertex_normals
    from facehub.modeling.stylefaceuv.rendering import accessed_texels, photometric_loss, uv_maps

    assert 4000 < detailed.num_vertices < 4400  # a 96 px UV raster's face pixels, against 468 coarse vertices
    lam = _turned(oracle, 2, 0.0)
    plain = detailed.render(lam)
    coarse = oracle.renderer.render(lam)
    both = plain.mask * coarse.mask
    assert both.sum() > 0.9 * coarse.mask.sum()
    assert float(((plain.image - coarse.image).abs() * both).sum() / (3 * both.sum())) < 0.05

    vertices = detailed.dense_shape(lam)
    normals = vertex_normals(vertices, detailed.triangles)
    assert normals[..., 2].mean() > 0.5  # outward: towards the camera on a frontal face (z to the camera)
    moved = detailed.displace(vertices, torch.full((2, 1, 32, 32), 2.0)) - vertices
    assert torch.allclose(moved.norm(dim=-1), torch.full_like(moved[..., 0], 2.0), atol=1e-4)
    assert torch.allclose(moved / 2.0, normals, atol=1e-4)
    bump = torch.zeros(2, 1, 32, 32)
    bump[:, :, 12:20, 12:20] = 3.0  # texels (u, v) in [0.375, 0.625]^2
    moved = (detailed.displace(vertices, bump) - vertices).norm(dim=-1)
    inside = ((detailed.uvs - 0.5).abs() < 0.10).all(dim=1)
    outside = ((detailed.uvs - 0.5).abs() > 0.16).any(dim=1)
    assert torch.allclose(moved[:, inside], torch.full_like(moved[:, inside], 3.0), atol=1e-4)
    assert moved[:, outside].max() < 1e-6

    output = torch.zeros(2, 4, 32, 32)
    base = detailed.albedo_map(lam, 32)
    diffuse, displacement = uv_maps(output, base)  # a zero output is the morphable model's face
    assert torch.equal(diffuse, base.clamp(0, 1)) and torch.all(displacement == 0.0)
    assert float(uv_maps(torch.full((1, 4, 2, 2), 50.0), base[:1, :, :2, :2])[1].max()) == pytest.approx(5.0)
    assert float(uv_maps(torch.full((1, 4, 2, 2), 50.0), base[:1, :, :2, :2])[0].min()) == 1.0
    turned = _turned(oracle, 1, 40.0)
    displacement = torch.zeros(1, 1, 32, 32, requires_grad=True)
    render = detailed.render(turned, diffuse[:1], displacement)
    photometric_loss(render.image, oracle.renderer.render(turned).image, render.mask).backward()
    gradient = displacement.grad[0, 0].abs()
    assert gradient.sum() > 0
    # texels far from any the view looks up get no gradient (bilinear lookups reach one texel beyond)
    seen = torch.nn.functional.max_pool2d(accessed_texels(render, 32), 5, 1, 2)[0, 0] > 0
    assert gradient[~seen].max() == 0 and (~seen).sum() > 50


def test_symmetric_view_weights_follow_what_each_view_sees(oracle, detailed):
    """Eq. 8-9's masks for a face at yaw +35 and its symmetric view at -35: the original view weighs every face
    pixel 1; the symmetric view weighs 1 the texels only it sees (the far cheek of the original, on the other side
    of the UV layout), `overlap_weight` those both see, 0 off the face; eq. 5 counts each pixel by its weight."""
    from facehub.modeling.stylefaceuv.rendering import mirrored_yaw, photometric_loss, symmetric_view_weights

    lam = _turned(oracle, 2, 35.0)
    original, symmetric = detailed.render(lam), detailed.render(mirrored_yaw(lam))
    weights, symmetric_weights = symmetric_view_weights(original, symmetric, 64, overlap_weight=0.5)
    assert torch.equal(weights, original.mask)
    values = set(symmetric_weights.unique().tolist())
    assert values == {0.0, 0.5, 1.0}
    only_symmetric = (symmetric_weights == 1.0)[:, 0]
    seen_by_original = original.mask[:, 0] > 0
    u_only = float(symmetric.texel_uv[..., 0][only_symmetric].mean())
    u_original = float(original.texel_uv[..., 0][seen_by_original].mean())
    assert (u_only - 0.5) * (u_original - 0.5) < 0, (u_only, u_original)  # opposite halves of the face
    assert only_symmetric.float().sum() > 0.1 * (symmetric.mask > 0).float().sum()
    _, only = symmetric_view_weights(original, symmetric, 64, overlap_weight=0.0)
    assert set(only.unique().tolist()) == {0.0, 1.0}

    # eq. 5 counts a pixel by its weight: the same colour error costs half as much where the weight is 0.5
    base = symmetric.image.detach()
    half = torch.nonzero(symmetric_weights[0, 0] == 0.5)[0]
    full = torch.nonzero(symmetric_weights[0, 0] == 1.0)[0]
    off = torch.nonzero(symmetric_weights[0, 0] == 0.0)[0]
    costs = {}
    unchanged = float(photometric_loss(base[:1], base[:1], symmetric_weights[:1]))
    for name, (row, col) in (("half", half), ("full", full), ("off", off)):
        target = base.clone()
        target[0, :, row, col] += 0.3
        costs[name] = float(photometric_loss(base[:1], target[:1], symmetric_weights[:1])) - unchanged
    assert costs["off"] == 0.0
    assert costs["half"] == pytest.approx(0.5 * costs["full"], rel=1e-4) and costs["full"] > 0


def test_a_short_uv_generator_run_lowers_the_photometric_error(oracle, detailed):
    """Stage 3 in oracle mode: a small UV generator (a StyleGAN2 synthesis network writing 4 channels) reads the
    stylecode and learns diffuse and displacement maps whose renders match the 2D generator's images in both views
    (eq. 5, combined by eq. 8 with lambda_mv = 0.75); 30 steps take the held-out photometric error of both views
    below 70% of where it started (measured: 1.20 -> 0.58 and 0.73 -> 0.36)."""
    from facehub.modeling.stylegan2 import StyleGAN2Generator
    from facehub.trainers.stylefaceuv import uv_reconstruction_loss

    torch.manual_seed(0)
    generator = StyleGAN2Generator(resolution=32, latent_dim=32, mapping_layers=1, channels=[32, 32, 32, 16],
                                   image_channels=4)
    optimizer = torch.optim.Adam(generator.parameters(), lr=0.01, betas=(0.0, 0.99))
    held_out = oracle.sample(8, torch.Generator().manual_seed(9))

    def views(styles):
        mirrored = oracle.symmetric(styles)
        return (styles, oracle.coefficients(styles), oracle.images(styles), mirrored, oracle.coefficients(mirrored),
                oracle.images(mirrored))

    with torch.no_grad():
        _, before = uv_reconstruction_loss(detailed, generator, *views(held_out))
    draws = torch.Generator().manual_seed(1)
    for _ in range(30):
        loss, _ = uv_reconstruction_loss(detailed, generator, *views(oracle.sample(4, draws)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        _, after = uv_reconstruction_loss(detailed, generator, *views(held_out))
    for key in ("photometric", "photometric_symmetric"):
        assert after[key] < 0.7 * before[key], (before, after)


def _tiny_pipeline(f3d=None):
    from facehub.modeling.stylefaceuv import StyleFaceUVPipeline
    from facehub.modeling.stylegan2 import StyleGAN2Generator

    torch.manual_seed(0)
    image_generator = StyleGAN2Generator(resolution=32, latent_dim=32, mapping_layers=2, channels=[32, 32, 16, 16])
    uv_generator = StyleGAN2Generator(resolution=32, latent_dim=32, mapping_layers=1, channels=[32, 32, 16, 16],
                                      image_channels=4)
    f3d = f3d or StyleToCoefficients(style_dim=32, hidden_multipliers=[1, 1, 1])
    return StyleFaceUVPipeline(image_generator=image_generator, style_to_coefficients=f3d,
                               yaw_step=YawStepMapper(style_dim=32, num_hidden_layers=1), uv_generator=uv_generator)


def test_pipeline_draws_images_and_textured_faces_that_turn_and_export(f3d, tmp_path):
    """The contract of `StyleFaceUVPipeline` on a small untrained bundle: seeded images and faces, a saved bundle
    that loads back and draws the same, renders at a yaw (the face moves in the image), another expression or
    lighting, a GLB with the dense mesh and its texture; bad requests are refused."""
    import trimesh
    from PIL import Image

    from facehub.modeling.stylefaceuv import StyleFaceUVPipeline, TexturedFace

    pipe = _tiny_pipeline(f3d)
    out = pipe(num_images=2, generator=torch.Generator().manual_seed(0))
    assert len(out.images) == 2 and isinstance(out.images[0], Image.Image) and out.images[0].size == (32, 32)
    assert len(out.faces) == 2 and isinstance(out.faces[0], TexturedFace) and out.styles.shape == (2, 32)
    pipe.save_pretrained(tmp_path / "bundle")
    again = StyleFaceUVPipeline.from_pretrained(tmp_path / "bundle")
    second = again(num_images=2, generator=torch.Generator().manual_seed(0), output_type="np")
    assert np.array_equal(second.images[0], np.asarray(out.images[0]))
    face = second.faces[0]
    front, turned = np.asarray(face.render(yaw=0.0)), np.asarray(face.render(yaw=30.0))
    assert front.shape == (32, 32, 3) and np.abs(front.astype(int) - turned).mean() > 2.0
    lit = np.asarray(face.render(yaw=0.0, lighting=face.coefficients["lighting"] * 0.5))
    assert lit.mean() < front.mean()
    smiling = np.asarray(face.render(expression=torch.ones(1, 14)))
    assert np.abs(smiling.astype(int) - np.asarray(face.render())).mean() > 0.5
    path = face.export(tmp_path / "face.glb")
    mesh = trimesh.load(path, force="mesh")
    assert len(mesh.vertices) == face.renderer.num_vertices and len(mesh.faces) == len(face.triangles)
    assert mesh.visual.material.baseColorTexture.size == (32, 32)
    assert len(again.turn(second.styles, 20.0)) == 2
    with pytest.raises(ValueError, match="expected 1 to 16"):
        pipe(num_images=0)
    with pytest.raises(ValueError, match=r"\(N, 32\)"):
        pipe(styles=torch.zeros(2, 5))
    with pytest.raises(ValueError, match="degrees"):
        face.render(yaw=120.0)


@pytest.mark.slow
def test_training_in_oracle_mode_runs_the_three_stages_resumes_and_exports(tmp_path):
    """`facehub train stylefaceuv` in oracle mode (with withheld detail) through the shared loop: stages 1-2 fit and
    save F_3D and F_yaw, the UV generator's photometric error falls over 16 steps, a resumed run reuses the saved
    mappers and goes on to step 20, the export holds the three networks and a card, and `facehub eval stylefaceuv`
    reads it (its smallest run: 2 faces at yaw +-30)."""
    import json

    from facehub.modeling.stylegan2 import StyleGAN2Generator
    from facehub.trainers.run import main as train

    settings = ["--preset", "cpu-small", f"output_dir={tmp_path}", "report_to=none", "max_steps=16", "logging_steps=4",
                "checkpointing_steps=8", "sample_steps=16", "model.oracle={style_dim: 32, image_size: 64, detail: true}",
                "losses.f3d_pairs=2000", "losses.f3d_steps=600", "losses.svm_samples=10000", "losses.yaw_steps=300",
                "model.uv_channels=[32,32,32,16,16]"]
    assert train(settings, method="stylefaceuv") == 0
    logs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [log["step"] for log in logs] == [4, 8, 12, 16]
    assert logs[-1]["photometric"] < 0.9 * logs[0]["photometric"], logs
    assert "discriminator" in logs[0] and "r1" in logs[0]  # D learns every 5th step
    assert 0 < logs[0]["perceptual"] and 0 < logs[0]["perceptual_symmetric"]  # eq. 4 on dlib-resnet features
    saved = (tmp_path / "style_to_coefficients" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns
    assert (tmp_path / "samples" / "step-000016.png").is_file()

    resumed = [item.replace("max_steps=16", "max_steps=20") for item in settings] + ["resume=true"]
    assert train(resumed, method="stylefaceuv") == 0
    logs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert logs[-1]["step"] == 20
    assert (tmp_path / "style_to_coefficients" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns == saved
    export = tmp_path / "export"
    uv_generator = StyleGAN2Generator.from_pretrained(export)
    assert uv_generator.image_channels == 4
    f3d = StyleToCoefficients.from_pretrained(export / "style_to_coefficients")
    assert f3d.config.hidden_multipliers == [3, 2, 1]
    assert YawStepMapper.from_pretrained(export / "yaw_step").direction.norm() == pytest.approx(1.0, abs=1e-5)
    assert "oracle" in (export / "README.md").read_text()

    from facehub.apps.cli import main

    assert main(["eval", "stylefaceuv", "--model", f"tiny={export}", "--faces", "2", "--yaws", "30", "--out",
                 str(tmp_path / "eval")]) == 0
    rows = json.loads((tmp_path / "eval" / "results.json").read_text())["rows"]
    assert [row["name"] for row in rows] == ["tiny", "F_3D only"]
    assert rows[0]["displacement_error_mm"] >= 0 and rows[0]["zero_map_error_mm"] > 0
    assert 0 < rows[0]["l1"]["30"] < 128 and 0 <= rows[1]["nme"]["30"] < 50
    assert (tmp_path / "eval" / "by_yaw.png").is_file() and (tmp_path / "eval" / "sheet.png").is_file()


@pytest.mark.slow
def test_training_on_a_converted_stylegan2_exports_a_pipeline(tmp_path):
    """Backbone mode on the converted fixture checkpoint (any StyleGAN2 facehub can load): F_3D learns from what the
    face-fitting regressor reads on the backbone's images, the UV generator starts as the backbone's synthesis
    network with its ToRGB layers at zero (its maps start as the morphable model's face), and the export is a
    `StyleFaceUVPipeline` that draws the backbone's images and their textured faces."""
    from pathlib import Path

    from facehub.modeling.stylefaceuv import StyleFaceUVPipeline
    from facehub.modeling.stylegan2 import StyleGAN2Pipeline, convert_rosinality_checkpoint
    from facehub.trainers.run import main as train
    from facehub.trainers.stylefaceuv import _start_from_backbone, zero_uv_output

    backbone = tmp_path / "backbone"
    convert_rosinality_checkpoint(Path(__file__).parent / "data" / "stylegan2-rosinality" / "rosinality_tiny_64.pt",
                                  backbone, w_avg_samples=64)
    settings = ["--preset", "cpu-small", f"output_dir={tmp_path / 'run'}", "report_to=none", "max_steps=4",
                "logging_steps=2", "checkpointing_steps=4", "sample_steps=4", f"model.backbone={backbone}",
                "losses.f3d_pairs=64", "losses.f3d_steps=50", "losses.svm_samples=500", "losses.yaw_steps=50",
                "num_styles=16"]
    assert train(settings, method="stylefaceuv") == 0
    pipe = StyleFaceUVPipeline.from_pretrained(tmp_path / "run" / "export")
    original = StyleGAN2Pipeline.from_pretrained(backbone).image_generator
    assert torch.equal(pipe.image_generator.const, original.const)  # the backbone itself is bundled
    out = pipe(num_images=2, generator=torch.Generator().manual_seed(0), output_type="np")
    assert out.images[0].shape == (64, 64, 3) and len(out.faces) == 2
    assert np.asarray(out.faces[0].render(yaw=20.0)).shape == (64, 64, 3)

    from facehub.modeling.stylegan2 import StyleGAN2Generator as Generator

    fresh = Generator(resolution=64, latent_dim=original.latent_dim, mapping_layers=1,
                      channels=list(original.config.channels), image_channels=4)
    _start_from_backbone(fresh, original)
    zero_uv_output(fresh)
    assert torch.equal(fresh.convs[3].conv.weight, original.convs[3].conv.weight)
    with torch.no_grad():
        start = fresh(out.styles, input_is_w=True, noise_mode="const").images
    assert float(start.abs().max()) == 0.0  # the maps start as the morphable model's albedo, no displacement


def test_generate_tab_shows_a_generated_face_in_3d(f3d, tmp_path):
    """The Generate tab's 3D panel through the registry: a saved StyleFaceUV bundle in the demo's models folder draws
    a seed's faces, shows the chosen one beside its render at a yaw (another seed's expression changes it), and
    hands over a GLB; methods without 3D faces and bad requests become a status line."""
    import trimesh

    from facehub.apps.registry import DemoContext
    from facehub.apps.tabs.common import model_choices
    from facehub.apps.tabs.generate import run_face_3d
    from facehub.modeling.stylegan2 import convert_rosinality_checkpoint

    models = tmp_path / "models"
    _tiny_pipeline(f3d).save_pretrained(models / "tiny-sfuv")
    from pathlib import Path

    convert_rosinality_checkpoint(Path(__file__).parent / "data" / "stylegan2-rosinality" / "rosinality_tiny_64.pt",
                                  models / "tiny-stylegan2", w_avg_samples=64)
    ctx = DemoContext(device="cpu", models_dir=models)
    try:
        assert "tiny-sfuv" in model_choices(ctx, "stylefaceuv", "generation")
        picture, glb, status = run_face_3d(ctx, "stylefaceuv", "tiny-sfuv", 3, 1.0, which=2, yaw=30)
        assert picture.shape == (32, 64, 3) and "Face 2 of seed 3" in status and "yaw +30" in status, status
        mesh = trimesh.load(glb, force="mesh")
        assert len(mesh.vertices) > 4000
        again, _, _ = run_face_3d(ctx, "stylefaceuv", "tiny-sfuv", 3, 1.0, which=2, yaw=30)
        assert np.array_equal(again, picture)
        other, _, status = run_face_3d(ctx, "stylefaceuv", "tiny-sfuv", 3, 1.0, which=2, yaw=30, expression_seed=8)
        assert "Expression of seed 8" in status and not np.array_equal(other[:, 32:], picture[:, 32:])
        assert np.array_equal(other[:, :32], picture[:, :32])  # the generated image itself stays
        _, _, status = run_face_3d(ctx, "stylegan2", "tiny-stylegan2", 3, 1.0)
        assert "draws images only" in status
        _, _, status = run_face_3d(ctx, "stylefaceuv", "tiny-sfuv", 3, 1.0, which=0)
        assert "from 1 to 8" in status
    finally:
        ctx.close()


def test_train_help_lists_the_settings_and_a_run_needs_one_source(tmp_path, capsys):
    """`facehub train stylefaceuv --help` lists every key (it builds the default config, which has no source yet),
    and a run with neither a backbone nor an oracle, or with both, is one line."""
    from facehub.trainers.core.config import describe_config
    from facehub.trainers.run import main as train
    from facehub.trainers.stylefaceuv import StyleFaceUVTrainingConfig

    text = describe_config(StyleFaceUVTrainingConfig)
    assert "model.backbone" in text and "losses.multiview_weight" in text and "cpu-small:" in text
    assert train(["--preset", "cpu-small", f"output_dir={tmp_path}"], method="stylefaceuv") == 2
    assert "Set exactly one of `model.backbone`" in capsys.readouterr().err
    both = ["--preset", "cpu-small", f"output_dir={tmp_path}", "model.backbone=x", "model.oracle={style_dim: 32}"]
    assert train(both, method="stylefaceuv") == 2


def test_a_disco_facegan_bundle_is_a_backbone_drawn_through_its_factor_prior(tmp_path):
    """DiscoFaceGAN's generator is a StyleGAN2 whose z is the factor prior (seed 002, Sec. 3.1): as a StyleFaceUV
    backbone, one normal draw is decoded by the factor VAEs (not fed raw), so the backbone's image of a draw is the
    DiscoFaceGAN image of the factors decoded from it; the factor VAEs travel with the StyleFaceUV bundle, and its
    seeded draws are the backbone's. Any other bundle is refused by name."""
    from facehub.modeling.disco_facegan import DiscoFaceGANPipeline
    from facehub.modeling.disco_facegan.factors import factors_from_lambda
    from facehub.modeling.modeling_utils import CheckpointError
    from facehub.modeling.stylefaceuv import StyleFaceUVPipeline
    from facehub.modeling.stylefaceuv.backbone import load_backbone
    from facehub.modeling.stylegan2 import StyleGAN2Generator

    backbone = load_backbone("facehub/disco-facegan")
    vaes = backbone.factor_vaes
    assert backbone.latent_width == sum(vaes.latent_dims.values()) + 125 - sum(vaes.factor_dims.values())
    z = torch.randn(3, backbone.latent_width, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        mine = backbone.generator(backbone.styles(z), input_is_w=True, noise_mode="const").images
    lam, start = {}, 0
    for factor, width in vaes.latent_dims.items():
        lam[factor] = vaes.decode(factor, z[:, start:start + width])
        start += width
    disco = DiscoFaceGANPipeline.from_pretrained("facehub/disco-facegan")
    theirs = disco(factors=factors_from_lambda(lam, z[:, start:]), output_type="pt").images
    assert torch.allclose(mine, theirs, atol=1e-5)
    plain = torch.randn(3, 125, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():  # a plain StyleGAN2's draw (z fed raw) is another face
        raw = backbone.generator(plain, noise_mode="const").images
    assert float((raw - theirs).abs().mean()) > 0.05

    uv = StyleGAN2Generator(resolution=64, latent_dim=128, mapping_layers=1, channels=[32, 32, 32, 32, 32],
                            image_channels=4)
    StyleFaceUVPipeline(image_generator=backbone.generator,
                        style_to_coefficients=StyleToCoefficients(style_dim=128, hidden_multipliers=[1, 1, 1]),
                        yaw_step=YawStepMapper(style_dim=128), uv_generator=uv,
                        factor_vaes=vaes).save_pretrained(tmp_path / "bundle")
    pipe = StyleFaceUVPipeline.from_pretrained(tmp_path / "bundle")
    assert pipe.factor_vaes is not None
    draws = torch.randn(2, backbone.latent_width, generator=torch.Generator().manual_seed(9))
    assert torch.allclose(pipe.styles(2, generator=torch.Generator().manual_seed(9)), backbone.styles(draws))
    with pytest.raises(CheckpointError, match="cannot be a StyleFaceUV backbone.*saved by FaceReconstructionPipeline"):
        load_backbone("facehub/prn-dense")


def test_the_embedded_default_keeps_the_contract_and_turns_a_generated_face(tmp_path):
    """The issue's contract on `facehub/stylefaceuv` (no network): images, textured faces that render at any yaw and
    export to GLB; its UV maps bring the render nearer the StyleGAN2 image than the morphable albedo does; and the
    registry's rotation turns a face the backbone drew (upscaled into a photo) the way it is asked."""
    import trimesh
    from PIL import Image

    from facehub import methods
    from facehub.modeling.stylefaceuv import StyleFaceUVPipeline

    pipe = StyleFaceUVPipeline.from_pretrained("facehub/stylefaceuv")
    out = pipe(num_images=2, generator=torch.Generator().manual_seed(0))
    again = pipe(num_images=2, generator=torch.Generator().manual_seed(0), output_type="np")
    assert out.images[0].size == (64, 64) and np.array_equal(np.asarray(out.images[0]), again.images[0])
    face = out.faces[0]
    front, turned = np.asarray(face.render(yaw=0.0)), np.asarray(face.render(yaw=30.0, pitch=0.0))
    assert front.shape == (64, 64, 3) and np.abs(front.astype(int) - turned).mean() > 3
    scene = trimesh.load(face.export(tmp_path / "face.glb"))
    assert sum(len(g.vertices) for g in scene.geometry.values()) == len(face.vertices)

    renderer = pipe.face_renderer()  # the render at F_3D's own pose against the image, with and without the maps
    lam = pipe.style_to_coefficients(out.styles)
    with torch.no_grad():
        maps = renderer.maps(pipe.uv_generator(out.styles, input_is_w=True, noise_mode="const").images, lam)
        image = pipe.image_generator(out.styles, input_is_w=True, noise_mode="const").images.clamp(-1, 1)
        textured, plain = renderer.render(lam, *maps), renderer.render(lam)
    on_face = textured.mask[:, 0] > 0
    textured_l1 = float((textured.image - image).abs().mean(1)[on_face].mean() * 127.5)
    plain_l1 = float((plain.image - image).abs().mean(1)[on_face].mean() * 127.5)
    assert textured_l1 < 0.7 * plain_l1, (textured_l1, plain_l1)

    photo = np.asarray(out.images[0].resize((256, 256), Image.BICUBIC))
    photo = np.pad(photo, ((64, 64), (64, 64), (0, 0)), mode="edge")
    rotate = methods.load("stylefaceuv", "rotation")
    left, right = (rotate(photo, yaw=yaw, output_type="np") for yaw in (-20.0, 20.0))
    assert left.images[0].shape == photo.shape and left.requested_pose.yaw == -20.0
    assert right.achieved_pose.yaw - left.achieved_pose.yaw > 10.0, (left.achieved_pose, right.achieved_pose)
    assert np.array_equal(left.reconstructions, right.reconstructions)  # one embedding, whichever way it turns

    import json

    from facehub.trainers.evaluation.stylefaceuv import main as evaluate

    assert evaluate(["--model", "default=facehub/stylefaceuv", "--faces", "4", "--yaws", "30",
                     "--out", str(tmp_path / "eval")]) == 0
    ours, baseline = json.loads((tmp_path / "eval" / "results.json").read_text())["rows"]
    assert baseline["name"] == "default: F_3D only" and ours["image_l1"] < baseline["image_l1"]
    assert ours["turn_yaw_error"]["30"] < ours["unturned_yaw_error"]["30"]  # F_yaw turns towards the asked yaw
    assert (tmp_path / "eval" / "sheet.png").is_file()
