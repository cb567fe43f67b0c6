"""Head pose from a fitted mesh, and a textured-mesh warp that re-renders a face under a new pose.

The warp follows 3DDFA's face profiling (Zhu et al., "Face Alignment Across Large Poses: A 3D Solution", CVPR 2016):
the image is sampled into the mesh's UV texture, the mesh is rotated about its centre, rendered with an orthographic
camera in pixels, and composited over the original image; pixels the face left are filled by ``cv2.inpaint``.
"""

from __future__ import annotations

import numpy as np
import torch

from facehub.modeling.geometry.procrustes import umeyama
from facehub.modeling.geometry.rotations import euler_from_rotation_matrix, rotation_matrix


def pose_from_mesh(vertices: np.ndarray, reference: np.ndarray | None = None) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees of a (468, 3) mesh (house frame): Umeyama of the frontal ``reference`` onto it,
    then :func:`euler_from_rotation_matrix`. The default reference is the default model's mean shape at head pose 0
    (turned by :attr:`~.morphable.MorphableFaceModel.rest_pose_rotation`), so the angles are head poses in the
    FaceAnalyzer's frame."""
    if reference is None:
        from facehub.modeling.geometry.morphable import MorphableFaceModel

        model = MorphableFaceModel.default()
        reference = model.mean_shape.double().numpy() @ model.rest_pose_rotation
    return euler_from_rotation_matrix(umeyama(reference, np.asarray(vertices)[: len(reference)]).rotation)


def rotate_face(image: np.ndarray, vertices: np.ndarray, yaw: float, pitch: float, roll: float | None = None,
                relative: bool = False, inpaint: bool = True, texture_size: int = 256) -> np.ndarray:
    """Re-render the face of ``image`` (H, W, 3 uint8 RGB) at a new pose; returns an (H, W, 3) uint8 image.

    Args:
        vertices: (468, 3) dense mesh in pixels (x right, y down, z towards the camera in pixel units).
        yaw, pitch, roll: target pose in degrees (house convention, :mod:`.rotations`); ``roll=None`` keeps the
            current roll. With ``relative=True`` they are a rotation added to the current pose instead.
        inpaint: fill the pixels the face uncovered with ``cv2.inpaint`` (else they keep the original pixels).
    """
    import cv2

    from facehub.modeling.geometry.render import FaceRenderer, OrthographicCamera
    from facehub.modeling.geometry.topology import FaceTopology
    from facehub.modeling.geometry.uv_maps import mesh_to_uv_position_map

    image = np.asarray(image)
    vertices = np.asarray(vertices, dtype=np.float64)[:468]
    h, w = image.shape[:2]
    topo = FaceTopology.default()
    if relative:
        delta = rotation_matrix(yaw, pitch, roll or 0.0)
    else:
        current = pose_from_mesh(vertices)
        target = rotation_matrix(yaw, pitch, current[2] if roll is None else roll)
        delta = target @ rotation_matrix(*current).T
    centre = vertices.mean(axis=0)
    moved = (vertices - centre) @ delta.T + centre
    # Texture: the image sampled at each UV texel's pixel position on the original mesh.
    xy = mesh_to_uv_position_map(vertices[:, :2].astype(np.float32), texture_size, topo, fill_band=3)
    img = torch.from_numpy(image.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    grid = torch.from_numpy(np.stack([xy[..., 0] / w * 2 - 1, xy[..., 1] / h * 2 - 1], axis=-1))[None].float()
    texture = torch.nn.functional.grid_sample(img, grid, align_corners=False)
    renderer = FaceRenderer((h, w))
    tri, uvs = torch.from_numpy(topo.triangles), torch.from_numpy(topo.uvs)
    with torch.no_grad():
        out = renderer(torch.from_numpy(moved).float()[None], tri, OrthographicCamera(), uvs=uvs,
                       albedo_texture=texture, background=img)
        old = renderer(torch.from_numpy(vertices).float()[None], tri, OrthographicCamera())
    new_mask = out.mask[0, 0].numpy() > 0
    base = image.copy()
    if inpaint:
        left = ((old.mask[0, 0].numpy() > 0) & ~new_mask).astype(np.uint8) * 255
        left = cv2.dilate(left, np.ones((3, 3), np.uint8))
        base = cv2.inpaint(np.ascontiguousarray(image), left, 5, cv2.INPAINT_TELEA)
    rendered = (out.image[0].permute(1, 2, 0).numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
    return np.where(new_mask[..., None], rendered, base)
