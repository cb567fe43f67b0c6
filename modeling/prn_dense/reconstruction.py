"""From a predicted UV position map to a reconstructed face in the photo: mesh, landmarks, pose, colours, depth,
a dense mesh, a texture completed by symmetry, and export to OBJ (textured), PLY (vertex colours) and GLB (textured).

A UV position map stores one 3D point per UV pixel (seed 003 eq. 10, ``Pos(u_i, v_i) = (x_i, y_i, z_i)``; PRNet,
Feng et al. ECCV 2018, section 3.1). :func:`build_reconstruction` takes the network's map in crop units, maps it back
to the photo's pixels (:func:`~facehub.modeling.prn_dense.cropping.crop_units_to_image_positions`) and reads
everything else off it, as PRNet's ``api`` does with its own topology:

- vertices: the map sampled bilinearly at the vertex UVs of facehub's 468-vertex face mesh
  (:func:`facehub.modeling.geometry.uv_maps.uv_position_map_to_mesh`, :class:`~facehub.modeling.geometry.FaceTopology`);
- the 68 iBUG landmarks in 3D (:func:`facehub.modeling.geometry.landmarks68.landmarks68_from_mesh`, with the jaw
  moved to its 3D depth behind the mesh's rim, :func:`facehub.modeling.geometry.jaw_depth.jaw_offsets`) and the head
  pose (:func:`facehub.modeling.geometry.profiling.pose_from_mesh`);
- colours: the photo sampled at each vertex, and a UV texture: the photo sampled at every UV pixel's (x, y), PRNet's
  texture (no visibility test: surfaces hidden at large yaw take the colour of what covers them);
- the dense mesh (:meth:`FaceReconstruction.dense_mesh`): the whole map as PRNet builds its mesh, every UV pixel of
  the face region a vertex of a grid triangulation (:mod:`facehub.modeling.geometry.dense_mesh`; about 30k vertices
  from a 128 px map), eyes and mouth closed or left open;
- the texture completed by symmetry (:attr:`FaceReconstruction.texture_completion`, or at any resolution
  :meth:`FaceReconstruction.texture_completion_at`): per-texel visibility from the 468-vertex mesh, hidden texels
  filled from their mirror texels (:func:`facehub.modeling.geometry.texture_completion.complete_texture`); the dense
  mesh is textured with it, by default at 256 px (the photo is kept on the reconstruction for that);
- a depth image: the mesh z-buffered in the photo's pixels (:func:`facehub.modeling.geometry.zbuffer.rasterize_box`),
  measured from the mesh's deepest vertex as the synthetic face world measures its depth images, so it is >= 0 on the
  face and 0 means "no face".

Frames: everything in :class:`FaceReconstruction` is in photo pixels, x right, y down, z towards the camera (the house
frame, :mod:`facehub.modeling.geometry`). Exported files use the right-handed y-up frame of OBJ / glTF viewers:
``(x, -y, z)`` in pixels, triangles re-wound so their fronts still face the viewer (+z).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facehub.modeling.faces.analyzer import Face
from facehub.modeling.geometry.dense_mesh import (
    EXPORT_FORMATS,
    DenseMesh,
    dense_mesh_from_uv_position_map,
    export_mesh,
    mesh_to_trimesh,
)
from facehub.modeling.geometry.jaw_depth import jaw_offsets
from facehub.modeling.geometry.landmarks68 import landmarks68_from_mesh
from facehub.modeling.geometry.profiling import pose_from_mesh
from facehub.modeling.geometry.topology import FaceTopology
from facehub.modeling.geometry.uv_maps import uv_position_map_to_mesh
from facehub.modeling.prn_dense.cropping import crop_units_to_image_positions

TEXTURE_CHOICES = ("completed", "photo")
#: Default side of a dense mesh's texture: finer than a 128 px map (the mesh has two grid points per map pixel).
DENSE_TEXTURE_SIZE = 256


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
    from facehub.modeling.geometry.zbuffer import rasterize_box

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
    face_index, barycentric = rasterize_box(vertices, np.asarray(triangles), (x0, y0, x1, y1))
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

    Two meshes: the fields ``vertices`` / ``triangles`` / ``colors`` / ``uvs`` are the 468-vertex mesh of facehub's
    topology (what landmarks, pose, mirroring and rendering code need); :meth:`dense_mesh` is the whole UV position map
    as a mesh (PRNet's, ~30k vertices from a 128 px map). :meth:`export` writes either (``dense=True`` for the dense
    one, textured with the texture completed by symmetry at the mesh's resolution).

    Attributes:
        vertices: (468, 3) float32 mesh (facehub's MediaPipe topology).
        triangles: (852, 3) int64 vertex indices, fronts towards the camera.
        colors: (468, 3) uint8 RGB of the photo at each vertex.
        landmarks68: (68, 3) float32 iBUG 300-W landmarks (x, y in pixels, z towards the camera), the jaw (points
            1-17) on the head's 3D jaw line behind the mesh's rim, as AFLW2000-3D and 300W-LP label it: the mesh's own
            points (:attr:`mesh_landmarks68`) plus :func:`~facehub.modeling.geometry.jaw_depth.jaw_offsets`, as a
            morphable-model fit reports them
            (:meth:`~facehub.modeling.geometry.MorphableFaceModel.reconstruction_landmarks68`).
        pose: (yaw, pitch, roll) degrees (house convention, :mod:`facehub.modeling.geometry.rotations`), in the
            FaceAnalyzer's frame (``Face.pose`` of the same head reads the same).
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
        image_shape: (H, W) of the photo (texels that fall off it count as unseen in :attr:`texture_completion`;
            ``None``: taken from ``depth`` when there is one, else unbounded).
        image: the (H, W, 3) uint8 photo itself (a reference, not a copy), kept to sample textures finer than the
            map (:meth:`texture_at`); ``None``: only :attr:`texture`'s resolution is available.
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
    image_shape: tuple[int, int] | None = None
    image: np.ndarray | None = field(default=None, repr=False, compare=False)
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def texture_at(self, size: int) -> np.ndarray:
        """(size, size, 3) uint8 UV texture: the photo at the position of each texel centre, the map read bilinearly
        there (PRNet's texture, at any resolution; ``size`` = the map's side gives :attr:`texture`)."""
        size = int(size)
        if size == len(self.texture):
            return np.asarray(self.texture)
        if self.image is None:
            raise ValueError(f"Cannot sample a {size} px texture: this reconstruction keeps no photo (its `image` is "
                             f"None); ask for {len(self.texture)} px, or set `image` to the photo it came from.")
        centres = (np.arange(size) + 0.5) / size
        uvs = np.stack(np.meshgrid(centres, centres, indexing="xy"), axis=-1).reshape(-1, 2)
        positions = uv_position_map_to_mesh(np.asarray(self.uv_position_map, np.float32), uvs)
        return sample_image(self.image, positions[:, :2]).reshape(size, size, 3)

    def texture_completion_at(self, size: int | None = None, occluders: str = "keep"):
        """:meth:`texture_at` ``size`` (default: the map's side, :attr:`texture`) completed by left-right symmetry
        (:class:`~facehub.modeling.geometry.texture_completion.TextureCompletion`: ``texture``, per-texel
        ``visibility`` from the 468-vertex mesh, ``source`` of each texel); computed once per size.

        ``occluders="mirror"`` also replaces what the photo shows in front of the face (hair across a cheek) by the
        mirror texels where those show skin, as a swap wants; ``"keep"`` (default) keeps it
        (:func:`~facehub.modeling.geometry.texture_completion.complete_texture`)."""
        from facehub.modeling.geometry.texture_completion import check_occluders, complete_texture_from_mesh

        check_occluders(occluders)
        size = int(size or len(self.texture))
        key = ("completion", size) if occluders == "keep" else ("completion", size, occluders)
        if key not in self._cache:
            shape = self.image_shape or (tuple(self.depth.shape[:2]) if self.depth is not None else None)
            self._cache[key] = complete_texture_from_mesh(
                self.texture_at(size), np.asarray(self.vertices, np.float64), image_shape=shape, occluders=occluders)
        return self._cache[key]

    @property
    def mesh_landmarks68(self) -> np.ndarray:
        """(68, 3) float32 the 68 landmarks as points of the 468-vertex mesh itself
        (:func:`~facehub.modeling.geometry.landmarks68.landmarks68_from_mesh`). On a turned face their jaw runs along
        the mesh's rim, where :attr:`landmarks68` puts it at its 3D depth: inside the cheek's outline on the near side,
        possibly beyond the face's outline on the far side. A mask or an outline drawn on the photo wants these, and
        so does a crop (PRN-Dense's crops are cut around them)."""
        return landmarks68_from_mesh(np.asarray(self.vertices, np.float64)).astype(np.float32)

    @property
    def texture_completion(self):
        """:attr:`texture` completed by left-right symmetry (:meth:`texture_completion_at` the map's side; a subclass
        may keep its own completion in a field of this name, e.g. a morphable-model fit)."""
        return self.texture_completion_at(None)

    @property
    def completed_texture(self) -> np.ndarray:
        """(U, U, 3) uint8 UV texture with the texels hidden in the photo filled from their mirror texels."""
        return self.texture_completion_at(None).texture

    @property
    def texture_visibility(self) -> np.ndarray:
        """(U, U) float32 in [0, 1]: how well each texel of :attr:`texture` was seen in the photo."""
        return self.texture_completion_at(None).visibility

    def dense_mesh(
        self, openings: str = "closed", subdivision: int = 2, texture: str = "completed", smoothing: float = 1.0,
        texture_size: int | None = None, occluders: str = "keep",
    ) -> DenseMesh:
        """The whole UV position map as a mesh, PRNet's
        (:func:`~facehub.modeling.geometry.dense_mesh.dense_mesh_from_uv_position_map`).

        Args:
            openings: ``"closed"``: the eyes and mouth are filled with vertices and triangles; ``"open"``: they are
                left as holes (:attr:`DenseMesh.in_opening` flags the filled vertices either way).
            subdivision: grid points per map pixel along each axis: 2 (default) gives ~30k vertices from a 128 px
                map and ~119k from a 256 px one; 1 is one vertex per map pixel (~7.5k / ~30k).
            texture: ``"completed"`` (:meth:`texture_completion_at`) or ``"photo"`` (:meth:`texture_at`, hidden texels
                as the photo shows them): the mesh's UV texture; the vertex colours are that texture at the vertices'
                UVs (the photo's colour at the vertex wherever it was seen).
            texture_size: side of that texture; default :data:`DENSE_TEXTURE_SIZE` or the map's side if that is
                larger (the map's side when the photo is not kept, :attr:`image`).
            smoothing: Gaussian sigma in map pixels applied to the map inside the face before meshing
                (:func:`~facehub.modeling.geometry.dense_mesh.smooth_uv_map`: a network's pixel-scale noise would
                fold the surface); 0 puts every map pixel's own position on its vertex.
            occluders: with ``texture="completed"``, ``"mirror"`` replaces hair or anything else the photo shows in
                front of the face by the mirror texels where those show skin (:meth:`texture_completion_at`);
                ``"keep"`` (default) keeps it.
        """
        from facehub.modeling.geometry.texture_completion import check_occluders

        if texture not in TEXTURE_CHOICES:
            raise ValueError(f"Got {texture!r} for `texture`; use one of {', '.join(map(repr, TEXTURE_CHOICES))}.")
        check_occluders(occluders)
        if texture_size is None:
            texture_size = max(len(self.texture), DENSE_TEXTURE_SIZE if self.image is not None else 0)
        key = ("dense", openings, subdivision, texture, float(smoothing), int(texture_size), occluders)
        if key not in self._cache:
            image = (self.texture_completion_at(texture_size, occluders).texture if texture == "completed"
                     else self.texture_at(texture_size))
            self._cache[key] = dense_mesh_from_uv_position_map(
                np.asarray(self.uv_position_map), subdivision=subdivision, openings=openings, texture=image,
                smoothing=smoothing)
        return self._cache[key]

    def to_trimesh(self, textured: bool = True):
        """The 468-vertex mesh as a ``trimesh.Trimesh`` in the export frame (module docstring): UV-textured, or with
        vertex colours (``rec.dense_mesh().to_trimesh()`` for the dense one)."""
        return mesh_to_trimesh(self.vertices, self.triangles, self.uvs, self.colors, self.texture, textured=textured)

    def export(
        self, path: str | Path, *, dense: bool = False, openings: str = "closed", subdivision: int = 2,
        texture: str | None = None, smoothing: float = 1.0, texture_size: int | None = None,
    ) -> Path:
        """Write a mesh, format by extension: ``.obj`` (+ ``<name>.mtl`` and ``<name>.png`` texture beside it),
        ``.ply`` (vertex colours) or ``.glb`` (embedded texture). Returns the path written.

        Args:
            dense: write :meth:`dense_mesh` (``openings``, ``subdivision``, ``texture``, ``smoothing``,
                ``texture_size`` as there; its texture is the completed one unless ``texture="photo"``); ``False``
                (default) writes the 468-vertex mesh, textured with :attr:`texture` unless ``texture="completed"``.
        """
        if Path(path).suffix.lower() not in EXPORT_FORMATS:
            raise ValueError(
                f"Cannot export {Path(path).name!r}: unknown extension {Path(path).suffix!r}; use one of "
                f"{', '.join(EXPORT_FORMATS)}."
            )
        if dense:
            return self.dense_mesh(openings=openings, subdivision=subdivision, texture=texture or "completed",
                                   smoothing=smoothing, texture_size=texture_size).export(path)
        if texture not in (None, *TEXTURE_CHOICES):
            raise ValueError(f"Got {texture!r} for `texture`; use one of {', '.join(map(repr, TEXTURE_CHOICES))}.")
        image = self.completed_texture if texture == "completed" else self.texture
        return export_mesh(path, self.vertices, self.triangles, self.uvs, self.colors, image)


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
        landmarks68=(landmarks68_from_mesh(vertices) + jaw_offsets(vertices)).astype(np.float32),
        pose=tuple(float(a) for a in pose_from_mesh(vertices)),
        uv_position_map=uv_map,
        uvs=topology.uvs.copy(),
        texture=texture,
        image_to_crop=np.asarray(image_to_crop, dtype=np.float64),
        crop_size=int(crop_size),
        depth=depth,
        face_mask=face_mask,
        face=face,
        image_shape=(int(image.shape[0]), int(image.shape[1])),
        image=image,
    )
