"""DiscoFaceGAN's imitative and contrastive losses (seed 002, eq. 2-8) and the frozen networks they read generated
faces with (:class:`FaceReader`: the face-fitting regressor and dlib's face ResNet, both differentiable with respect to
the image). :mod:`facehub.trainers.disco_facegan` combines them with the adversarial loss and the schedule;
:mod:`facehub.trainers.evaluation.disco_facegan` reads faces with a :class:`FaceReader` on the evaluation-only
regressor.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from facehub.modeling.disco_facegan import FactorRender, warp_to

#: The identity-feature margin tau of eq. 2.
IDENTITY_MARGIN = 0.3
#: Side of the chips dlib's ResNet reads.
IDENTITY_CHIP = 150


class FaceReader:
    """The frozen networks the imitation reads generated faces with: the face-fitting regressor (landmarks, lighting,
    every coefficient) and dlib's face ResNet (identity features). Both are differentiable with respect to the image.
    """

    def __init__(self, regressor_id: str, face_model=None):
        from facehub.modeling.face_fitting.modeling_face_regressor import FaceCoefficientRegressor
        from facehub.modeling.faces.identity import DlibFaceDescriptor
        from facehub.modeling.geometry.morphable import MorphableFaceModel

        self.regressor = FaceCoefficientRegressor.from_pretrained(regressor_id, subfolder="regressor").eval()
        self.regressor.requires_grad_(False)
        self.identity_net = DlibFaceDescriptor().network  # the one network every descriptor of the file shares
        self.face_model = face_model if face_model is not None else MorphableFaceModel.default()
        self.identity_centre = torch.zeros(128)

    def to(self, device) -> FaceReader:
        self.identity_centre = self.identity_centre.to(device)
        self.regressor.to(device)
        self.identity_net.to(device)
        self.face_model.to(device)
        return self

    def regress(self, images: torch.Tensor, landmarks_hint: torch.Tensor) -> dict[str, torch.Tensor]:
        """Read (B, 3, S, S) images in [-1, 1] through the regressor's crop placed on ``landmarks_hint`` (B, 68, 2)
        pixels (:meth:`~facehub.modeling.face_fitting.FaceCoefficientRegressor.crop_tensor`). Returns its
        coefficients and the 68 landmarks in the images' pixels."""
        from facehub.modeling.face_fitting.modeling_face_regressor import posed_landmarks68

        crops, centre, side = self.regressor.crop_tensor(images, landmarks_hint.detach())
        out = self.regressor(crops)
        landmarks = posed_landmarks68(self.face_model, out.identity, out.expression, out.rotation, out.translation,
                                      out.log_scale)
        in_pixels = (centre - side[:, None] / 2.0)[:, None, :] + landmarks * side[:, None, None]
        return {"identity": out.identity, "expression": out.expression, "albedo": out.albedo,
                "lighting": out.lighting.reshape(len(images), 27), "rotation": out.rotation,
                "landmarks68": in_pixels}

    def read_located(self, images: torch.Tensor, start: torch.Tensor) -> dict[str, torch.Tensor]:
        """:meth:`regress` in two passes, for faces whose landmarks are not known: the crop on ``start`` ((1 or B,
        68, 2), e.g. the average face's), then the crop on the landmarks that first pass found."""
        first = self.regress(images, start.expand(len(images), -1, -1))
        return self.regress(images, first["landmarks68"])

    @staticmethod
    def as_lambda(read: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A reading of :meth:`regress` as DiscoFaceGAN's lambda: identity (shape and albedo), expression, lighting
        (27 SH values) and pose (radians)."""
        return {"identity": torch.cat([read["identity"], read["albedo"]], dim=1), "expression": read["expression"],
                "lighting": read["lighting"], "pose": read["rotation"]}

    def identity_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 128) identity features ``f_id`` of (B, 3, S, S) images in [-1, 1]: dlib's descriptor of the image
        resized to its 150 px chip, minus :attr:`identity_centre`.

        dlib's descriptors all lie in one narrow cone (the cosine of two different people's is about 0.9), so eq. 2's
        margin of 0.3 would never be reached; centred on the mean descriptor of the training faces
        (:meth:`centre_identity`), cosines spread over [-1, 1] as a face network's do."""
        chips = F.interpolate((images + 1.0) * 127.5, size=(IDENTITY_CHIP, IDENTITY_CHIP), mode="bilinear",
                              align_corners=False)
        return self.identity_net(chips.contiguous(memory_format=torch.channels_last)) - self.identity_centre

    @torch.no_grad()
    def centre_identity(self, crops: np.ndarray, batch_size: int = 64) -> None:
        """Set :attr:`identity_centre` to the mean dlib descriptor of (N, S, S, 3) uint8 ``crops``."""
        self.identity_centre = torch.zeros(128)
        total = torch.zeros(128, dtype=torch.float64)
        for start in range(0, len(crops), batch_size):
            images = torch.from_numpy(crops[start:start + batch_size]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
            total += self.identity_features(images).double().sum(dim=0)
        self.identity_centre = (total / max(len(crops), 1)).float()



def identity_imitation_loss(features: torch.Tensor, rendered_features: torch.Tensor,
                            margin: float = IDENTITY_MARGIN) -> torch.Tensor:
    """Eq. 2: ``max(1 - cos(f_id(x), f_id(x_hat)) - tau, 0)``, batch mean."""
    return (1.0 - F.cosine_similarity(features, rendered_features, dim=-1) - margin).clamp(min=0.0).mean()


def landmark_loss(landmarks: torch.Tensor, target: torch.Tensor, image_size: int) -> torch.Tensor:
    """Eq. 3: squared distance of (B, 68, 2) landmarks in units of the image side, mean over landmarks and batch."""
    return ((landmarks - target) / float(image_size)).square().sum(dim=-1).mean()


def lighting_loss(lighting: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 4: ``|gamma(x) - gamma_hat|_1`` (mean over the 27 SH coefficients and the batch)."""
    return (lighting.reshape(len(lighting), -1) - target.reshape(len(target), -1)).abs().mean()


def masked_mean_colour(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, 3) mean colour of (B, 3, H, W) images over (B, 1, H, W) masks."""
    return (images * mask).sum(dim=(2, 3)) / mask.sum(dim=(2, 3)).clamp(min=1.0)


def colour_loss(images: torch.Tensor, rendered: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Eq. 5: ``|c(x) - c(x_hat)|_1``, the mean face colour's L1 (mean over channels and batch)."""
    return (masked_mean_colour(images, mask) - masked_mean_colour(rendered, mask)).abs().mean()


def masked_l1(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference over the pixels (and channels) where ``mask`` is 1."""
    return ((a - b).abs() * mask).sum() / (mask.sum() * a.shape[1]).clamp(min=1.0)


def pixel_loss(images: torch.Tensor, rendered: FactorRender) -> torch.Tensor:
    """The early phase's loss: mean L1 between ``x`` and ``x_hat`` on the rendered face, both at half resolution."""
    small = F.avg_pool2d(images, 2)
    return masked_l1(small, F.avg_pool2d(rendered.image, 2), (F.avg_pool2d(rendered.mask, 2) > 0.99).to(images.dtype))


def expression_contrastive_loss(images: torch.Tensor, paired: torch.Tensor, render: FactorRender,
                                paired_render: FactorRender) -> torch.Tensor:
    """Eq. 6: ``|x(v) - x'|_1`` with ``x`` warped into ``x'``'s rendered geometry, on ``x'``'s rendered face."""
    warped, valid = warp_to(images, render, paired_render)
    return masked_l1(warped, paired, valid)


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Eq. 8: ``1 - cos(a, b)``, batch mean."""
    return (1.0 - F.cosine_similarity(a, b, dim=-1)).mean()
