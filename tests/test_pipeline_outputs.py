"""The diffusers-style boundary every pipeline shares (modeling/pipeline_utils.py): one image or a list in,
``BaseOutput`` out with ``.images`` (PIL by default, RGB uint8 with ``output_type="np"``), ``Pose`` fields for
rotation, ``.reconstructions`` for PRN-Dense, and the deprecated ``.image`` alias.

Photos are the public-domain ones in tests/data/photos, shrunk so each call takes a fraction of a second.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from diffusers.utils import BaseOutput
from PIL import Image

from facehub.modeling.cyclegan import CycleGANGenerator, FaceRepairPipeline
from facehub.modeling.depthnet import (
    FaceFrontalizationPipeline,
    FaceRotationPipeline,
    FaceSwapPipeline,
    NoFaceFoundError,
    UnreachablePoseError,
)
from facehub.modeling.faces import ImageReadError, load_image
from facehub.modeling.pipeline_utils import Pose, as_image_list, convert_images
from facehub.modeling.prn_dense import (
    FaceMeshRotationPipeline,
    FaceReconstructionPipeline,
    FaceReconstructionPipelineOutput,
)

PHOTOS = Path(__file__).parent / "data" / "photos"


def small(name: str, width: int = 300) -> np.ndarray:
    image = load_image(PHOTOS / name)
    scale = width / image.shape[1]
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def obama():
    return small("obama.jpg")


@pytest.fixture(scope="module")
def biden():
    return small("biden.jpg")


@pytest.fixture(scope="module")
def rotate():
    return FaceRotationPipeline.from_pretrained("facehub/depthnet")


@pytest.fixture(scope="module")
def swap():
    return FaceSwapPipeline.from_pretrained("facehub/depthnet")


@pytest.fixture(scope="module")
def mesh_rotate():
    return FaceMeshRotationPipeline.from_pretrained("facehub/prn-dense")


# --- shared helpers ---------------------------------------------------------------------------------------------


def test_image_inputs_are_one_image_or_a_list(obama, tmp_path):
    path = tmp_path / "obama.png"
    Image.fromarray(obama).save(path)
    single, batched = as_image_list(path)
    assert not batched and len(single) == 1 and np.array_equal(single[0], obama)
    many, batched = as_image_list([obama, Image.fromarray(obama), str(path)])
    assert batched and len(many) == 3 and all(np.array_equal(m, obama) for m in many)
    stacked, batched = as_image_list(np.stack([obama, obama]))  # an (N, H, W, 3) array is a batch too
    assert batched and len(stacked) == 2
    with pytest.raises(ValueError, match="empty list"):
        as_image_list([])
    with pytest.raises(ImageReadError, match=r"image\[1\]: .*does not exist"):
        as_image_list([obama, tmp_path / "missing.jpg"])


def test_output_types_and_pose():
    arrays = [np.full((4, 5, 3), 7, np.uint8), np.zeros((2, 3, 3), np.uint8)]
    pil = convert_images(arrays)
    assert [type(p) for p in pil] == [Image.Image, Image.Image] and pil[0].size == (5, 4)
    assert np.array_equal(np.asarray(pil[0]), arrays[0])
    assert convert_images(arrays, "np")[1].shape == (2, 3, 3)
    with pytest.raises(ValueError, match=r"'pt' for `output_type`; use one of 'pil', 'np'"):
        convert_images(arrays, "pt")
    pose = Pose.of(np.array([10.0, -5.0, 2.5]))
    assert pose == (10.0, -5.0, 2.5) and pose.yaw == 10.0 and type(pose.roll) is float
    assert str(pose) == "yaw +10.0, pitch -5.0, roll +2.5"


# --- DepthNet ---------------------------------------------------------------------------------------------------


def test_rotation_output_is_a_base_output_with_pil_images_and_poses(rotate, obama):
    out = rotate(obama, yaw=20.0, pitch=0.0)
    assert isinstance(out, BaseOutput)
    [image] = out.images
    assert isinstance(image, Image.Image) and image.size == (obama.shape[1], obama.shape[0])
    assert isinstance(out.requested_pose, Pose) and isinstance(out.achieved_pose, Pose)
    assert out.requested_pose.yaw == 20.0 and out.requested_pose.roll == pytest.approx(out.face.pose[2])
    # Measured on the result by the face analyzer: the yaw moved the requested way from the start.
    assert out.achieved_pose == tuple(out.output_face.pose)
    assert out.achieved_pose.yaw - out.face.pose[0] > 8.0
    assert out.to_tuple()[0] is out.images
    # Without a pitch the face keeps its own (it is turned, not nodded); pitch=0.0 levels it.
    kept = rotate(obama, yaw=20.0, return_dict=False)[1]
    assert kept == pytest.approx((20.0, out.face.pose[1], out.face.pose[2])) and out.face.pose[1] != 0.0
    # The deprecated aliases still answer, with a FutureWarning.
    with pytest.warns(FutureWarning, match=r"\.images\[0\]"):
        legacy = out.image
    assert legacy.dtype == np.uint8 and np.array_equal(legacy, np.asarray(image))
    with pytest.warns(FutureWarning, match="achieved_pose"):
        assert out.measured_pose == out.achieved_pose
    assert rotate(obama, yaw=20.0, measure=False).achieved_pose is None


def test_rotation_takes_a_list_and_returns_lists_one_per_image(rotate, obama, biden):
    out = rotate([obama, biden], yaw=15.0, output_type="np")
    assert len(out.images) == 2 and out.images[0].shape == obama.shape and out.images[1].shape == biden.shape
    assert all(image.dtype == np.uint8 for image in out.images)
    assert isinstance(out.requested_pose, list) and [p.yaw for p in out.requested_pose] == [15.0, 15.0]
    assert len(out.achieved_pose) == 2 and all(isinstance(p, Pose) for p in out.achieved_pose)
    assert len(out.face) == len(out.mask) == len(out.num_faces) == 2
    # Each entry is what the single call gives.
    alone = rotate(biden, yaw=15.0, output_type="np")
    np.testing.assert_array_equal(out.images[1], alone.images[0])
    assert out.achieved_pose[1] == alone.achieved_pose
    # A target photo per input, or one for all.
    copied = rotate([obama, biden], target_image=biden)
    assert copied.requested_pose[0] == pytest.approx(copied.target_face[0].pose)
    with pytest.raises(ValueError, match="`target_image` has 3 images but there are 2 inputs"):
        rotate([obama, biden], target_image=[biden] * 3)


def test_frontalization_and_errors_keep_their_types(obama):
    front = FaceFrontalizationPipeline.from_pretrained("facehub/depthnet")
    out = front([obama], output_type="np")
    assert out.requested_pose == [(0.0, 0.0, 0.0)] and isinstance(out.images[0], np.ndarray)
    with pytest.raises(UnreachablePoseError):
        front.check_reachable(120.0, 0.0, None)
    with pytest.raises(ValueError, match="`output_type`"):
        front(obama, output_type="latent")


def test_swap_takes_pairs_or_one_source_over_many_targets(swap, obama, biden):
    one = swap(obama, biden, output_type="np")
    assert len(one.images) == 1 and one.images[0].shape == biden.shape and one.mask.shape == biden.shape[:2]
    pairs = swap([obama, biden], [biden, obama], output_type="np")
    assert len(pairs.images) == 2 and pairs.images[1].shape == obama.shape and len(pairs.mask) == 2
    np.testing.assert_array_equal(pairs.images[0], one.images[0])
    spread = swap(obama, [biden, biden])
    assert len(spread.images) == 2 and all(isinstance(i, Image.Image) for i in spread.images)
    np.testing.assert_array_equal(np.asarray(spread.images[1]), one.images[0])
    assert [n.target for n in spread.num_faces] == [1, 1]
    with pytest.raises(ValueError, match="`source_image` has 2 images and `target_image` has 3; pass lists of"):
        swap([obama, biden], [biden] * 3)
    with pytest.warns(FutureWarning):
        np.testing.assert_array_equal(one.image, one.images[0])


# --- PRN-Dense --------------------------------------------------------------------------------------------------


def test_reconstruction_returns_an_output_object_for_one_image_or_a_list(mesh_rotate, obama):
    pipe = FaceReconstructionPipeline(prn=mesh_rotate.prn)
    out = pipe(obama, compute_depth=False)
    assert isinstance(out, FaceReconstructionPipelineOutput) and len(out.reconstructions) == 1
    cat = small("chelsea.jpg")
    batch = pipe([obama, cat], compute_depth=False).reconstructions
    assert [len(recs) for recs in batch] == [1, 0]
    np.testing.assert_allclose(batch[0][0].vertices, out.reconstructions[0].vertices, atol=1e-5)


def test_mesh_rotation_turns_the_face_and_measures_the_result(mesh_rotate, obama):
    out = mesh_rotate(obama, yaw=30.0, pitch=0.0, output_type="np")
    [image] = out.images
    assert image.shape == obama.shape and image.dtype == np.uint8
    start = out.face.pose[0]
    assert out.requested_pose == pytest.approx((30.0, 0.0, out.reconstruction.pose[2]))
    assert isinstance(out.achieved_pose, Pose)
    # The whole head is re-rendered and one corrective re-render aims the measured yaw at the request (measured: about
    # +2 -> +29, geometry turned to about +50); the photo outside the head's region is unchanged.
    print(f"mesh rotation: yaw {start:.1f} -> requested 30 -> measured {out.achieved_pose.yaw:.1f} "
          f"(rendered {out.rendered_pose.yaw:.1f})")
    assert abs(out.achieved_pose.yaw - 30.0) < 8.0 and out.folded_fraction == 0.0
    x0, y0, x1, y1 = out.region
    outside = np.ones(obama.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert outside.any() and np.array_equal(image[outside], obama[outside])
    assert not np.array_equal(image[y0:y1, x0:x1], obama[y0:y1, x0:x1])
    with pytest.raises(UnreachablePoseError, match="yaw=95 degrees cannot be reached"):
        mesh_rotate(obama, yaw=95.0)
    copied = mesh_rotate(obama, target_image=small("obama2.jpg"), measure=False)
    assert copied.requested_pose == pytest.approx(copied.target_face.pose) and copied.achieved_pose is None
    assert copied.requested_pose.yaw < -10.0  # obama2 looks 14 degrees to the left
    with pytest.raises(NoFaceFoundError, match="No face was found in the photo"):
        mesh_rotate(small("chelsea.jpg"), yaw=10.0)


def test_mesh_rotation_shares_the_prn_dense_bundle(mesh_rotate, tmp_path):
    mesh_rotate.save_pretrained(tmp_path / "rotation")
    reconstruction = FaceReconstructionPipeline.from_pretrained(tmp_path / "rotation")
    FaceReconstructionPipeline(prn=mesh_rotate.prn).save_pretrained(tmp_path / "reconstruction")
    rotation = FaceMeshRotationPipeline.from_pretrained(tmp_path / "reconstruction")
    for loaded in (reconstruction, rotation):
        for name, weights in mesh_rotate.prn.state_dict().items():
            assert np.array_equal(loaded.prn.state_dict()[name].numpy(), weights.numpy())


# --- CycleGAN repair --------------------------------------------------------------------------------------------


def test_repair_pipeline_takes_a_list_with_one_mask_each(obama):
    import torch

    torch.manual_seed(0)
    pipe = FaceRepairPipeline(repair=CycleGANGenerator(base_channels=8, num_residual_blocks=1, image_size=32))
    mask = np.zeros(obama.shape[:2], bool)
    mask[100:200, 100:200] = True
    one = pipe(obama, mask, output_type="np")
    both = pipe([obama, obama[:, ::-1]], [mask, mask[:, ::-1]], output_type="np")
    assert len(both.images) == 2 and len(both.box) == 2 and both.blend_weight[0].shape == mask.shape
    np.testing.assert_array_equal(both.images[0], one.images[0])
    np.testing.assert_array_equal(both.blend_weight[0], one.blend_weight)
    assert not np.array_equal(one.images[0], obama)


def test_the_achieved_pose_is_measured_around_the_face_when_the_whole_result_hides_it():
    """``measure_pose``: a portrait pasted small into a large canvas (the face about a fortieth of its height, as in
    a full-length photo) is not found by the analyzer on the whole canvas, so the measurement looks again around the
    expected face box. The face it finds there is returned in the canvas's pixels: its landmarks land where the
    portrait's own landmarks were pasted (within 2% of the face size) and its pose is the portrait's (within 2
    degrees)."""
    from facehub.modeling.faces import FaceAnalyzer
    from facehub.modeling.pipeline_utils import measure_pose

    analyzer = FaceAnalyzer(compute_embedding=False)
    portrait = cv2.resize(load_image(PHOTOS / "obama.jpg"), None, fx=0.4, fy=0.4, interpolation=cv2.INTER_AREA)
    (own,) = analyzer(portrait)
    canvas = np.full((5000, 3000, 3), 90, np.uint8)
    offset = np.array([1500, 300])
    canvas[offset[1]:offset[1] + portrait.shape[0], offset[0]:offset[0] + portrait.shape[1]] = portrait
    assert analyzer(canvas) == []
    box = tuple(np.asarray(own.bbox) + np.r_[offset, offset])
    face, pose = measure_pose(analyzer, canvas, box)
    assert face is not None
    size = float(np.sqrt(np.prod(np.ptp(own.landmarks68, axis=0))))
    placed = np.linalg.norm(face.landmarks68 - (own.landmarks68 + offset), axis=1).mean() / size
    assert placed < 0.02, placed
    np.testing.assert_allclose(face.head_pose.transform.translation[:2],  # the head pose's similarity moved too
                               own.head_pose.transform.translation[:2] + offset, atol=0.02 * size)
    np.testing.assert_allclose(pose, own.pose, atol=2.0)
    # Nothing there, nothing measured.
    assert measure_pose(analyzer, np.full_like(canvas, 90), box) == (None, None)
