"""Geometry shared by every method.

Conventions (the one place they are written down):

- Image coordinates are pixels, x to the right, y down, origin at the top-left corner of the top-left pixel.
- Depth ``z`` grows towards the camera, in the same units as x and y.
- Public angles are degrees; functions taking radians say so in their name (``*_rad``).
- Head poses (``(yaw, pitch, roll)``, :mod:`.rotations`) are read in one frame, the FaceAnalyzer's: pose 0 is its
  canonical frontal face (:mod:`facehub.modeling.faces.canonical`). A morphable model's rotation coefficients
  become a head pose through :meth:`MorphableFaceModel.head_pose`, so a reconstruction's ``pose``, the synthetic
  world's and ``Face.pose`` agree on one head.

Importing this package loads neither PyTorch3D nor MediaPipe; the modules that need them import them lazily.
"""

from facehub.modeling.geometry.affine import apply_affine_3d_to_2d, solve_affine_3d_to_2d
from facehub.modeling.geometry.morphable import MorphableFaceModel, sh_basis, sh_shading, vertex_normals
from facehub.modeling.geometry.profiling import pose_from_mesh, rotate_face
from facehub.modeling.geometry.render import FaceRenderer, OrthographicCamera, PerspectiveCamera, RenderOutput
from facehub.modeling.geometry.topology import FaceTopology, prnet_weight_mask, uv_region_masks
from facehub.modeling.geometry.uv_maps import mesh_to_uv_position_map, rasterize_uv, uv_position_map_to_mesh

__all__ = [
    "FaceRenderer",
    "FaceTopology",
    "MorphableFaceModel",
    "OrthographicCamera",
    "PerspectiveCamera",
    "RenderOutput",
    "apply_affine_3d_to_2d",
    "mesh_to_uv_position_map",
    "pose_from_mesh",
    "prnet_weight_mask",
    "rasterize_uv",
    "rotate_face",
    "sh_basis",
    "sh_shading",
    "solve_affine_3d_to_2d",
    "uv_position_map_to_mesh",
    "uv_region_masks",
    "vertex_normals",
]
