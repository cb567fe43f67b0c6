"""Dense meshes from a whole UV position map (PRNet's mesh) and texture completion on reconstructions, on the embedded
facehub/prn-dense default and tests/data/photos/obama.jpg (public domain; see its README).

The grid's geometry (exact at the map's pixels, one orientation, eyes and mouth closed or open) is checked on the
network's real output, and the exports reload with the mesh's own vertex and triangle counts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image
from scipy.spatial import cKDTree

from facehub.modeling.faces import load_image
from facehub.modeling.geometry.dense_mesh import (
    dense_mesh_from_uv_position_map,
    grid_coordinates,
    grid_face_region,
    sample_texture,
    upsample_uv_map,
)
from facehub.modeling.geometry.texture_completion import uv_mirror_coordinates
from facehub.modeling.geometry.topology import FaceTopology, triangle_normals, uv_orientation
from facehub.modeling.geometry.uv_maps import rasterize_uv
from facehub.modeling.prn_dense import FaceReconstructionPipeline
from facehub.modeling.prn_dense.reconstruction import sample_image

PHOTOS = Path(__file__).parent / "data" / "photos"


@pytest.fixture(scope="module")
def reconstruction():
    """The embedded default's reconstruction of obama.jpg (128 px UV position map)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pipe = FaceReconstructionPipeline.from_pretrained("facehub/prn-dense")
        [rec] = pipe(load_image(PHOTOS / "obama.jpg"), compute_depth=False).reconstructions
    finally:
        torch.set_num_threads(previous)
    assert rec.uv_position_map.shape == (128, 128, 3)
    return rec


def xy_orientation(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(F,) doubled signed areas of the triangles projected on the photo (x, y)."""
    v = np.asarray(vertices, np.float64)[:, :2]
    e1, e2 = v[triangles[:, 1]] - v[triangles[:, 0]], v[triangles[:, 2]] - v[triangles[:, 0]]
    return e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]


def euler_characteristic(mesh) -> int:
    edges = np.unique(np.sort(np.concatenate([mesh.triangles[:, [0, 1]], mesh.triangles[:, [1, 2]],
                                              mesh.triangles[:, [2, 0]]]), axis=1), axis=0)
    return len(mesh.vertices) - len(edges) + len(mesh.triangles)


def test_upsampling_is_exact_at_the_map_pixels_and_bilinear_between():
    rng = np.random.default_rng(0)
    uv_map = rng.normal(size=(9, 9, 3)).astype(np.float32)
    grid = upsample_uv_map(uv_map, 3)
    assert grid.shape == (25, 25, 3)
    np.testing.assert_allclose(grid[::3, ::3], uv_map, atol=1e-6)
    np.testing.assert_allclose(grid[1, 0], (2 * uv_map[0, 0] + uv_map[1, 0]) / 3, atol=1e-6)
    left, right = (2 * uv_map[0, 0] + uv_map[1, 0]) / 3, (2 * uv_map[0, 1] + uv_map[1, 1]) / 3  # a third down
    np.testing.assert_allclose(grid[1, 2], (left + 2 * right) / 3, atol=1e-6)  # and two thirds across
    # Grid coordinates: the map's pixel centres (j + 1/2) / U every third point.
    np.testing.assert_allclose(grid_coordinates(9, 3)[::3], (np.arange(9) + 0.5) / 9)


def test_the_grid_region_is_the_meshs_uv_footprint_with_three_openings():
    topology = FaceTopology.default()
    covered, holes = grid_face_region(128, 1, topology)
    np.testing.assert_array_equal(covered, rasterize_uv(topology.uvs, topology.triangles, 128).face_index >= 0)
    from scipy.ndimage import label

    assert label(holes)[1] == 3  # two eyes and the mouth
    masks = topology.region_masks(128)
    assert (holes & masks["eyes"]).sum() >= 0.95 * masks["eyes"].sum()
    assert (holes & masks["mouth"]).sum() > 100


def test_dense_mesh_of_the_default_on_a_photo(reconstruction):
    rec = reconstruction
    mesh = rec.dense_mesh()
    assert 15_000 <= len(mesh.vertices) <= 40_000  # 29.8k: every grid point of the 128 px map's face region
    assert mesh.vertices.dtype == np.float32 and mesh.triangles.dtype == np.int64
    assert len(np.unique(mesh.triangles)) == len(mesh.vertices)  # no isolated vertex
    assert len(mesh.triangles) > 1.9 * len(mesh.vertices)
    # Each vertex's UV is its grid point's own.
    coordinates = grid_coordinates(128, 2)
    np.testing.assert_allclose(mesh.uvs, coordinates[mesh.grid_index[:, ::-1]], atol=1e-7)
    # Unsmoothed, a vertex on a map pixel is exactly that pixel's position (PRNet's mesh).
    exact = rec.dense_mesh(smoothing=0.0)
    on_pixel = (exact.grid_index % 2 == 0).all(axis=1)
    rows, cols = (exact.grid_index[on_pixel] // 2).T
    np.testing.assert_allclose(exact.vertices[on_pixel], rec.uv_position_map[rows, cols], atol=1e-4)
    assert on_pixel.sum() >= 7_400  # every map pixel of the face region (7,460 at 128 px)
    # The texture: completed by symmetry, as fine as the mesh (256 px); the colours are it at the vertices' UVs.
    assert mesh.texture.shape == (256, 256, 3)
    np.testing.assert_array_equal(mesh.texture, rec.texture_completion_at(256).texture)
    np.testing.assert_array_equal(mesh.colors, sample_texture(mesh.texture, mesh.uvs))
    # Where the photo saw the surface, a vertex has the photo's colour at its own position (the texture is read
    # through the unsmoothed map: measured 3.9 levels apart on average).
    visibility = rec.texture_completion_at(256).visibility
    seen = visibility[np.clip((mesh.uvs[:, 1] * 256).astype(int), 0, 255),
                      np.clip((mesh.uvs[:, 0] * 256).astype(int), 0, 255)] > 0.99
    assert seen.mean() > 0.6
    photo = sample_image(rec.image, mesh.vertices[:, :2]).astype(float)
    assert np.abs(photo[seen] - mesh.colors[seen]).mean() < 6
    # At the map's own size the colours are the texels: a vertex on map pixel (r, c) has texel (r, c)'s colour.
    coarse = rec.dense_mesh(texture_size=128)
    np.testing.assert_array_equal(coarse.texture, rec.completed_texture)
    on_pixel = (coarse.grid_index % 2 == 0).all(axis=1)
    rows, cols = (coarse.grid_index[on_pixel] // 2).T
    np.testing.assert_array_equal(coarse.colors[on_pixel], rec.completed_texture[rows, cols])
    # 256 px maps give 40k+ vertices.
    big = dense_mesh_from_uv_position_map(np.zeros((256, 256, 3), np.float32))
    assert len(big.vertices) > 100_000 and len(dense_mesh_from_uv_position_map(
        np.zeros((256, 256, 3), np.float32), subdivision=1).vertices) > 29_000


def test_dense_mesh_is_consistently_oriented(reconstruction):
    rec = reconstruction
    mesh = rec.dense_mesh()
    topology_sign = np.sign(uv_orientation(FaceTopology.default().uvs, FaceTopology.default().triangles))
    assert (topology_sign == topology_sign[0]).all()
    # Every triangle has the 468-vertex topology's winding in UV: none is flipped relative to the grid.
    assert (np.sign(uv_orientation(mesh.uvs, mesh.triangles)) == topology_sign[0]).all()
    # ... and neighbours agree: every inner edge is walked once each way.
    tm = trimesh.Trimesh(mesh.vertices, mesh.triangles, process=False)
    assert tm.is_winding_consistent
    # In the photo the face turns its front to the camera: inside the face (away from the rim, where the surface
    # turns away past the silhouette) nearly every triangle keeps the UV orientation.
    normals = triangle_normals(mesh.vertices.astype(np.float64), mesh.triangles)
    rim = np.zeros(len(mesh.vertices), bool)
    edges = tm.edges[trimesh.grouping.group_rows(tm.edges_sorted, require_count=1)]
    rim[np.unique(edges)] = True
    for _ in range(12):  # grow the rim by 12 grid steps (6 map pixels)
        rim[np.unique(mesh.triangles[rim[mesh.triangles].any(axis=1)])] = True
    inner = ~rim[mesh.triangles].any(axis=1)
    assert inner.mean() > 0.6
    assert (normals[inner, 2] > 0).mean() > 0.97  # measured 99%
    agree = np.sign(xy_orientation(mesh.vertices, mesh.triangles)) == topology_sign[0]
    sparse_agree = np.sign(xy_orientation(rec.vertices, rec.triangles)) == topology_sign[0]
    assert agree.mean() > sparse_agree.mean() - 0.03  # the 468-vertex mesh: 96.7%, the dense one 95.2%


def test_dense_vertices_agree_with_the_468_vertex_mesh(reconstruction):
    rec = reconstruction
    face_width = float(np.ptp(rec.vertices[:, 0]))
    for smoothing, mean_limit in ((0.0, 0.006), (1.0, 0.01)):
        mesh = rec.dense_mesh(smoothing=smoothing)
        distance, nearest = cKDTree(mesh.uvs).query(rec.uvs)
        assert distance.max() < 1.0 / 256  # within a grid step in UV
        error = np.linalg.norm(mesh.vertices[nearest] - rec.vertices, axis=1) / face_width
        print(f"smoothing {smoothing}: mean {error.mean():.2%}, 95th percentile {np.percentile(error, 95):.2%}")
        assert error.mean() < mean_limit  # measured 0.41% and 0.59% of the face width
        assert np.percentile(error, 95) < 0.025


def test_closed_openings_cover_the_eyes_and_mouth_and_open_ones_leave_them(reconstruction):
    rec = reconstruction
    closed, opened = rec.dense_mesh(openings="closed"), rec.dense_mesh(openings="open")
    masks = FaceTopology.default().region_masks(128)
    _, holes = grid_face_region(128, 1)
    # A map pixel (r, c) is grid point (2r, 2c): which of them are vertices.
    def pixels(mesh):
        on_pixel = (mesh.grid_index % 2 == 0).all(axis=1)
        image = np.zeros((128, 128), bool)
        image[mesh.grid_index[on_pixel, 0] // 2, mesh.grid_index[on_pixel, 1] // 2] = True
        return image

    closed_pixels, open_pixels = pixels(closed), pixels(opened)
    for region in ("eyes", "mouth"):
        assert closed_pixels[masks[region]].all(), region
    assert not open_pixels[holes].any()
    assert open_pixels[masks["eyes"]].mean() < 0.05 and not open_pixels[masks["mouth"] & holes].any()
    assert (masks["mouth"] & holes).sum() > 100
    # The flags: filled vertices in the closed mesh, none in the open one; nothing else differs.
    assert closed.in_opening.sum() > 800 and not opened.in_opening.any()
    assert len(closed.vertices) - closed.in_opening.sum() == len(opened.vertices)
    # Topologically a disk, and a disk with three holes (Euler characteristic 1 - 3).
    assert euler_characteristic(closed) == 1
    assert euler_characteristic(opened) == -2
    with pytest.raises(ValueError, match="openings"):
        rec.dense_mesh(openings="shut")


@pytest.mark.parametrize("extension", [".obj", ".ply", ".glb"])
def test_dense_export_reloads_with_the_stated_vertex_count(tmp_path, reconstruction, extension):
    rec = reconstruction
    mesh = rec.dense_mesh()
    path = rec.export(tmp_path / f"face{extension}", dense=True)
    loaded = trimesh.load(path, process=False, force="mesh")
    assert len(loaded.vertices) == len(mesh.vertices) and len(loaded.faces) == len(mesh.triangles)
    assert len(loaded.vertices) >= 15_000
    np.testing.assert_allclose(loaded.vertices, mesh.vertices * [1, -1, 1], atol=1e-3)  # y up in files
    if extension == ".ply":
        np.testing.assert_array_equal(loaded.visual.vertex_colors[:, :3], mesh.colors)
    else:
        np.testing.assert_allclose(loaded.visual.uv, np.c_[mesh.uvs[:, 0], 1 - mesh.uvs[:, 1]], atol=1e-5)
        colors = loaded.visual.material.to_color(loaded.visual.uv)[:, :3].astype(float)
        assert np.abs(colors - mesh.colors).mean() < 8  # the reader looks the texture up at the nearest texel
    if extension == ".obj":
        texture = np.asarray(Image.open(tmp_path / "face.png").convert("RGB"))
        np.testing.assert_array_equal(texture, mesh.texture)  # the completed texture by default
        assert "map_Kd face.png" in (tmp_path / "face.mtl").read_text()
    # The 468-vertex mesh is still what export writes by default.
    sparse = trimesh.load(rec.export(tmp_path / f"sparse{extension}"), process=False, force="mesh")
    assert len(sparse.vertices) == 468


def test_reconstruction_texture_is_completed_by_symmetry(reconstruction):
    rec = reconstruction
    completion = rec.texture_completion
    visibility, texture, completed = rec.texture_visibility, rec.texture.astype(float), rec.completed_texture
    assert completed.shape == rec.texture.shape and visibility.shape == rec.texture.shape[:2]
    assert 0.0 <= visibility.min() and visibility.max() <= 1.0
    assert 0.02 < completion.hidden_fraction < 0.4  # a near-frontal face hides the sides of its cheeks (12.8%)
    # Texels seen well keep the photo's colour.
    seen = visibility >= 0.999
    assert seen.sum() > 3000
    assert np.abs(completed[seen].astype(float) - texture[seen]).max() <= 1
    # Hidden texels whose mirror was seen move to the mirror texel's colour (Poisson blending keeps its detail and
    # adjusts its brightness to the seen texels around: near, not equal).
    mirror, inside = uv_mirror_coordinates(128)
    cols, rows = np.clip(np.round(mirror).astype(int), 0, 127).transpose(2, 0, 1)
    hidden = inside & (visibility < 0.5) & (visibility[rows, cols] > 0.5)
    assert hidden.sum() > 100  # 159
    mirrored = texture[rows, cols] * completion.gain
    before, after = (np.abs(t[hidden] - mirrored[hidden]).mean() for t in (texture, completed))
    print(f"hidden texels from their mirror texel: {before:.1f} in the photo, {after:.1f} completed")
    assert after < 0.75 * before  # measured 28.4 -> 16.1
    # Finer textures sample the same photo at the same map: the 256 px one, taken back to 128 px, is the 128 px one.
    fine = rec.texture_at(256).astype(float)
    np.testing.assert_array_equal(rec.texture_at(128), rec.texture)
    assert np.abs(fine.reshape(128, 2, 128, 2, 3).mean(axis=(1, 3)) - texture)[inside].mean() < 6
    assert rec.texture_completion_at(256).visibility.shape == (256, 256)
    # It is the completion of the reconstruction's own mesh and texture.
    from facehub.modeling.geometry.texture_completion import complete_texture_from_mesh

    again = complete_texture_from_mesh(rec.texture, rec.vertices.astype(np.float64), image_shape=rec.image_shape)
    np.testing.assert_array_equal(again.texture, completed)


def test_a_reconstruction_completes_its_texture_with_occluders_kept_or_mirrored(reconstruction):
    """``occluders="mirror"`` is a completion of its own, kept apart from the default one in the cache and in the
    dense mesh's texture; on obama.jpg (nothing in front of the face) it changes next to nothing."""
    rec = reconstruction
    kept, mirrored = rec.texture_completion_at(256), rec.texture_completion_at(256, occluders="mirror")
    assert kept is rec.texture_completion_at(256, "keep") and mirrored is rec.texture_completion_at(256, "mirror")
    assert mirrored is not kept and kept.occluded.max() == 0.0
    assert (mirrored.occluded > 0.5).mean() < 0.01  # measured: none
    np.testing.assert_array_equal(rec.dense_mesh(occluders="mirror").texture, mirrored.texture)
    with pytest.raises(ValueError, match="occluders"):
        rec.texture_completion_at(256, occluders="drop")
    with pytest.raises(ValueError, match="occluders"):
        rec.dense_mesh(texture="photo", occluders="drop")
