"""Synthetic world v2: controlled renders of one identity, their exact flow, and variation outside the prior."""

import hashlib

import numpy as np
import pytest
import torch

from facehub.modeling.geometry.rotations import rotation_matrix
from facehub.trainers.data.synthetic_variation import BACKGROUND, FACE, GLASSES, HAIR, model_span, v2_features
from facehub.trainers.data.synthetic_world import SyntheticFaceWorld, SyntheticWorldConfig

SIZE = 64


#: Float geometry of a row whose last bits follow the CPU's BLAS code path (MKL rounds differently on an AVX-512 Xeon
#: than on the machines the digests were first taken on): compared through :func:`geometry_fingerprint` instead.
GEOMETRY_KEYS = ("dense_landmarks", "depth", "landmarks68", "landmarks68_3d", "uv_position_map")


def digest(row: dict, leave_out: tuple[str, ...] = ()) -> str:
    """sha256 over every field of a row but ``leave_out``: arrays by dtype, shape and bytes, everything else by
    repr."""
    h = hashlib.sha256()
    for key in sorted(set(row) - set(leave_out)):
        value = row[key]
        h.update(key.encode())
        if isinstance(value, np.ndarray):
            h.update(str(value.dtype).encode())
            h.update(str(value.shape).encode())
            h.update(np.ascontiguousarray(value).tobytes())
        else:
            h.update(repr(value).encode())
    return h.hexdigest()


def geometry_fingerprint(row: dict) -> dict[str, tuple[tuple[int, ...], float, float]]:
    """Per :data:`GEOMETRY_KEYS` field: its shape, the mean of its values and their mean weighted by ``cos(i)``.
    Different BLAS paths move these by under 1e-5 (float16 depth included); one of the 68 landmarks moved by 0.1 px
    along x moves ``landmarks68``'s mean by 7e-4."""
    prints = {}
    for key in GEOMETRY_KEYS:
        values = np.asarray(row[key], np.float64)
        flat = values.ravel()
        prints[key] = (values.shape, float(flat.mean()), float((flat * np.cos(np.arange(flat.size))).mean()))
    return prints


def test_old_rows_are_byte_for_byte_unchanged():
    """Digests of rows rendered before v2 existed: with every v2 option off a row must not change (the PRN-Dense
    trainer, the DepthNet pairs and `facehub prepare --synthetic` read these rows). The ``pose`` column alone has
    changed since: it holds the head pose of the model's rotation (the FaceAnalyzer's frame,
    ``MorphableFaceModel.head_pose``), not the rotation's own angles, which are those the rows were drawn with.
    The digests changed once more when renders that need no gradient moved from PyTorch3D's rasteriser to the
    z-buffer (same triangle at every pixel, test_render.py): 5 and 2 image values moved by one level, and 3 and 1
    depth values by float32 rounding (under 0.04 px). They changed again when the 68 landmarks' jaw rows moved along
    the face oval (landmarks68.JAW_ON_FACE_OVAL): only ``landmarks68`` and ``landmarks68_3d`` differ, and the old
    digests come back with the old rows in the model.

    Every field but the float geometry (:data:`GEOMETRY_KEYS`) is compared bit for bit; the geometry's last bits follow
    the machine's BLAS code path (on an AVX-512 Xeon they differ from those of the machines where the digests were
    taken, which MKL's AVX path, ``MKL_CBWR=AVX``, reproduces: there the whole rows' digests were
    4472e566... and fa18a9db...), so it is compared by :func:`geometry_fingerprint` to 1e-4."""
    small = SyntheticFaceWorld(SyntheticWorldConfig(num_identities=2, views_per_identity=2, image_size=64, uv_size=32,
                                                    seed=1))
    assert not small.config.variation
    default = SyntheticFaceWorld()
    drawn = {"small": [8.621389811805837, -17.237782295565818, -13.28910630262586],  # the rows' old pose column
             "default": [-24.20788107270416, 8.924357881847333, -8.78634996150603]}
    expected = {
        "small": ("77ddfc1191541aac8355047e6aa5a13996017c5deda42d2044fa189e3838bb80",
                  {"dense_landmarks": ((468, 3), 27.75057, -0.15934), "depth": ((64, 64), 6.28610, -0.03011),
                   "landmarks68": ((68, 2), 31.57747, -0.04122), "landmarks68_3d": ((68, 3), 27.63723, 0.04182),
                   "uv_position_map": ((32, 32, 3), 15.43083, -0.02298)}),
        "default": ("3f7cfa5b0697aea15df2cd6b1f396cc1876a257498b0bd3e4869cdab701cbc35",
                    {"dense_landmarks": ((468, 3), 57.88785, -0.27658), "depth": ((128, 128), 11.03451, -0.00244),
                     "landmarks68": ((68, 2), 66.05929, 0.19966), "landmarks68_3d": ((68, 3), 58.98438, 0.25449),
                     "uv_position_map": ((64, 64, 3), 30.00714, -0.00636)}),
    }
    for name, row in (("small", small[3]), ("default", default[0])):
        pose = row.pop("pose")
        rest, geometry = expected[name]
        assert digest(row, leave_out=GEOMETRY_KEYS) == rest
        for key, (shape, mean, weighted) in geometry_fingerprint(row).items():
            assert shape == geometry[key][0], (name, key)
            np.testing.assert_allclose((mean, weighted), geometry[key][1:], atol=1e-4, err_msg=f"{name} {key}")
        np.testing.assert_allclose(small.model.rotation_for_head_pose(pose), drawn[name], atol=1e-9)
        np.testing.assert_allclose(pose, small.model.head_pose(drawn[name]), atol=1e-12)


@pytest.fixture(scope="module")
def world():
    return SyntheticFaceWorld(SyntheticWorldConfig(image_size=SIZE, seed=4, fine_detail=0.3))


def _roll(points, degrees):
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    return points @ np.array([[c, -s], [s, c]]).T


def test_flow_of_an_in_plane_roll_is_the_rotation_about_the_centre(world):
    a = world.render_face(2, pose=(0, 0, 10))
    b = world.render_face(2, pose=(0, 0, -15))
    flow, valid = world.flow(a, b)
    shown = a["segmentation"] == FACE
    assert shown.sum() > 800 and valid.sum() >= 0.95 * shown.sum() and not (valid & ~shown).any()
    rows, cols = np.nonzero(valid)
    p = np.stack([cols + 0.5, rows + 0.5], axis=1)
    centre = np.array(a["center"])
    expected = _roll(p - centre, -25.0) + centre - p  # R_b R_a^T = Rz(-25 degrees) about the face's centre
    np.testing.assert_allclose(flow[rows, cols], expected, atol=2e-3)
    assert np.abs(expected).max() > 10  # a real motion, not a near-zero one
    assert (flow[~valid] == 0).all()


def test_flow_of_a_translation_is_the_shift(world):
    a = world.render_face(1, pose=(20, -10, 5), center=(31.0, 33.0))
    b = world.render_face(1, pose=(20, -10, 5), center=(35.5, 30.25))
    flow, valid = world.flow(a, b)
    assert valid.sum() >= 0.97 * (a["segmentation"] == FACE).sum()
    np.testing.assert_allclose(flow[valid], np.tile([4.5, -2.75], (valid.sum(), 1)), atol=1e-3)


def test_flow_marks_points_that_turn_away_and_carries_the_texture(world):
    # a turn about the model's own vertical axis (head poses are the model's rotation times its rest pose)
    a = world.render_face(3, pose=world.model.head_pose((0, 0, 0)))
    b = world.render_face(3, pose=world.model.head_pose((65, 0, 0)))
    flow, valid = world.flow(a, b)
    shown = a["segmentation"] == FACE
    centre_x = a["center"][0]
    cols = np.arange(SIZE)[None].repeat(SIZE, 0) + 0.5
    # yaw > 0 turns the face to the image's right: the image-right cheek goes behind, the left one stays in view
    right, left = shown & (cols > centre_x + 8), shown & (cols < centre_x - 8)
    assert 1 - valid[right].mean() > 0.3, valid[right].mean()
    assert valid[left].mean() > 0.9
    # colour constancy (ambient light only: the image is the albedo, with fine detail): A's pixel equals B sampled
    # where the flow says, far better than B at the same place
    rows, cols_ = np.nonzero(valid)
    target = torch.from_numpy(np.stack([cols_ + 0.5, rows + 0.5], 1) + flow[rows, cols_]).float()
    grid = (target / SIZE * 2 - 1)[None, None]
    image_b = torch.from_numpy(b["image"]).permute(2, 0, 1)[None].float()
    sampled = torch.nn.functional.grid_sample(image_b, grid, align_corners=False)[0, :, 0].T.numpy()
    error = np.abs(sampled - a["image"][rows, cols_]).mean()
    unmoved = np.abs(b["image"][rows, cols_].astype(float) - a["image"][rows, cols_]).mean()
    assert error < 0.35 * unmoved and error < 12, (error, unmoved)


def test_rerender_is_pixel_identical_and_only_the_chosen_factor_changes(world):
    a = world.render_face(0, pose=(15, 5, -5))
    again = SyntheticFaceWorld(world.config).render_face(0, pose=(15, 5, -5))
    for key in ("image", "segmentation", "depth", "face_index", "dense_landmarks"):
        np.testing.assert_array_equal(a[key], again[key])
    small = world.render_face(0, pose=(15, 5, -5), image_size=48)  # the same face, scaled about the image centre
    assert small["image"].shape == (48, 48, 3)
    np.testing.assert_allclose(small["landmarks68"] - 24, 0.75 * (a["landmarks68"] - 32), atol=1e-3)
    smiling = world.render_face(0, pose=(15, 5, -5), expression=np.eye(world.model.num_expression)[0] * 2)
    assert smiling["shape_coefficients"] == a["shape_coefficients"]
    assert smiling["expression_coefficients"][0] == 2.0 and not np.array_equal(smiling["image"], a["image"])
    lit = np.zeros((3, 9))
    lit[:, 0], lit[:, 3] = 1.0 / 0.886227, 0.3  # ambient plus light from the image's right
    relit = world.render_face(0, pose=(15, 5, -5), lighting=lit)
    np.testing.assert_array_equal(relit["segmentation"], a["segmentation"])  # geometry untouched
    np.testing.assert_array_equal(relit["dense_landmarks"], a["dense_landmarks"])
    face = a["segmentation"] == FACE
    assert not np.array_equal(relit["image"][face], a["image"][face])
    np.testing.assert_array_equal(relit["image"][~face], a["image"][~face])  # same backdrop


def test_withheld_deformation_is_outside_the_prior():
    world = SyntheticFaceWorld(SyntheticWorldConfig(image_size=SIZE, seed=2, withheld_scale=0.03, prior_modes=10))
    prior = world.prior_model()
    assert prior.num_identity == 10 and world.model.num_identity == 40
    offsets = world.withheld_offsets(5)
    rms = np.sqrt(np.mean(np.sum(offsets**2, axis=1)))
    assert rms == pytest.approx(0.03 * np.ptp(world.model.mean_shape[:, 0].numpy()), rel=1e-6)
    span = model_span(prior)  # prior identity modes, expressions, scale, rigid motions
    residual = offsets.ravel() - span @ (span.T @ offsets.ravel())
    assert np.linalg.norm(residual) > 0.999 * np.linalg.norm(offsets)
    # the withheld identity modes: shapes use all 40, the prior's 10 cannot express the other 30
    shape, _ = world.identity_coefficients(5)
    tail = torch.einsum("k,kvd->vd", shape[0, 10:], world.model.id_basis[10:]).double().numpy().ravel()
    tail_residual = tail - span @ (span.T @ tail)
    assert np.linalg.norm(tail_residual) > 0.3 * np.linalg.norm(tail)
    # the rendered mesh: the best fit of the full model (every mode, any similarity) leaves the deformation behind,
    # while without it the same fit is exact
    full_span = model_span(world.model)
    for scale, floor in ((0.03, 0.9), (0.0, None)):
        w = SyntheticFaceWorld(SyntheticWorldConfig(image_size=SIZE, seed=2, withheld_scale=scale))
        row = w.render_face(5, pose=w.model.head_pose((0, 0, 0)))  # the model at rest
        model_frame = (row["vertices"] - [*row["center"], 0.0]) / row["scale"]
        model_frame -= model_frame.mean(axis=0)
        flat = model_frame.ravel()
        left = np.linalg.norm(flat - full_span @ (full_span.T @ flat)) / np.sqrt(len(model_frame))
        if floor is None:
            assert left < 1e-3
        else:
            assert left > floor * 0.03 * np.ptp(w.model.mean_shape[:, 0].numpy())
            assert row["prior_modes"] == 40
            np.testing.assert_allclose(row["withheld_offsets"], w.withheld_offsets(5), atol=1e-5)


def test_glasses_occlude_the_eyes_and_are_z_buffered():
    plain = SyntheticFaceWorld(SyntheticWorldConfig(image_size=SIZE, seed=6))
    world = SyntheticFaceWorld(SyntheticWorldConfig(image_size=SIZE, seed=6, glasses=1.0))
    for pose in ((0, 0, 0), (25, 10, -8), (-35, -5, 5)):
        row, bare = world.render_face(0, pose=pose), plain.render_face(0, pose=pose)
        assert row["has_glasses"]
        eyes = np.floor(row["landmarks68"][36:48]).astype(int)
        hidden = row["segmentation"][eyes[:, 1], eyes[:, 0]] == GLASSES
        if pose[0] == 0:
            assert hidden.all(), hidden
        else:  # the eye nearer the camera stays behind its lens; the far one may turn behind the nose
            near = hidden[:6] if pose[0] > 0 else hidden[6:]
            assert near.mean() >= 5 / 6, hidden
        # without glasses the same pixels show the eyes' surroundings (face, or the backdrop through the mesh's
        # open eye holes) in other colours
        assert not (bare["segmentation"] == GLASSES).any()
        changed = np.abs(row["image"][eyes[:, 1], eyes[:, 0]].astype(int) - bare["image"][eyes[:, 1], eyes[:, 0]])
        assert (changed[hidden].max(axis=1) > 0).all() and (changed[~hidden] == 0).all()
        glasses = row["segmentation"] == GLASSES
        # where glasses cover the face they are in front of it; the face's own depth image is unchanged
        over = glasses & (row["face_index"] >= 0)
        assert over.sum() > 20 and (row["scene_depth"][over] > row["depth"][over].astype(np.float32)).all()
        np.testing.assert_array_equal(row["depth"], bare["depth"])
        assert not np.array_equal(row["image"][glasses], bare["image"][glasses])
        np.testing.assert_array_equal(row["image"][~glasses], bare["image"][~glasses])
        # the flow never starts on a pixel the glasses hide
        _, valid = world.flow(row, row)
        assert not (valid & glasses).any()
    # nor ends on one: turning the head moves face points under the lenses, and the flow calls them hidden
    a, b = world.render_face(0, pose=(0, 0, 0)), world.render_face(0, pose=(30, 0, 0))
    flow, valid = world.flow(a, b)
    rows, cols = np.nonzero((a["segmentation"] == FACE) & (a["face_index"] >= 0))
    plain_flow, plain_valid = plain.flow(plain.render_face(0, pose=(0, 0, 0)), plain.render_face(0, pose=(30, 0, 0)))
    target = np.floor(np.stack([cols + 0.5, rows + 0.5], 1) + plain_flow[rows, cols]).astype(int)
    lands = plain_valid[rows, cols] & (b["segmentation"][target[:, 1].clip(0, SIZE - 1), target[:, 0].clip(0, SIZE - 1)]
                                       == GLASSES)
    assert lands.sum() > 3 and not valid[rows[lands], cols[lands]].any()
    np.testing.assert_allclose(flow[valid], plain_flow[valid], atol=1e-6)  # elsewhere the glasses change nothing


def test_hair_glasses_and_background_layers_have_masks_and_depth():
    config = SyntheticWorldConfig(num_identities=4, views_per_identity=1, image_size=SIZE, uv_size=16, seed=3,
                                  hair=0.5, glasses=0.5, background_plane=True)
    world = SyntheticFaceWorld(config)
    rows = [world[i] for i in range(len(world))]
    assert {r["has_hair"] for r in rows} == {True, False} and {r["has_glasses"] for r in rows} == {True, False}
    for row in rows:
        seg, depth, scene = row["segmentation"], row["depth"].astype(np.float32), row["scene_depth"].astype(np.float32)
        assert set(v2_features(16, SIZE)) == set(row)
        face = seg == FACE
        np.testing.assert_allclose(scene[face], depth[face], atol=0.1)
        # the background plane lies behind every other layer
        assert scene[seg == BACKGROUND].max() < scene[seg != BACKGROUND].min()
        assert (seg == HAIR).any() == row["has_hair"] and (seg == GLASSES).any() == row["has_glasses"]
        if row["has_hair"]:
            fringe = (seg == HAIR) & (depth > 0)  # hair over the upper forehead
            assert fringe.sum() > 5 and (scene[fringe] > depth[fringe]).all()
            hair_rows = np.nonzero((seg == HAIR).any(axis=1))[0]
            assert hair_rows.mean() < np.nonzero(face.any(axis=1))[0].mean()  # above the face
    # the same identity keeps its layers in every view; turning one option on changes nothing else
    again = SyntheticFaceWorld(SyntheticWorldConfig(**{**config.__dict__, "glasses": 0.0}))
    for index in range(len(world)):
        assert again[index]["has_hair"] == rows[index]["has_hair"] and not again[index]["has_glasses"]
    # layers change the picture, never the face's ground truth
    plain = SyntheticFaceWorld(SyntheticWorldConfig(**{**config.__dict__, "glasses": 0.0, "hair": 0.0,
                                                       "background_plane": False}))
    for index in (0, 3):
        bare = plain[index]
        for key in ("dense_landmarks", "landmarks68_3d", "depth", "uv_position_map"):
            np.testing.assert_array_equal(rows[index][key], bare[key])
        for key in ("pose", "shape_coefficients", "expression_coefficients", "albedo_coefficients", "lighting"):
            assert rows[index][key] == bare[key]
        assert not np.array_equal(rows[index]["image"], bare["image"])


def test_fine_detail_is_outside_the_albedo_basis_and_on_the_face_only(world):
    plain = SyntheticFaceWorld(SyntheticWorldConfig(image_size=SIZE, seed=4))
    m = world.model
    basis = m.albedo_basis.reshape(m.num_albedo, -1).double().numpy().T  # (3 T T, K)
    basis = np.concatenate([basis, m.albedo_mean.reshape(-1, 1).double().numpy()], axis=1)
    q, _ = np.linalg.qr(basis)

    def unexplained(texture):  # share of the texture the albedo model (mean + basis) leaves unexplained
        t = texture.reshape(-1).double().numpy()
        return np.linalg.norm(t - q @ (q.T @ t)) / np.linalg.norm(t)

    assert unexplained(plain.albedo_texture(2)) < 0.02  # the prior explains the plain albedo (up to clamping)
    assert unexplained(world.albedo_texture(2)) > 0.05
    assert unexplained(world.albedo_texture(2)) > 5 * unexplained(plain.albedo_texture(2))
    a, b = world.render_face(2), plain.render_face(2)
    face = b["segmentation"] == FACE
    np.testing.assert_array_equal(a["image"][~face], b["image"][~face])
    assert np.abs(a["image"][face].astype(int) - b["image"][face]).mean() > 4
    # per identity: another identity's pattern differs
    other = world.albedo_texture(3) / plain.albedo_texture(3).clamp(min=1e-3)
    mine = world.albedo_texture(2) / plain.albedo_texture(2).clamp(min=1e-3)
    assert (other - mine).abs().mean() > 0.05


def test_fine_relief_shows_under_directional_light_only(world):
    from facehub.trainers.data.synthetic_variation import relief_pattern

    pattern = relief_pattern(np.random.default_rng(0), 0.5)
    uv = torch.rand(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    step = 1e-6
    numeric = torch.stack([(pattern.height(uv + torch.tensor([step, 0.0], dtype=torch.float64))
                            - pattern.height(uv - torch.tensor([step, 0.0], dtype=torch.float64))) / (2 * step),
                           (pattern.height(uv + torch.tensor([0.0, step], dtype=torch.float64))
                            - pattern.height(uv - torch.tensor([0.0, step], dtype=torch.float64))) / (2 * step)], -1)
    torch.testing.assert_close(pattern.gradient(uv), numeric, atol=1e-5, rtol=1e-5)

    plain = SyntheticFaceWorld(SyntheticWorldConfig(image_size=SIZE, seed=5))
    bumpy = SyntheticFaceWorld(SyntheticWorldConfig(image_size=SIZE, seed=5, fine_relief=0.004))
    # ambient light alone: irradiance does not depend on the normal, so the relief is invisible (pixel-identical)
    np.testing.assert_array_equal(bumpy.render_face(1)["image"], plain.render_face(1)["image"])
    lit = np.zeros((3, 9))
    lit[:, 0], lit[:, 1], lit[:, 3] = 1.0 / 0.886227, -0.3, 0.5
    a, b = bumpy.render_face(1, lighting=lit), plain.render_face(1, lighting=lit)
    face = b["segmentation"] == FACE
    np.testing.assert_array_equal(a["image"][~face], b["image"][~face])
    np.testing.assert_array_equal(a["depth"], b["depth"])
    assert np.abs(a["image"][face].astype(int) - b["image"][face]).mean() > 2


def test_v2_world_as_a_dataset():
    world = SyntheticFaceWorld(SyntheticWorldConfig(num_identities=2, views_per_identity=1, image_size=32,
                                                    uv_size=16, glasses=1.0, prior_modes=12))
    data = world.to_dataset()
    assert data.features == v2_features(16, 32) and len(data) == 2
    row = data.with_format("numpy")[1]
    assert row["segmentation"].shape == (32, 32) and row["prior_modes"] == 12 and row["has_glasses"]


@pytest.mark.parametrize("field, value", [("glasses", 1.5), ("hair", -0.1), ("withheld_scale", -1.0),
                                          ("fine_relief", -0.01)])
def test_bad_options_are_one_line(field, value):
    with pytest.raises(ValueError, match=field):
        SyntheticWorldConfig(**{field: value})


def test_rotation_convention_of_render_face(world):
    """render_face's pose is the world's: the mesh is the frontal mean rotated by ``rotation_matrix(pose)``."""
    row = world.render_face(1, pose=(30, 0, 0))
    front = world.render_face(1)
    centred = lambda r: (r["vertices"] - [*r["center"], 0.0]) / r["scale"]  # noqa: E731
    f, t = centred(front), centred(row)
    f -= f.mean(0)
    t -= t.mean(0)
    np.testing.assert_allclose(t, f @ rotation_matrix(30, 0, 0).T, atol=1e-6)
    assert row["landmarks68"][30, 0] > front["landmarks68"][30, 0] + 5  # the nose tip moves to the image's right
