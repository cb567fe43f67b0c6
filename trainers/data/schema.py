"""The columns of every facehub face dataset, real (``facehub prepare``) or synthetic (the synthetic face world).

One schema, so that every trainer reads either source the same way. Coordinates are pixels of the aligned crop
(``image``), z grows towards the camera, angles are degrees (conventions: :mod:`facehub.modeling.geometry`).

Core columns (both sources):

- ``image``: the aligned face crop, RGB, ``size`` x ``size``.
- ``landmarks68``: (68, 2) iBUG 300-W landmarks in crop pixels.
- ``dense_landmarks``: (N, 3) dense face-mesh vertices in crop pixels (N = 478 for photos, MediaPipe order; the
  synthetic world gives the 468 mesh vertices).
- ``pose``: (yaw, pitch, roll) degrees.
- ``embedding``: (128,) identity descriptor of the face (dlib ResNet; zeros where none was computed).
- ``identity``: integer identity label (-1: unknown); ``identity_name``: its readable name.
- ``attributes``: binary attributes (CelebA order when given), empty when none.
- ``uv_position_map``: (S, S, 3) PRNet-style UV position map of the dense mesh, crop pixels, float16.
- ``crop_to_image``: (2, 3) affine from crop pixels back to the original image; ``source``: file or generator id.

Synthetic-only ground truth (zeros/empty for photos): ``landmarks68_3d`` (68, 3), ``depth`` (size x size, float16),
``shape_coefficients``, ``expression_coefficients``, ``albedo_coefficients``, ``lighting`` (27 SH coefficients).
"""

from __future__ import annotations

from datasets import Array2D, Array3D, Features, Image, List, Value

ATTRIBUTES_FEATURE_NAME = "attribute_names"


def face_features(uv_size: int) -> Features:
    """Core columns, as written by ``facehub prepare``."""
    return Features(
        {
            "image": Image(),
            "landmarks68": Array2D(shape=(68, 2), dtype="float32"),
            "dense_landmarks": Array2D(shape=(None, 3), dtype="float32"),
            "pose": List(Value("float32"), length=3),
            "embedding": List(Value("float32"), length=128),
            "identity": Value("int64"),
            "identity_name": Value("string"),
            "attributes": List(Value("int8")),
            "uv_position_map": Array3D(shape=(uv_size, uv_size, 3), dtype="float16"),
            "crop_to_image": Array2D(shape=(2, 3), dtype="float32"),
            "source": Value("string"),
        }
    )


def fitted_features(uv_size: int) -> Features:
    """Core columns plus the morphable-model coefficients of a fit (``facehub prepare --fit``); same names as the
    synthetic world's, but fitted, not exact."""
    features = face_features(uv_size)
    features.update(
        {
            "shape_coefficients": List(Value("float32")),
            "expression_coefficients": List(Value("float32")),
            "albedo_coefficients": List(Value("float32")),
            "lighting": List(Value("float32"), length=27),
        }
    )
    return features


def synthetic_features(uv_size: int, image_size: int) -> Features:
    """Core columns plus the exact ground truth the synthetic face world knows."""
    features = face_features(uv_size)
    features.update(
        {
            "landmarks68_3d": Array2D(shape=(68, 3), dtype="float32"),
            "depth": Array2D(shape=(image_size, image_size), dtype="float16"),
            "shape_coefficients": List(Value("float32")),
            "expression_coefficients": List(Value("float32")),
            "albedo_coefficients": List(Value("float32")),
            "lighting": List(Value("float32"), length=27),
        }
    )
    return features
