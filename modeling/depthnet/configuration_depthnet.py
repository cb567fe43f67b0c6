"""DepthNet configuration: the fields of :class:`DepthNetModel` and its named presets.

Fields (all are ``DepthNetModel.__init__`` arguments, saved in ``config.json``):

- ``num_keypoints``: N, keypoints per face (68 for iBUG 300-W order).
- ``formulation``: which of the paper's three variants the network is trained for.
  ``"pseudo_inverse"`` (section 2.3, the paper's best, model 7 of Table 1): the network outputs only the N depths
  ``z_p``; the affine is solved in closed form (eq. 3) inside the loss and at test time.
  ``"explicit_affine"`` (section 2.1, eq. 1): the network outputs N depths and the 8 affine parameters ``m``.
  Section 2.2 is the same network as 2.1 with the affine re-solved by eq. 3 at test time (``solve_affine=True`` in
  the pipeline).
- ``hidden_sizes``: widths of the densely connected layers that process the concatenated source and target
  keypoints (Figure 1, case B).
- ``norm``: ``"batch"`` or ``"none"``, the normalisation after each hidden layer.
- ``negative_slope``: LeakyReLU slope of the hidden layers.
- ``image_size``: ``None`` for case B (keypoints only, Figure 1 red); an integer S for case A, where a Siamese CNN
  reads the S x S source and target crops and its features join the keypoints before the dense layers.
- ``image_channels``: channels of the case-A CNN's conv + pool stages (one 3x3 valid conv and a 2x2 max-pool each).
"""

from __future__ import annotations

from facehub.modeling.modeling_utils import MAX_IMAGE_SIDE, MAX_REPEATS, check_at_most

FORMULATIONS = ("pseudo_inverse", "explicit_affine")
NORMS = ("batch", "none")

DEPTHNET_PRESETS: dict[str, dict] = {
    # The keypoint-only model (case B) the paper evaluates as model 7; its supplementary gives dense layers of
    # a few hundred units, which is what we use.
    "paper": dict(num_keypoints=68, formulation="pseudo_inverse", hidden_sizes=(256, 256, 256, 256), norm="batch"),
    # Small enough to train in a minute on two CPU cores.
    "cpu-small": dict(num_keypoints=68, formulation="pseudo_inverse", hidden_sizes=(128, 128), norm="batch"),
    # Case A (model 8 of Table 1): the same dense layers fed with a Siamese CNN over 64x64 crops as well.
    "paper-siamese": dict(
        num_keypoints=68, formulation="pseudo_inverse", hidden_sizes=(256, 256, 256, 256), norm="batch",
        image_size=64, image_channels=(32, 64, 128),
    ),
    "cpu-small-siamese": dict(
        num_keypoints=68, formulation="pseudo_inverse", hidden_sizes=(128, 128), norm="batch",
        image_size=32, image_channels=(16, 32),
    ),
}


def validate_depthnet_config(
    num_keypoints: int,
    formulation: str,
    hidden_sizes: tuple[int, ...] | list[int],
    norm: str,
    negative_slope: float,
    image_size: int | None = None,
    image_channels: tuple[int, ...] | list[int] = (),
) -> None:
    """Raise ``ValueError`` naming the offending field and value."""
    if num_keypoints < 4:
        raise ValueError(f"Got {num_keypoints} for `num_keypoints`; a 3D-to-2D affine needs at least 4 keypoints.")
    if formulation not in FORMULATIONS:
        raise ValueError(f"Got {formulation!r} for `formulation`; expected one of {FORMULATIONS}.")
    if len(hidden_sizes) == 0 or any(int(h) <= 0 for h in hidden_sizes):
        raise ValueError(f"Got {list(hidden_sizes)} for `hidden_sizes`; expected one or more positive widths.")
    check_at_most("len(hidden_sizes)", len(hidden_sizes), MAX_REPEATS, "layers")
    if norm not in NORMS:
        raise ValueError(f"Got {norm!r} for `norm`; expected one of {NORMS}.")
    if not 0 <= negative_slope < 1:
        raise ValueError(f"Got {negative_slope} for `negative_slope`; expected a value in [0, 1).")
    if image_size is not None:
        check_at_most("image_size", image_size, MAX_IMAGE_SIDE, "pixels")
        check_at_most("len(image_channels)", len(image_channels), MAX_REPEATS, "stages")
        size = int(image_size)
        for _ in image_channels:
            size = (size - 2) // 2
        if len(image_channels) == 0 or any(int(c) <= 0 for c in image_channels):
            raise ValueError(f"Got {list(image_channels)} for `image_channels`; expected one or more positive widths.")
        if size < 1:
            raise ValueError(
                f"Got {image_size} for `image_size`: {len(image_channels)} conv + pool stages leave no pixel; "
                "use larger crops or fewer `image_channels`."
            )
