"""Dense-mesh topology, UV layout, region masks and mesh <-> UV position map conversions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facehub.modeling.geometry.morphable import MorphableFaceModel
from facehub.modeling.geometry.topology import (
    FaceTopology,
    is_consistently_oriented,
    prnet_weight_mask,
    triangle_normals,
    uv_orientation,
    uv_region_masks,
)
from facehub.modeling.geometry.uv_maps import mesh_to_uv_position_map, mirror_uv_position_map, uv_position_map_to_mesh


@pytest.fixture(scope="module")
def topo():
    return FaceTopology.default()


@pytest.fixture(scope="module")
def mean_shape():
    return MorphableFaceModel.default().mean_shape.numpy()


def test_triangles_match_mediapipe_and_face_the_camera(topo, mean_shape):
    from facehub.modeling.geometry.topology import mediapipe_tessellation_triangles

    raw = mediapipe_tessellation_triangles()
    assert raw.shape == (852, 3) and len(np.unique(raw)) == 468
    assert {tuple(sorted(t)) for t in raw} == {tuple(sorted(t)) for t in topo.triangles}
    assert is_consistently_oriented(topo.triangles)
    n = triangle_normals(mean_shape, topo.triangles)
    nz = n[:, 2] / np.linalg.norm(n, axis=1)
    area = np.linalg.norm(n, axis=1)
    assert area[nz > 0].sum() / area.sum() > 0.95  # the rest: under the chin, seen edge-on
    assert (nz[np.abs(nz) > 0.25] > 0).all()  # every triangle not seen edge-on faces the camera


def test_uv_layout_in_unit_square_without_foldovers(topo):
    assert topo.uvs.shape == (468, 2) and topo.uvs.min() >= 0 and topo.uvs.max() <= 1
    area = uv_orientation(topo.uvs.astype(np.float64), topo.triangles)
    assert (area > 0).all() or (area < 0).all()


def test_region_masks_disjoint_and_prnet_weights(topo):
    masks = uv_region_masks(256)
    stack = np.stack([masks[k] for k in ("eyes", "nose", "mouth", "face", "outside")])
    assert (stack.sum(axis=0) == 1).all()  # disjoint and covering
    assert all(m.sum() > 50 for m in stack)
    w = prnet_weight_mask(256)
    assert set(np.unique(w)) == {0.0, 3.0, 4.0, 16.0}
    assert (w[masks["outside"] & (w != 16)] == 0).all() and (w == 16).sum() == 68  # jaw landmarks sit on the rim
    assert ((w == 4) == (masks["eyes"] | masks["nose"] | masks["mouth"]) & (w != 16)).all()
    assert prnet_weight_mask(64).shape == (64, 64)


def test_uv_round_trip_error_is_small(mean_shape):
    pos = mesh_to_uv_position_map(mean_shape, 256)
    assert pos.shape == (256, 256, 3)
    back = uv_position_map_to_mesh(pos)
    err = np.linalg.norm(back - mean_shape, axis=1)
    face_size = np.linalg.norm(np.ptp(mean_shape[:, :2], axis=0))
    assert err.max() / face_size < 0.015 and err.mean() / face_size < 0.002  # measured 0.76% / 0.06%


def test_uv_map_exact_on_triangles(topo, mean_shape):
    """A pixel centre inside a triangle gets the exact barycentric combination of its vertices."""
    from facehub.modeling.geometry.uv_maps import rasterize_uv

    raster = rasterize_uv(topo.uvs, topo.triangles, 128, 0)
    pos = mesh_to_uv_position_map(mean_shape, 128, fill_band=0)
    rows, cols = np.nonzero(raster.covered)
    f = raster.face_index[rows, cols]
    expected = np.einsum("nk,nkd->nd", raster.barycentric[rows, cols], mean_shape[topo.triangles[f]])
    np.testing.assert_allclose(pos[rows, cols], expected, atol=1e-3)
    # An affine function of the UVs is reproduced exactly at every covered pixel centre.
    affine = (topo.uvs @ np.array([[2.0], [-3.0]], dtype=np.float32) + 1.0).astype(np.float32)
    lin_map = mesh_to_uv_position_map(affine, 128, fill_band=0)[..., 0]
    np.testing.assert_allclose(lin_map[rows, cols], 2.0 * (cols + 0.5) / 128 - 3.0 * (rows + 0.5) / 128 + 1.0, atol=1e-4)


def test_mirror_uv_position_map_reads_a_face_from_its_mirror_images_map(topo, mean_shape):
    """The map of a posed face's mirror image (vertex i shown where its partner m[i] is, x -> W - x), mirrored back,
    is the face's own map: to bilinear-interpolation error on the mesh, where the naive flip of the map's columns is
    off by the layout's asymmetry (up to 1.5% of the map's width)."""
    from facehub.modeling.geometry.rotations import rotation_matrix
    from facehub.modeling.geometry.topology import mirror_vertex_map
    from facehub.modeling.geometry.uv_maps import rasterize_uv

    width = 256.0
    face = mean_shape.astype(np.float64) @ rotation_matrix(30.0, 10.0, 5.0).T * 0.8 + [128.0, 120.0, 0.0]
    mirror_image = face[mirror_vertex_map()] * [-1.0, 1.0, 1.0] + [width, 0.0, 0.0]
    covered = rasterize_uv(topo.uvs, topo.triangles, 128).covered
    truth = mesh_to_uv_position_map(face, 128)
    flipped_map = mesh_to_uv_position_map(mirror_image, 128, fill_band=40)
    back = mirror_uv_position_map(flipped_map, width)
    error = np.abs(back - truth)[covered]
    assert error.mean() < 0.02 and error.max() < 1.0  # pixels, on a face about 110 pixels wide
    naive = flipped_map[:, ::-1].copy()
    naive[..., 0] = width - naive[..., 0]
    assert np.abs(naive - truth)[covered].mean() > 10 * error.mean()
    # The 468 vertices read off the map are those read off the face's own map (a crop of side 1 as well: x -> 1 - x).
    read_back = np.abs(uv_position_map_to_mesh(back) - uv_position_map_to_mesh(truth)).mean()
    assert read_back < 0.05, read_back
    assert np.abs(uv_position_map_to_mesh(naive) - uv_position_map_to_mesh(truth)).mean() > 5 * read_back
    unit = mirror_uv_position_map(flipped_map / width, 1.0)
    np.testing.assert_allclose(unit * width, back, atol=1e-3)


def test_conversions_are_differentiable(mean_shape):
    verts = torch.tensor(mean_shape, requires_grad=True)
    pos = mesh_to_uv_position_map(verts, 64)
    assert pos.shape == (3, 64, 64)
    pos.sum().backward()
    assert verts.grad is not None and verts.grad.abs().sum() > 0
    maps = pos.detach()[None].repeat(2, 1, 1, 1).requires_grad_(True)
    back = uv_position_map_to_mesh(maps)
    assert back.shape == (2, 468, 3)
    back.pow(2).sum().backward()
    assert maps.grad.abs().sum() > 0
