"""Texture completion by symmetry (modeling/geometry/texture_completion.py) on synthetic faces with exact truth.

Faces of the project's morphable model are rendered at a known pose; the UV texture is sampled from the render where
the UV position map says each texel lands, as a reconstruction samples a photo. The albedo is the model's mean plus
small random modes (the full random spread of the model's albedo is itself 15 grey levels away from symmetric on
average, which no symmetric completion can recover).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from facehub.modeling.geometry.morphable import SH_DC, MorphableFaceModel
from facehub.modeling.geometry.render import FaceRenderer, OrthographicCamera
from facehub.modeling.geometry.rotations import rotation_matrix
from facehub.modeling.geometry.texture_completion import (
    MIRRORED,
    OUTSIDE,
    OWN,
    complete_texture,
    complete_texture_from_mesh,
    texel_visibility,
    uv_mirror_coordinates,
)
from facehub.modeling.geometry.uv_maps import mesh_to_uv_position_map

IMAGE, UV = 160, 128


@pytest.fixture(scope="module")
def model():
    return MorphableFaceModel.default()


def render_face(model, identity: int, yaw: float, light_x: float = 0.0):
    """(photo, mesh in photo pixels, exact albedo texture x the ambient shading, texture sampled from the photo)."""
    rng = np.random.default_rng(identity)
    albedo = model.albedo(torch.from_numpy(0.3 * rng.normal(size=(1, model.num_albedo))).float())
    vertices = model.shape(torch.from_numpy(rng.normal(size=(1, model.num_identity))).float())[0].double()
    vertices = vertices - vertices.mean(dim=0)
    scale = 0.6 * IMAGE / float(np.ptp(model.mean_shape[:, 0].numpy()))
    pixels = scale * vertices @ torch.from_numpy(rotation_matrix(yaw, 0.0, 0.0)).T
    pixels[:, :2] += IMAGE / 2
    pixels[:, 2] -= pixels[:, 2].min()
    lighting = np.zeros((3, 9))
    lighting[:, 0] = 0.9 / SH_DC  # ambient: the rendered colour is 0.9 x albedo
    lighting[:, 3] = light_x  # a directional light along x lights one cheek more than the other
    render = FaceRenderer(IMAGE)(pixels[None].float(), model.triangles, OrthographicCamera(1.0, (0.0, 0.0)),
                                 uvs=model.uvs, albedo_texture=albedo, sh_coeffs=torch.from_numpy(lighting)[None].float())
    photo = (render.image[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    mesh = pixels.numpy()
    positions = mesh_to_uv_position_map(mesh, size=UV, fill_band=0)
    sampled = cv2.remap(photo.astype(np.float32), positions[..., 0] - 0.5, positions[..., 1] - 0.5,
                        cv2.INTER_LINEAR).astype(np.uint8)
    truth = 0.9 * albedo[0].permute(1, 2, 0).numpy() * 255
    return photo, mesh, truth, sampled


def test_mirror_coordinates_are_an_involution():
    mirror, inside = uv_mirror_coordinates(UV)
    twice = cv2.remap(mirror, mirror[..., 0], mirror[..., 1], cv2.INTER_LINEAR)
    grid = np.stack(np.meshgrid(np.arange(UV), np.arange(UV)), axis=-1)
    error = np.abs(twice - grid).max(axis=-1)[inside]
    assert np.median(error) < 0.05 and np.percentile(error, 95) < 0.5
    # The midline maps onto itself and the two halves swap: mirrors of left texels lie right of the midline.
    columns = np.nonzero(inside.any(axis=0))[0]
    middle = (columns.min() + columns.max()) / 2
    left = inside & (grid[..., 0] < middle - 5)
    assert (mirror[..., 0][left] > middle).mean() > 0.95


def test_visibility_of_a_frontal_and_a_turned_face(model):
    _, frontal, _, _ = render_face(model, 0, 0.0)
    seen = texel_visibility(frontal, UV)
    mirror, inside = uv_mirror_coordinates(UV)
    assert (seen[inside] > 0.5).mean() > 0.75  # the rest: the mask wraps round to the temples and the jaw
    # A frontal face is seen symmetrically: each texel about as well as its mirror.
    mirrored = cv2.remap(seen, mirror[..., 0], mirror[..., 1], cv2.INTER_LINEAR)
    asymmetry = np.abs(seen - mirrored)[inside].mean()
    assert asymmetry < 0.08  # the random identity's own shape is not quite symmetric

    _, turned, _, _ = render_face(model, 0, 50.0)
    seen = texel_visibility(turned, UV)
    hidden = inside & (seen < 0.5)
    assert 0.3 < hidden.sum() / inside.sum() < 0.6
    mirrored = cv2.remap(seen, mirror[..., 0], mirror[..., 1], cv2.INTER_LINEAR)
    assert np.abs(seen - mirrored)[inside].mean() > 5 * asymmetry
    assert (mirrored[hidden] > 0.5).mean() > 0.8  # the far cheek's mirror is the near cheek, which is seen


def test_a_large_faces_visibility_is_read_from_a_z_buffer_of_a_quarter_texel(model, monkeypatch):
    """A face thousands of pixels wide is z-buffered at four pixels per texel, not at the photo's pixels: the same
    visibility but for a few texels on an occluding edge (measured: 10-20 of 6-27 thousand on real faces 1,000-1,500
    px wide, in a tenth of the time)."""
    from facehub.modeling.geometry import texture_completion, zbuffer

    _, turned, _, _ = render_face(model, 0, 40.0)
    large = turned * [15.0, 15.0, 15.0]  # about 1,400 px wide
    drawn = []
    original = zbuffer.rasterize_box

    def recording(vertices, triangles, box, *args, **kwargs):
        drawn.append((box[2] - box[0], box[3] - box[1]))
        return original(vertices, triangles, box, *args, **kwargs)

    monkeypatch.setattr(zbuffer, "rasterize_box", recording)
    reduced = texel_visibility(large, UV)
    per_texel = texture_completion.ZBUFFER_PIXELS_PER_TEXEL
    monkeypatch.setattr(texture_completion, "ZBUFFER_PIXELS_PER_TEXEL", 1e9)
    full = texel_visibility(large, UV)
    assert max(drawn[0]) <= per_texel * UV + 4 < 0.5 * max(drawn[1])  # the box: a pixel of margin, rounded out
    differing = (np.abs(reduced - full) > 1e-6).sum()
    print(f"z-buffers {drawn}: {differing} of {(full > 0).sum()} seen texels differ")
    assert differing < 0.005 * (full > 0).sum()
    # A face narrower than four pixels per texel keeps the photo's pixels: its box, a pixel of margin rounded out.
    monkeypatch.setattr(texture_completion, "ZBUFFER_PIXELS_PER_TEXEL", per_texel)
    assert np.ptp(turned[:, :2], axis=0).max() < per_texel * UV
    texel_visibility(turned, UV)
    low = np.floor(turned[:, :2].min(axis=0)).astype(int) - 1
    high = np.ceil(turned[:, :2].max(axis=0)).astype(int) + 2
    assert drawn[-1] == tuple(high - low)


@pytest.mark.parametrize("yaw", [35.0, -55.0])
def test_completion_recovers_the_hidden_half_better_than_empty_or_mean(model, yaw):
    photo, mesh, truth, sampled = render_face(model, 1, yaw)
    completion = complete_texture_from_mesh(sampled, mesh, image_shape=photo.shape[:2])
    inside = completion.source != OUTSIDE
    hidden = inside & (completion.visibility < 0.5)
    seen = inside & ~hidden

    def error(texture):
        return float(np.abs(texture.astype(np.float32) - truth)[hidden].mean())

    empty = error(np.zeros_like(sampled))
    mean_fill = error(np.where(hidden[..., None], sampled[seen].mean(axis=0), sampled))
    completed = error(completion.texture)
    assert completed < 0.15 * empty
    assert completed < 0.85 * mean_fill, (completed, mean_fill)
    assert completed < 0.75 * error(sampled)  # what the photo shows there is the wrong side of the head
    # Seen texels keep the photo's colours.
    kept = (completion.source == OWN) & (completion.visibility > 0.95)
    assert np.abs(completion.texture.astype(float) - sampled)[kept].mean() < 2.0


def seam_ratio(texture: np.ndarray, source: np.ndarray) -> float:
    """Mean colour step between neighbouring texels across the seen / mirrored boundary, over the mean step between
    neighbouring seen texels (1 = the seam is as smooth as the face itself)."""
    t = texture.astype(np.float32)
    across, within = [], []
    for axis in (0, 1):
        first, second = (np.take(t, range(0, UV - 1), axis), np.take(t, range(1, UV), axis))
        s1, s2 = np.take(source, range(0, UV - 1), axis), np.take(source, range(1, UV), axis)
        step = np.abs(first - second).mean(axis=-1)
        across.append(step[((s1 == OWN) & (s2 == MIRRORED)) | ((s1 == MIRRORED) & (s2 == OWN))])
        within.append(step[(s1 == OWN) & (s2 == OWN)])
    return float(np.concatenate(across).mean() / np.concatenate(within).mean())


def test_no_visible_seam_where_the_cheeks_are_lit_differently(model):
    photo, mesh, _, sampled = render_face(model, 2, 40.0, light_x=0.5)
    blended = complete_texture_from_mesh(sampled, mesh, image_shape=photo.shape[:2])
    copied = complete_texture_from_mesh(sampled, mesh, image_shape=photo.shape[:2], match_colours=False)
    assert (blended.source == MIRRORED).sum() > 500
    plain, smooth = seam_ratio(copied.texture, copied.source), seam_ratio(blended.texture, blended.source)
    assert plain > 3.0  # a plain copy of the brighter cheek leaves a step three times the face's own texture
    assert smooth < 0.6 * plain and smooth < 2.2, (plain, smooth)


HAIR = np.array([40.0, 28.0, 20.0])  # dark brown


def paint_locks(photo: np.ndarray, mesh: np.ndarray, cheeks=("right",), sides: float = 0.0):
    """The photo with a dark lock of hair down each named cheek of the subject (a quadrilateral around mesh vertex
    50, the right cheek, or its mirror image around vertex 280, the left), and hair down both sides of the face over
    its outer ``sides`` of the face's width, edges blurred by a pixel; and the UV texture sampled from it with the
    (UV, UV) mask of the texels the locks cover."""
    width = float(np.ptp(mesh[:, 0]))
    lock = np.zeros(photo.shape[:2], np.float32)
    corners = np.array([(-0.12, -0.25), (0.02, -0.2), (0.06, 0.15), (-0.1, 0.2)])
    for cheek in cheeks:
        vertex, side = (50, 1.0) if cheek == "right" else (280, -1.0)
        points = mesh[vertex, :2] + width * corners * [side, 1.0]
        cv2.fillPoly(lock, [np.round(points).astype(np.int32)], 1.0)
    columns = np.arange(photo.shape[1])
    outer = (columns < mesh[:, 0].min() + sides * width) | (columns > mesh[:, 0].max() - sides * width)
    lock[:, outer] = 1.0 if sides > 0 else lock[:, outer]
    lock = cv2.GaussianBlur(lock, (0, 0), 1.0)
    painted = (photo * (1.0 - lock[..., None]) + HAIR * lock[..., None]).astype(np.uint8)
    positions = mesh_to_uv_position_map(mesh, size=UV, fill_band=0)
    texture = cv2.remap(painted.astype(np.float32), positions[..., 0] - 0.5, positions[..., 1] - 0.5,
                        cv2.INTER_LINEAR).astype(np.uint8)
    covered = cv2.remap(lock, positions[..., 0] - 0.5, positions[..., 1] - 0.5, cv2.INTER_LINEAR) > 0.5
    return painted, texture, covered


def test_a_lock_of_hair_over_one_cheek_is_replaced_by_the_other_cheek_mirrored(model):
    """What the photo shows in front of the face is not its texture (a swap would paint it on the target): with
    ``occluders="mirror"`` the lock's texels take their mirror texels' colours, the rest is left as it was."""
    photo, mesh, truth, _ = render_face(model, 1, 15.0)
    painted, texture, covered = paint_locks(photo, mesh)
    kept = complete_texture_from_mesh(texture, mesh, image_shape=photo.shape[:2])
    mirrored = complete_texture_from_mesh(texture, mesh, image_shape=photo.shape[:2], occluders="mirror")
    seen_lock = covered & (kept.visibility > 0.5)
    assert seen_lock.sum() > 200
    assert (mirrored.occluded[seen_lock] > 0.5).mean() > 0.9 and (kept.occluded == 0).all()
    assert (mirrored.source[seen_lock] == MIRRORED).mean() > 0.9

    def error(completion, where):
        return float(np.abs(completion.texture.astype(np.float32) - truth)[where].mean())

    # Measured: 92.7 grey levels from the true texture with the lock kept, 21.0 with it mirrored.
    assert error(mirrored, covered) < 0.3 * error(kept, covered), (error(mirrored, covered), error(kept, covered))
    # Away from the lock (four texels of margin, OCCLUDER_GROWTH of the texture's side) nothing is replaced.
    away = (kept.source != OUTSIDE) & ~cv2.dilate(covered.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    assert (mirrored.occluded[away] == 0).all()
    assert np.abs(mirrored.texture.astype(float) - kept.texture)[away].mean() < 0.3


@pytest.mark.parametrize("light_x", [0.0, 0.5, -0.6])
def test_a_clean_face_and_occluders_on_both_cheeks_are_left_as_they_are(model, light_x):
    """Only a texel whose mirror shows skin is replaced: a clean face, lit from the front or from either side (a
    cheek in shadow is no occluder), keeps every texel, and so do locks down both cheeks (like a beard or glasses,
    they are on both sides: the completion cannot tell them from the face's own features). The locks are drawn on a
    frontal face, where they mirror each other texel for texel; on a turned one the fringe of one that its mirror
    image misses is replaced (4% of their texels at 10 degrees)."""
    clean = render_face(model, 3, 10.0, light_x=light_x)
    frontal = render_face(model, 3, 0.0, light_x=light_x)
    locks = paint_locks(frontal[0], frontal[1], ("right", "left"))[1]
    for photo, mesh, texture in ((clean[0], clean[1], clean[3]), (frontal[0], frontal[1], locks)):
        kept = complete_texture_from_mesh(texture, mesh, image_shape=photo.shape[:2])
        mirrored = complete_texture_from_mesh(texture, mesh, image_shape=photo.shape[:2], occluders="mirror")
        assert (mirrored.occluded == 0).all()
        np.testing.assert_array_equal(mirrored.texture, kept.texture)


def test_a_lock_that_runs_into_hair_down_both_sides_is_kept_whole(model):
    """The same lock, now joined to hair down both sides of the face: most of what is in front of the face has no
    skin in its mirror and cannot be replaced, and replacing only the lock's part would leave ragged fragments of the
    hair in the skin. Nothing is replaced (the lock alone on the same face: 404 texels are)."""
    photo, mesh, _, _ = render_face(model, 1, 0.0)
    alone = paint_locks(photo, mesh)[1]
    framed = paint_locks(photo, mesh, sides=0.1)[1]
    assert (complete_texture_from_mesh(alone, mesh, occluders="mirror").occluded > 0.5).sum() > 300
    kept = complete_texture_from_mesh(framed, mesh, image_shape=photo.shape[:2])
    mirrored = complete_texture_from_mesh(framed, mesh, image_shape=photo.shape[:2], occluders="mirror")
    assert (mirrored.occluded == 0).all()
    np.testing.assert_array_equal(mirrored.texture, kept.texture)


def test_occluders_must_be_keep_or_mirror():
    texture, visibility = np.zeros((UV, UV, 3), np.uint8), np.ones((UV, UV), np.float32)
    with pytest.raises(ValueError, match="occluders"):
        complete_texture(texture, visibility, occluders="remove")
