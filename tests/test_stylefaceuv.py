"""StyleFaceUV (seed 004), Sec. 3.2 in oracle mode: F_3D learns the coefficients of stylecodes, the linear SVM finds
a known direction, and F_yaw turns a stylecode's face to a requested yaw without changing the person. The oracle
(the synthetic world playing the 2D generator) gives exact coefficients and the true yaw direction."""

from __future__ import annotations

import math

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
