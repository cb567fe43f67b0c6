"""From a predicted UV position map to a reconstructed face in the photo: mesh, landmarks, pose, colours, depth,
and export to OBJ (textured), PLY (vertex colours) and GLB (textured).

A UV position map stores one 3D point per UV pixel (seed 003 eq. 10, ``Pos(u_i, v_i) = (x_i, y_i, z_i)``; PRNet,
Feng et al. ECCV 2018, section 3.1). :func:`build_reconstruction` takes the network's map in crop units, maps it back
to the photo's pixels (:func:`~facehub.modeling.prn_dense.cropping.crop_units_to_image_positions`) and reads
everything else off it, as PRNet's ``api`` does with its own topology:

- vertices: the map sampled bilinearly at the vertex UVs of facehub's 468-vertex face mesh
  (:func:`facehub.modeling.geometry.uv_maps.uv_position_map_to_mesh`, :class:`~facehub.modeling.geometry.FaceTopology`);
- the 68 iBUG landmarks in 3D (:func:`facehub.modeling.geometry.landmarks68.landmarks68_from_mesh`) and the head pose
  (:func:`facehub.modeling.geometry.profiling.pose_from_mesh`);
- colours: the photo sampled at each vertex, and a UV texture: the photo sampled at every UV pixel's (x, y), PRNet's
  texture (no visibility test: surfaces hidden at large yaw take the colour of what covers them);
- a depth image: the mesh z-buffered in the photo's pixels (PyTorch3D's rasteriser through
  :func:`facehub.modeling.geometry.render.rasterize_tiled`), measured from the mesh's deepest vertex as the synthetic
  face world measures its depth images, so it is >= 0 on the face and 0 means "no face".

Frames: everything in :class:`FaceReconstruction` is in photo pixels, x right, y down, z towards the camera (the house
frame, :mod:`facehub.modeling.geometry`). Exported files use the right-handed y-up frame of OBJ / glTF viewers:
``(x, -y, z)`` in pixels, triangles re-wound so their fronts still face the viewer (+z).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facehub.modeling.faces.analyzer import Face
from facehub.modeling.geometry.landmarks68 import landmarks68_from_mesh
from facehub.modeling.geometry.profiling import pose_from_mesh
from facehub.modeling.geometry.topology import FaceTopology
from facehub.modeling.geometry.uv_maps import uv_position_map_to_mesh
from facehub.modeling.prn_dense.cropping import crop_units_to_image_positions

EXPORT_FORMATS = (".obj", ".ply", ".glb")


def sample_image(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Bilinear RGB of an (H, W, 3) uint8 ``image`` at (..., 2) pixel positions (house convention: pixel centres at
    half-integers); positions off the photo take the nearest border pixel. Returns (..., 3) uint8."""
    xy = np.asarray(xy, dtype=np.float32)
    points = xy.reshape(-1, 2) - 0.5  # OpenCV samples with pixel centres at integers
    count = len(points)
    columns = max(1, min(count, 4096))  # cv2.remap needs both sides of its maps below 32767
    grid = np.zeros((-(-count // columns) * columns, 2), dtype=np.float32)
    grid[:count] = points
    grid = grid.reshape(-1, columns, 2)
    sampled = cv2.remap(
        np.ascontiguousarray(image), grid[..., 0], grid[..., 1], interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return sampled.reshape(-1, 3)[:count].reshape(*xy.shape[:-1], 3)


def render_depth(vertices: np.ndarray, triangles: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffer a mesh given in image pixels (house frame) over an (H, W) image.

    Returns ``depth`` (H, W) float32, the visible surface's z above the mesh's deepest vertex (``z - min z``, larger
    is nearer the camera; 0 off the face) and ``mask`` (H, W) bool, True where the face covers the pixel.
    """
    from facehub.modeling.geometry.render import rasterize_tiled

    depth = np.zeros((height, width), dtype=np.float32)
    mask = np.zeros((height, width), dtype=bool)
    vertices = np.asarray(vertices, dtype=np.float64)
    if not np.isfinite(vertices).all():
        return depth, mask
    low = np.floor(vertices[:, :2].min(axis=0)).astype(int)
    high = np.ceil(vertices[:, :2].max(axis=0)).astype(int) + 1
    x0, y0 = max(int(low[0]), 0), max(int(low[1]), 0)
    x1, y1 = min(int(high[0]), width), min(int(high[1]), height)
    if x1 <= x0 or y1 <= y0:
        return depth, mask
    face_index, barycentric = rasterize_tiled(vertices.astype(np.float32), np.asarray(triangles), (x0, y0, x1, y1))
    covered = face_index >= 0
    heights = vertices[:, 2] - vertices[:, 2].min()
    corner_z = heights[np.asarray(triangles)[np.clip(face_index, 0, None)]]  # (h, w, 3)
    window = (slice(y0, y1), slice(x0, x1))
    depth[window] = np.where(covered, (barycentric * corner_z).sum(axis=-1), 0.0)
    mask[window] = covered
    return depth, mask


@dataclass
class FaceReconstruction:
    """One face reconstructed from a photo, in the photo's pixels (x right, y down, z towards the camera).

    Attributes:
        vertices: (468, 3) float32 dense mesh (facehub's MediaPipe topology).
        triangles: (852, 3) int64 vertex indices, fronts towards the camera.
        colors: (468, 3) uint8 RGB of the photo at each vertex.
        landmarks68: (68, 3) float32 iBUG 300-W landmarks (x, y in pixels, z towards the camera).
        pose: (yaw, pitch, roll) degrees (house convention, :mod:`facehub.modeling.geometry.rotations`).
        uv_position_map: (U, U, 3) float32 positions of the UV pixels (seed 003 eq. 10), in photo pixels.
        uvs: (468, 2) float32 vertex UVs in [0, 1]^2 (``v`` downwards, like image rows).
        texture: (U, U, 3) uint8 UV texture: the photo at each UV pixel's (x, y).
        image_to_crop: (2, 3) affine from the photo to the network's crop
            (:func:`~facehub.modeling.prn_dense.face_crop_transform`).
        crop_size: side of that crop (the model's ``sample_size``).
        depth: (H, W) float32 depth image: z of the visible surface above the mesh's deepest vertex
            (``z - vertices[:, 2].min()``, >= 0 on the face, larger is nearer), 0 off the face (``None`` when not
            computed).
        face_mask: (H, W) bool pixels the face covers (``None`` when the depth was not computed).
        face: the detected :class:`~facehub.modeling.faces.Face` the crop came from (``None`` when only landmarks
            were given).
    """

    vertices: np.ndarray
    triangles: np.ndarray
    colors: np.ndarray
    landmarks68: np.ndarray
    pose: tuple[float, float, float]
    uv_position_map: np.ndarray
    uvs: np.ndarray
    texture: np.ndarray
    image_to_crop: np.ndarray
    crop_size: int
    depth: np.ndarray | None = None
    face_mask: np.ndarray | None = None
    face: Face | None = None

    def to_trimesh(self, textured: bool = True):
        """A ``trimesh.Trimesh`` in the export frame (module docstring): UV-textured, or with vertex colours."""
        import trimesh
        from PIL import Image

        vertices = np.asarray(self.vertices, dtype=np.float64) * np.array([1.0, -1.0, 1.0])
        faces = np.asarray(self.triangles)[:, [0, 2, 1]]  # the y flip mirrors the mesh: keep fronts facing +z
        if textured:
            material = trimesh.visual.material.SimpleMaterial(
                image=Image.fromarray(np.ascontiguousarray(self.texture)),
                diffuse=(255, 255, 255, 255), ambient=(255, 255, 255, 255), specular=(0, 0, 0, 255), name="face",
            )
            uv = np.stack([self.uvs[:, 0], 1.0 - self.uvs[:, 1]], axis=1)  # OBJ / glTF texture v grows upwards
            visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
        else:
            rgba = np.hstack([self.colors, np.full((len(self.colors), 1), 255, np.uint8)])
            visual = trimesh.visual.ColorVisuals(vertex_colors=rgba)
        return trimesh.Trimesh(vertices=vertices, faces=faces, visual=visual, process=False)

    def export(self, path: str | Path) -> Path:
        """Write the mesh, format by extension: ``.obj`` (+ ``<name>.mtl`` and ``<name>.png`` texture beside it),
        ``.ply`` (vertex colours) or ``.glb`` (embedded texture). Returns the path written."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in EXPORT_FORMATS:
            raise ValueError(
                f"Cannot export {path.name!r}: unknown extension {path.suffix!r}; use one of {', '.join(EXPORT_FORMATS)}."
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".obj":
            from trimesh.exchange.obj import export_obj

            mesh = self.to_trimesh(textured=True)
            mesh.visual.material.name = path.stem
            text, files = export_obj(
                mesh, include_normals=False, include_texture=True, return_texture=True, mtl_name=f"{path.stem}.mtl"
            )
            for name, data in files.items():
                (path.parent / name).write_bytes(data)
            path.write_text(text)
        elif suffix == ".ply":
            path.write_bytes(self.to_trimesh(textured=False).export(file_type="ply"))
        else:
            path.write_bytes(self.to_trimesh(textured=True).export(file_type="glb"))
        return path


def build_reconstruction(
    image: np.ndarray,
    uv_crop_units: np.ndarray,
    image_to_crop: np.ndarray,
    crop_size: int,
    *,
    face: Face | None = None,
    compute_depth: bool = True,
    topology: FaceTopology | None = None,
) -> FaceReconstruction:
    """A :class:`FaceReconstruction` from a network output.

    Args:
        image: (H, W, 3) RGB uint8 photo.
        uv_crop_units: (U, U, 3) UV position map in crop units (``PRNDenseOutput.uv_position_map[i]`` moved to HWC).
        image_to_crop: (2, 3) affine the crop was made with; ``crop_size``: its side.
        face: the detected face, kept on the result.
        compute_depth: z-buffer the mesh into ``depth`` / ``face_mask`` (the slowest step, ~10 ms).
    """
    topology = topology or FaceTopology.default()
    uv_map = crop_units_to_image_positions(uv_crop_units, image_to_crop, crop_size).astype(np.float32)
    vertices = uv_position_map_to_mesh(uv_map, topology.uvs).astype(np.float32)
    colors = sample_image(image, vertices[:, :2])
    texture = sample_image(image, uv_map[..., :2])
    depth = face_mask = None
    if compute_depth:
        depth, face_mask = render_depth(vertices, topology.triangles, image.shape[0], image.shape[1])
    return FaceReconstruction(
        vertices=vertices,
        triangles=topology.triangles.copy(),
        colors=colors,
        landmarks68=landmarks68_from_mesh(vertices).astype(np.float32),
        pose=tuple(float(a) for a in pose_from_mesh(vertices)),
        uv_position_map=uv_map,
        uvs=topology.uvs.copy(),
        texture=texture,
        image_to_crop=np.asarray(image_to_crop, dtype=np.float64),
        crop_size=int(crop_size),
        depth=depth,
        face_mask=face_mask,
        face=face,
    )
