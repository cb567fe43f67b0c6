"""Topology of the dense face mesh: triangles, UV layout, 68-landmark map and UV-space region masks.

The dense mesh is MediaPipe's 468-vertex face mesh (the 10 iris points of the 478-point variant are not part of it).

- **Triangles.** MediaPipe publishes its tessellation only as an edge list, ``FACEMESH_TESSELATION`` in
  ``mediapipe/python/solutions/face_mesh_connections.py``. In that file's source text every three consecutive edges
  ``(a, b), (b, c), (c, a)`` close one triangle (the runtime ``frozenset`` loses that order, so the source literal is
  parsed). :func:`mediapipe_tessellation_triangles` checks that every triple closes, drops duplicates, and the
  result is 852 triangles over all 468 vertices, with every interior edge used once in each direction
  (consistently oriented). They are stored flipped so that ``(v1 - v0) x (v2 - v0)`` points to +z, towards the
  camera, on a frontal face (frame: x right, y down, z towards the camera; see :mod:`facehub.modeling.geometry`).
- **UV layout** (our own): a cylindrical projection of the frontal mean face of the default morphable model
  (axis along y behind the face, ``u ~ r * atan2(x, z - z_axis)``, ``v ~ y``), scaled with one factor into
  ``[margin, 1 - margin]^2`` and centred. ``u`` grows with image x, ``v`` with image y (downwards), so a UV map looks
  like a frontal face. It has no fold-overs (checked by the tests: every triangle keeps one orientation in UV).
- **Region masks** in UV space follow PRNet's weight mask (Feng et al., "Joint 3D Face Reconstruction and Dense
  Alignment with Position Map Regression Network", ECCV 2018): eyes = hulls of iBUG 37-42 and 43-48, nose = hull
  of iBUG 28-36, mouth = hull of iBUG 49-60, face = the mesh's UV footprint (holes filled) minus those, outside =
  the rest. :func:`prnet_weight_mask` gives the loss weights 16 : 4 : 3 : 0 (68 landmarks : eyes, nose, mouth :
  rest of face : outside), as used by PRNet and by seed 003 (its Fig. 5).

The stored topology (triangles, UVs) lives in ``data/face_model.safetensors``, written by
``python -m facehub.modeling.geometry.build_face_model``; loading it needs neither MediaPipe nor PyTorch3D.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facehub.modeling.geometry.landmarks68 import LANDMARK_GROUPS, NUM_MESH_VERTICES, landmark_weights

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_MODEL_FILE = DATA_DIR / "face_model.safetensors"

REGION_NAMES = ("eyes", "nose", "mouth", "face", "outside")
#: PRNet weight-mask values (Feng et al. 2018, Sec. 3.3; seed 003, Sec. 2.3): landmarks, eyes/nose/mouth, face, outside.
PRNET_WEIGHTS = {"landmarks": 16.0, "eyes": 4.0, "nose": 4.0, "mouth": 4.0, "face": 3.0, "outside": 0.0}


def mediapipe_tessellation_triangles() -> np.ndarray:
    """(852, 3) int64 triangles parsed from MediaPipe's ``FACEMESH_TESSELATION`` source, in MediaPipe's winding.

    Raises if a triple of consecutive edges does not close a triangle. Needs the ``mediapipe`` package (imported
    lazily; only its source file is read).
    """
    from mediapipe.python.solutions import face_mesh_connections

    tree = ast.parse(Path(face_mesh_connections.__file__).read_text())
    edges = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "FACEMESH_TESSELATION":
            edges = ast.literal_eval(node.value.args[0])
    if edges is None or len(edges) % 3:
        raise RuntimeError("Could not read FACEMESH_TESSELATION as a list of edge triples from MediaPipe's source.")
    triples = np.asarray(edges, dtype=np.int64).reshape(-1, 3, 2)
    closes = (triples[:, 0, 1] == triples[:, 1, 0]) & (triples[:, 1, 1] == triples[:, 2, 0])
    closes &= triples[:, 2, 1] == triples[:, 0, 0]
    if not closes.all():
        raise RuntimeError(f"{int((~closes).sum())} edge triples of FACEMESH_TESSELATION do not close a triangle.")
    triangles = triples[:, :, 0]
    _, first = np.unique(np.sort(triangles, axis=1), axis=0, return_index=True)
    return triangles[np.sort(first)]


def triangle_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(F, 3) unnormalised normals ``(v1 - v0) x (v2 - v0)`` (length = twice the triangle's area)."""
    v = np.asarray(vertices, dtype=np.float64)
    t = np.asarray(triangles)
    return np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])


def is_consistently_oriented(triangles: np.ndarray) -> bool:
    """True when no directed edge is used twice, i.e. neighbouring triangles share edges in opposite directions."""
    t = np.asarray(triangles)
    directed = np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]])
    return len(np.unique(directed, axis=0)) == len(directed)


def orient_towards_camera(triangles: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Flip the winding of all triangles when their area-weighted normal points away from the camera (-z)."""
    triangles = np.asarray(triangles)
    if triangle_normals(vertices, triangles).sum(axis=0)[2] < 0:
        return triangles[:, [0, 2, 1]].copy()
    return triangles.copy()


def uv_orientation(uvs: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(F,) signed doubled areas of the triangles in UV (all of one sign when the layout has no fold-overs)."""
    t = np.asarray(triangles)
    e1, e2 = uvs[t[:, 1]] - uvs[t[:, 0]], uvs[t[:, 2]] - uvs[t[:, 0]]
    return e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]


def untangle_uv(uvs: np.ndarray, triangles: np.ndarray, max_iterations: int = 500) -> np.ndarray:
    """Remove UV fold-overs by local Laplacian relaxation: vertices of triangles whose UV orientation disagrees with
    the majority (and their neighbours) move halfway to their neighbours' mean; the outer boundary stays fixed."""
    uvs = np.array(uvs, dtype=np.float64)
    t = np.asarray(triangles)
    n = len(uvs)
    directed = np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]])
    undirected, counts = np.unique(np.sort(directed, axis=1), axis=0, return_counts=True)
    # Only the outer boundary loop (the largest) stays fixed; the rims of the eye and mouth holes may move.
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rim = undirected[counts == 1]
    _, labels = connected_components(coo_matrix((np.ones(len(rim)), (rim[:, 0], rim[:, 1])), shape=(n, n)))
    on_rim = np.zeros(n, dtype=bool)
    on_rim[rim.ravel()] = True
    outer = np.bincount(labels[on_rim]).argmax()
    boundary = on_rim & (labels == outer)
    neighbours = [[] for _ in range(n)]
    for a, b in undirected:
        neighbours[a].append(b)
        neighbours[b].append(a)
    for _ in range(max_iterations):
        area = uv_orientation(uvs, t)
        bad = np.sign(area) != np.sign(np.sum(area))
        if not bad.any():
            break
        move = np.zeros(n, dtype=bool)
        move[t[bad].ravel()] = True
        for v in np.nonzero(move)[0]:
            move[neighbours[v]] = True
        for v in np.nonzero(move & ~boundary)[0]:
            uvs[v] = 0.5 * uvs[v] + 0.5 * uvs[neighbours[v]].mean(axis=0)
    return uvs


def cylindrical_uv(
    vertices: np.ndarray, triangles: np.ndarray | None = None, margin: float = 0.02, radius: float | None = None
) -> np.ndarray:
    """(V, 2) UVs in [0, 1]^2 from a cylindrical projection of a frontal face (vertical axis behind the face).

    ``u = r * atan2(x - x_c, z - z_axis)``, ``v = y``, with the axis ``radius`` (default: half the face's x extent)
    behind the face's front-most point; with ``triangles`` given, fold-overs (e.g. under the nose, where the surface
    faces down) are relaxed away (:func:`untangle_uv`); then one scale and offset put the layout centred in
    ``[margin, 1 - margin]^2`` (aspect kept).
    """
    v = np.asarray(vertices, dtype=np.float64)
    x_c = 0.5 * (v[:, 0].min() + v[:, 0].max())
    r = 0.5 * np.ptp(v[:, 0]) if radius is None else float(radius)
    z_axis = v[:, 2].max() - r
    u = r * np.arctan2(v[:, 0] - x_c, v[:, 2] - z_axis)
    uv = np.stack([u, v[:, 1]], axis=1)
    if triangles is not None:
        uv = untangle_uv(uv, triangles)
    lo, hi = uv.min(axis=0), uv.max(axis=0)
    scale = (1.0 - 2.0 * margin) / float((hi - lo).max())
    return (uv - 0.5 * (lo + hi)) * scale + 0.5


def _convex_hull_mask(points: np.ndarray, size: int) -> np.ndarray:
    """(size, size) bool: pixel centres ``((j + 0.5) / size, (i + 0.5) / size)`` inside the hull of UV ``points``."""
    from scipy.spatial import Delaunay

    centres = (np.arange(size) + 0.5) / size
    grid = np.stack(np.meshgrid(centres, centres, indexing="xy"), axis=-1).reshape(-1, 2)
    return (Delaunay(points).find_simplex(grid) >= 0).reshape(size, size)


@dataclass(frozen=True, eq=False)
class FaceTopology:
    """The dense face mesh's connectivity and UV layout.

    Attributes:
        triangles: (F, 3) int64 vertex indices, wound so normals point towards the camera on a frontal face.
        uvs: (V, 2) float32 UV coordinates in [0, 1]^2; ``u`` along image x, ``v`` along image y (down).
        landmark_weights: (68, V) float32 matrix mapping vertices to the 68 iBUG landmarks (each row sums to 1).
    """

    triangles: np.ndarray
    uvs: np.ndarray
    landmark_weights: np.ndarray

    @property
    def num_vertices(self) -> int:
        return int(self.uvs.shape[0])

    @property
    def landmark_uvs(self) -> np.ndarray:
        """(68, 2) UV positions of the iBUG landmarks."""
        return self.landmark_weights @ self.uvs

    @classmethod
    def default(cls) -> FaceTopology:
        """The MediaPipe 468-vertex topology stored with the default face model."""
        return _default_topology()

    def landmark_pixels(self, size: int) -> np.ndarray:
        """(68, 2) integer (column, row) pixels of the landmarks in a ``size`` x ``size`` UV map."""
        return np.clip(np.floor(self.landmark_uvs * size), 0, size - 1).astype(np.int64)

    def footprint_mask(self, size: int = 256) -> np.ndarray:
        """(size, size) bool: pixels whose centre lies on the mesh in UV, with interior holes (eyes, mouth) filled."""
        from scipy.ndimage import binary_fill_holes

        from facehub.modeling.geometry.uv_maps import rasterize_uv

        return binary_fill_holes(rasterize_uv(self.uvs, self.triangles, size).face_index >= 0)

    def region_masks(self, size: int = 256) -> dict[str, np.ndarray]:
        """Disjoint (size, size) bool masks ``eyes``, ``nose``, ``mouth``, ``face``, ``outside`` covering the map."""
        return {k: v.copy() for k, v in _region_masks(self, size).items()}


@functools.lru_cache(maxsize=1)
def _default_topology() -> FaceTopology:
    from safetensors.numpy import load_file

    if not DEFAULT_MODEL_FILE.exists():
        raise FileNotFoundError(
            f"{DEFAULT_MODEL_FILE} is missing; rebuild it with `python -m facehub.modeling.geometry.build_face_model`."
        )
    data = load_file(str(DEFAULT_MODEL_FILE))
    uvs = data["uvs"].astype(np.float32)
    return FaceTopology(
        triangles=data["triangles"].astype(np.int64),
        uvs=uvs,
        landmark_weights=landmark_weights(NUM_MESH_VERTICES).astype(np.float32),
    )


@functools.lru_cache(maxsize=1)
def mirror_vertex_map() -> np.ndarray:
    """(468,) int64 permutation ``m``: vertex ``m[i]`` is the left-right mirror of vertex ``i`` (``m[m] = identity``;
    the 28 vertices on the midline map to themselves).

    Found on the default morphable model's mean face, which is symmetric about ``x = 0``: each vertex's mirror
    ``(-x, y, z)`` lies within 1.3 mm of its partner (face width 140 mm). A face flipped horizontally is the mesh
    ``flip(vertices[m])``: the same topology, so its UV position map and 68 landmarks follow from the usual maps.
    """
    from safetensors.numpy import load_file
    from scipy.spatial import cKDTree

    mean_shape = load_file(str(DEFAULT_MODEL_FILE))["mean_shape"].astype(np.float64)
    mirrored = mean_shape * np.array([-1.0, 1.0, 1.0])
    distance, partner = cKDTree(mean_shape).query(mirrored)
    symmetric = distance.max() < 0.02 * np.ptp(mean_shape[:, 0])
    if not symmetric or not np.array_equal(partner[partner], np.arange(len(partner))):
        raise RuntimeError(f"The mean face in {DEFAULT_MODEL_FILE} is not left-right symmetric about x = 0.")
    return partner.astype(np.int64)


@functools.lru_cache(maxsize=8)
def _region_masks(topology: FaceTopology, size: int) -> dict[str, np.ndarray]:
    lm = topology.landmark_uvs.astype(np.float64)
    g = LANDMARK_GROUPS
    eyes = _convex_hull_mask(lm[list(g["right_eye"])], size) | _convex_hull_mask(lm[list(g["left_eye"])], size)
    nose = _convex_hull_mask(lm[list(g["nose"])], size) & ~eyes
    mouth = _convex_hull_mask(lm[list(g["outer_lips"])], size) & ~eyes & ~nose
    footprint = topology.footprint_mask(size) | eyes | nose | mouth
    face = footprint & ~(eyes | nose | mouth)
    return {"eyes": eyes, "nose": nose, "mouth": mouth, "face": face, "outside": ~footprint}


def uv_region_masks(size: int = 256, topology: FaceTopology | None = None) -> dict[str, np.ndarray]:
    """Disjoint UV-space region masks (``eyes``, ``nose``, ``mouth``, ``face``, ``outside``) for the default mesh."""
    return (topology or FaceTopology.default()).region_masks(size)


def prnet_weight_mask(size: int = 256, topology: FaceTopology | None = None) -> np.ndarray:
    """(size, size) float32 PRNet loss weights: 16 on the 68 landmark pixels, 4 on eyes / nose / mouth, 3 on the
    rest of the face, 0 outside (Feng et al. 2018; seed 003 eq. for its weighted SSIM loss)."""
    topology = topology or FaceTopology.default()
    masks = topology.region_masks(size)
    weights = np.zeros((size, size), dtype=np.float32)
    for name in ("face", "eyes", "nose", "mouth"):
        weights[masks[name]] = PRNET_WEIGHTS[name]
    cols, rows = topology.landmark_pixels(size).T
    weights[rows, cols] = PRNET_WEIGHTS["landmarks"]
    return weights
