"""DepthNet's pieces beyond the solver: baselines, metrics, the depth discriminator and the case-A network."""

import numpy as np
import pytest
import torch

from facehub.modeling.depthnet import DEPTHNET_PRESETS, DepthNetModel
from facehub.modeling.depthnet.baselines import (
    default_template,
    keypoint_template,
    register_affine_2d,
    register_with_template,
    template_depths,
)
from facehub.modeling.depthnet.modeling_depth_discriminator import DepthDiscriminatorModel
from facehub.modeling.geometry.landmark_metrics import (
    depth_correlation,
    interocular_distance,
    keypoint_mse,
    keypoint_mse_norm,
    nme,
)
from facehub.modeling.geometry.rotations import rotation_matrix
from facehub.trainers.data.keypoint_pairs import MorphableKeypointPairs


def test_affine_2d_baseline_is_exact_for_2d_affine_maps_and_wrong_for_rotations_in_depth():
    rng = np.random.default_rng(0)
    source = rng.uniform(50, 150, size=(68, 2))
    target = source @ np.array([[1.1, 0.2], [-0.3, 0.9]]).T + [5.0, -7.0]
    np.testing.assert_allclose(register_affine_2d(source, target), target, atol=1e-9)
    template = default_template() * 50
    views = [template @ rotation_matrix(yaw, 0, 0).T for yaw in (-40.0, 40.0)]
    registered = register_affine_2d(views[0][:, :2], views[1][:, :2])
    assert keypoint_mse_norm(registered, views[1][:, :2]) > 0.01  # an 80-degree turn is no 2D affine


def test_template_depths_recover_a_rotated_template_and_register_it_exactly():
    template = default_template()
    assert template.shape == (68, 3)
    np.testing.assert_allclose(template.mean(axis=0), 0, atol=1e-9)
    assert np.sqrt((template**2).sum(1).mean()) == pytest.approx(1.0)
    # The nose tip (iBUG 31, 0-based 30) is nearer the camera than the outer eye corners in the house frame.
    assert template[30, 2] > template[36, 2] and template[30, 2] > template[45, 2]
    for yaw, pitch, roll in [(0, 0, 0), (35, -10, 5), (-60, 15, -10)]:
        view = 80 * template @ rotation_matrix(yaw, pitch, roll).T + [128, 120, 0]
        depths = template_depths(view[:, :2], template)
        np.testing.assert_allclose(depths - depths.mean(), view[:, 2] - view[:, 2].mean(), atol=1e-6)
    source = 80 * template @ rotation_matrix(30, 0, 0).T
    target = 70 * template @ rotation_matrix(-45, 10, 0).T + [10, 20, 0]
    np.testing.assert_allclose(register_with_template(source[:, :2], target[:, :2], template), target[:, :2],
                               atol=1e-6)
    # The Procrustes template of rotated, scaled copies is the shape itself (up to the similarity).
    mean = keypoint_template([template, 3 * template @ rotation_matrix(20, 5, 0).T + 1])
    np.testing.assert_allclose(np.abs(np.linalg.svd(mean)[1]), np.abs(np.linalg.svd(template)[1]), rtol=1e-6)


def test_metrics_on_hand_made_cases():
    target = np.zeros((68, 2))
    target[36], target[45] = [0.0, 0.0], [40.0, 0.0]
    assert interocular_distance(target) == pytest.approx(40.0)
    predicted = target + [3.0, 4.0]  # every point 5 px off
    assert keypoint_mse(predicted, target) == pytest.approx(25.0)
    assert keypoint_mse_norm(predicted, target) == pytest.approx(25.0 / 1600.0)
    box = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 25.0], [100.0, 25.0]])  # sqrt(100 * 25) = 50
    assert nme(box + [0.0, 5.0], box) == pytest.approx(0.1)

    rng = np.random.default_rng(1)
    truth = rng.normal(size=(200, 68))
    # Per-face scale and offset are not the method's business; a global sign flip is.
    assert depth_correlation(3 * truth + rng.normal(size=(200, 1)), truth) == pytest.approx(1.0)
    assert depth_correlation(-truth, truth) == pytest.approx(-1.0)
    assert abs(depth_correlation(rng.normal(size=(200, 68)), truth)) < 0.05
    with pytest.raises(ValueError, match="same shape"):
        depth_correlation(truth[:, :10], truth)


def test_morphable_pairs_are_deterministic_faces_with_exact_depths():
    pairs = MorphableKeypointPairs(num_pairs=10, seed=3, same_expression=True, noise=0.0)
    item = pairs[4]
    assert all(torch.equal(v, pairs[4][k]) for k, v in item.items())
    assert not torch.equal(item["source_keypoints"], MorphableKeypointPairs(10, seed=4)[4]["source_keypoints"])
    # Same identity and expression: the two views are one rigid shape, so true depths register exactly (eq. 3).
    from facehub.modeling.geometry.affine import apply_affine_3d_to_2d, solve_affine_3d_to_2d

    points = torch.cat([item["source_keypoints"], item["source_depths"][:, None]], dim=1).double()
    affine = solve_affine_3d_to_2d(points, item["target_keypoints"].double())
    assert keypoint_mse(apply_affine_3d_to_2d(affine, points).numpy(), item["target_keypoints"].numpy()) < 1e-6
    # The face is upright at pose (0, 0, 0): chin (iBUG 9) below the nose tip (31), in pixels y down.
    frontal = MorphableKeypointPairs(1, seed=0, max_yaw=0, max_pitch=0, max_roll=0, noise=0.0)[0]
    assert frontal["source_keypoints"][8, 1] > frontal["source_keypoints"][30, 1]
    assert frontal["source_depths"][30] > frontal["source_depths"][0]  # nose tip nearer than the jaw's end
    with pytest.raises(IndexError):
        pairs[10]


def test_morphable_pairs_in_a_batch_are_the_items_drawn_alone():
    """A DataLoader fetches a batch at once (``__getitems__``); each item stays what it is alone, whatever batch it is
    drawn in (processes and epochs see different batches)."""
    pairs = MorphableKeypointPairs(num_pairs=50, seed=1)
    batch = pairs.__getitems__([7, 3, 42, 3])
    for index, item in zip([7, 3, 42, 3], batch, strict=True):
        alone = pairs[index]
        assert all(torch.equal(value, alone[key]) for key, value in item.items())
    assert not torch.equal(batch[0]["source_keypoints"], batch[1]["source_keypoints"])
    loader = torch.utils.data.DataLoader(pairs, batch_size=4, sampler=[42, 3, 3, 7])
    assert torch.equal(next(iter(loader))["target_depths"][0], pairs[42]["target_depths"])
    with pytest.raises(IndexError):
        pairs.__getitems__([1, 50])


def test_depth_discriminator_sees_only_what_registration_cannot_fix():
    torch.manual_seed(0)
    disc = DepthDiscriminatorModel(hidden_sizes=(32,)).eval()
    keypoints, depths = torch.rand(5, 68, 2) * 100, torch.rand(5, 68) * 30
    logits = disc(keypoints, depths).logits
    assert logits.shape == (5,)
    # Moving and scaling the face (x, y and z together) or shifting the depths leaves the decision unchanged...
    moved = disc(2 * keypoints + 50, 2 * depths + 7).logits
    torch.testing.assert_close(moved, logits, atol=1e-5, rtol=1e-5)
    # ... but a change of depth shape does not.
    assert not torch.allclose(disc(keypoints, depths.flip(-1)).logits, logits, atol=1e-3)
    with pytest.raises(ValueError, match=r"\(B, 68\) depths"):
        disc(keypoints, depths[:, :10])


def test_case_a_siamese_network_reads_both_crops():
    torch.manual_seed(0)
    model = DepthNetModel(**DEPTHNET_PRESETS["cpu-small-siamese"]).eval()
    assert model.uses_images and not DepthNetModel(hidden_sizes=(8,)).uses_images
    source, target = torch.rand(2, 68, 2) * 100, torch.rand(2, 68, 2) * 100
    crops = torch.rand(2, 3, 32, 32) * 2 - 1
    depths = model(source, target, crops, crops).depths
    assert depths.shape == (2, 68)
    assert not torch.allclose(model(source, target, crops, -crops).depths, depths)  # the target crop matters
    with pytest.raises(ValueError, match="case A"):
        model(source, target)
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\)"):
        model(source, target, torch.rand(2, 3, 64, 64), crops)
    with pytest.raises(ValueError, match="image_size"):
        DepthNetModel(image_size=8, image_channels=(16, 32, 64))
