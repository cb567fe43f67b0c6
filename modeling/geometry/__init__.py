"""Geometry shared by every method.

Conventions (the one place they are written down):

- Image coordinates are pixels, x to the right, y down, origin at the top-left corner of the top-left pixel.
- Depth ``z`` grows towards the camera, in the same units as x and y.
- Public angles are degrees; functions taking radians say so in their name (``*_rad``).
"""

from facehub.modeling.geometry.affine import apply_affine_3d_to_2d, solve_affine_3d_to_2d

__all__ = ["apply_affine_3d_to_2d", "solve_affine_3d_to_2d"]
