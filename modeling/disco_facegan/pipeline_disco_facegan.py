"""Controllable face generation with DiscoFaceGAN (seed 002): :class:`DiscoFaceGANPipeline`.

A face is drawn from five factors: ``identity`` (alpha: identity shape and albedo coefficients), ``expression``
(beta), ``lighting`` (gamma: 3 x 9 SH coefficients, flattened), ``pose`` (theta: yaw, pitch, roll in degrees, the
house convention) and ``noise``. The first four are morphable-model coefficients, produced by the factor VAEs'
decoders from normal draws (:meth:`DiscoFaceGANPipeline.sample_factors`); any of them can be replaced by values of
one's own, and the generator (a StyleGAN2 whose mapping network reads the standardised coefficients and the noise)
draws the face they describe::

    pipe = DiscoFaceGANPipeline.from_pretrained("facehub/disco-facegan")
    out = pipe(num_images=4, generator=torch.Generator().manual_seed(0))       # out.images, out.factors
    g = pipe.sample_factors(4, generator=torch.Generator().manual_seed(1))
    same_people = pipe(factors={**out.factors, "expression": g["expression"]})  # only the expression changes
    turned = pipe(factors=out.factors, yaw=30.0)
    face = pipe.embed("photo.jpg")                                                # a real face, embedded (Sec. 5.2)
    smiling = pipe.edit(face, expression=g["expression"][:1], yaw=20.0)          # .images: the photo, edited

``truncation_psi`` < 1 applies the paper's attribute-preserving truncation (Supplement IV): only the identity's part
of ``w`` moves towards the average identity, so expression, lighting and pose stay as given.
``return_renders=True`` also returns the morphable model's own render of every factor set (what the generator was
taught to imitate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from facehub.modeling.disco_facegan.configuration_disco_facegan import FACTOR_KEYS, FACTORS
from facehub.modeling.disco_facegan.factors import factors_from_lambda, generator_input, lambda_from_factors
from facehub.modeling.disco_facegan.modeling_disco_facegan import FactorVAEs
from facehub.modeling.modeling_utils import FaceHubPipeline
from facehub.modeling.pipeline_utils import ImagePipelineOutput, check_output_type, convert_images
from facehub.modeling.stylegan2 import StyleGAN2Generator, tensor_to_uint8

#: Most images one call makes.
MAX_IMAGES_PER_CALL = 256
#: Identities averaged for the attribute-preserving truncation centre.
TRUNCATION_SAMPLES = 2000


@dataclass
class DiscoFaceGANPipelineOutput(ImagePipelineOutput):
    """What :class:`DiscoFaceGANPipeline` returns.

    Attributes:
        images: PIL images (``output_type="np"``: RGB uint8 arrays; ``"pt"``: the (N, 3, H, W) tensor in [-1, 1]).
        factors: the factors used, one row per image: ``identity``, ``expression``, ``lighting`` (N, 27),
            ``pose`` (N, 3) degrees, ``noise``.
        renders: with ``return_renders=True``, the morphable model's render of each factor set, as ``images``.
    """

    factors: dict[str, torch.Tensor]
    renders: list | torch.Tensor | None = None


class DiscoFaceGANPipeline(FaceHubPipeline):
    """Generate faces from controllable factors; see the module docstring."""

    model_cpu_offload_seq = "factor_vaes->image_generator"

    def __init__(self, image_generator: StyleGAN2Generator, factor_vaes: FactorVAEs):
        super().__init__()
        self.register_modules(image_generator=image_generator, factor_vaes=factor_vaes)
        self._identity_centre: torch.Tensor | None = None
        self._renderer = None
        self._photo_editor = None

    @property
    def noise_dim(self) -> int:
        return int(self.image_generator.input_dim - sum(self.factor_vaes.factor_dims.values()))

    # -- factors ---------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def sample_factors(self, count: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """``count`` new factor sets: the VAE decoders of normal draws, and normal noise (pose in degrees)."""
        if not 1 <= int(count) <= MAX_IMAGES_PER_CALL:
            raise ValueError(f"Got {count} for the number of faces; expected 1 to {MAX_IMAGES_PER_CALL}.")
        lam = self.factor_vaes.sample(int(count), generator=generator)
        noise = torch.randn(int(count), self.noise_dim, generator=generator).to(lam["pose"].device)
        return {key: value.cpu() for key, value in factors_from_lambda(lam, noise).items()}

    def check_factors(self, factors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``factors`` as float tensors on the model's device, every key present with matching rows and widths."""
        missing = [key for key in FACTOR_KEYS if key not in factors]
        unknown = sorted(set(factors) - set(FACTOR_KEYS))
        if missing or unknown:
            raise ValueError(f"`factors` must have exactly the keys {list(FACTOR_KEYS)}; missing {missing}, unknown "
                             f"{unknown}. pipe.sample_factors(n) gives a complete set to start from.")
        widths = {**self.factor_vaes.factor_dims, "noise": self.noise_dim}
        device, dtype = self.image_generator.const.device, self.image_generator.const.dtype
        checked, rows = {}, None
        for key in FACTOR_KEYS:
            value = torch.as_tensor(factors[key]).to(device, dtype)
            value = value.reshape(len(value), -1) if value.ndim >= 2 else value.reshape(1, -1)
            if value.shape[1] != widths[key]:
                raise ValueError(f"factors[{key!r}] has {value.shape[1]} values per face; this model reads "
                                 f"{widths[key]}.")
            if rows is not None and len(value) != rows:
                raise ValueError(f"factors[{key!r}] has {len(value)} rows; the other factors have {rows}.")
            rows = len(value)
            checked[key] = value
        if not 1 <= rows <= MAX_IMAGES_PER_CALL:
            raise ValueError(f"Got {rows} faces; expected 1 to {MAX_IMAGES_PER_CALL}.")
        return checked

    # -- truncation ------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def identity_centre(self) -> torch.Tensor:
        """``w_bar_alpha = E_alpha[w(alpha, u_j = 0)]`` (Supplement IV): the mean ``w`` of many identities with the
        other factors at their data mean and no noise."""
        if self._identity_centre is None:
            lam = self.factor_vaes.sample(TRUNCATION_SAMPLES, generator=torch.Generator().manual_seed(0))
            self._identity_centre = self.image_generator.map(self._neutral_input(lam["identity"])).mean(dim=0)
        return self._identity_centre

    def _neutral_input(self, identity: torch.Tensor) -> torch.Tensor:
        """Generator input with this identity and every other factor at its data mean (standardised 0), no noise."""
        parts = [self.factor_vaes.standardise("identity", identity)]
        parts += [identity.new_zeros(len(identity), self.factor_vaes.factor_dims[f]) for f in FACTORS[1:]]
        return torch.cat([*parts, identity.new_zeros(len(identity), self.noise_dim)], dim=-1)

    def styles(self, factors: dict[str, torch.Tensor], truncation_psi: float = 1.0) -> torch.Tensor:
        """``w`` (N, latent) of checked ``factors``, with the attribute-preserving truncation when ``psi`` < 1:
        ``w' = w + (1 - psi) (w_bar_alpha - w(alpha, u_j = 0))``."""
        lam = lambda_from_factors(factors)
        w = self.image_generator.map(generator_input(self.factor_vaes, lam, factors["noise"]))
        if truncation_psi != 1.0:
            neutral = self.image_generator.map(self._neutral_input(lam["identity"]))
            w = w + (1.0 - float(truncation_psi)) * (self.identity_centre() - neutral)
        return w

    # -- generation ------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(self, num_images: int | None = None, *, factors: dict[str, torch.Tensor] | None = None,
                 yaw: float | None = None, pitch: float | None = None, roll: float | None = None,
                 truncation_psi: float = 1.0, noise_mode: str = "const", generator: torch.Generator | None = None,
                 output_type: str = "pil", return_renders: bool = False, return_dict: bool = True):
        """Generate faces.

        Args:
            num_images: how many factor sets to draw with ``generator`` (default 1); or give ``factors`` (a dict as
                :meth:`sample_factors` returns, one row per face).
            yaw, pitch, roll: set that pose angle (degrees) for every face, leaving the other factors as they are.
            truncation_psi: the attribute-preserving truncation (module docstring; 1: none).
            noise_mode: the synthesis network's per-pixel noise: ``"const"`` (stored maps: the same factors give the
                same image), ``"random"`` (drawn with ``generator``) or ``"none"``.
            output_type: ``"pil"``, ``"np"`` or ``"pt"``.
            return_renders: also return the morphable model's render of every factor set.
        """
        if output_type != "pt":
            check_output_type(output_type)
        if factors is not None and num_images is not None:
            raise ValueError("Give `num_images` or `factors`, not both: the number of faces comes from `factors`.")
        if factors is None:
            factors = self.sample_factors(1 if num_images is None else int(num_images), generator=generator)
        factors = self.check_factors(factors)
        for column, angle in enumerate((yaw, pitch, roll)):
            if angle is not None:
                if not -180.0 <= float(angle) <= 180.0:
                    raise ValueError(f"Got {angle} for a pose angle; expected degrees in [-180, 180].")
                factors["pose"] = factors["pose"].clone()
                factors["pose"][:, column] = float(angle)
        w = self.styles(factors, truncation_psi)
        images = self.image_generator(w, input_is_w=True, noise_mode=noise_mode, generator=generator).images
        renders = None
        if return_renders:
            renders = self.render(factors).image
        if output_type == "pt":
            out_images, out_renders = images, renders
        else:
            out_images = convert_images(list(tensor_to_uint8(images)), output_type)
            out_renders = None if renders is None else convert_images(list(tensor_to_uint8(renders)), output_type)
        output = DiscoFaceGANPipelineOutput(images=out_images, factors={k: v.cpu() for k, v in factors.items()},
                                            renders=out_renders)
        return output if return_dict else (out_images,)

    # -- real photos (Sec. 5.2) ------------------------------------------------------------------------------------

    def photo_editor(self):
        """The :class:`~facehub.modeling.disco_facegan.pipeline_embedding.DiscoFaceGANRotationPipeline` on this
        pipeline's own generator and VAEs (made on first use): it finds, embeds and edits faces of photos."""
        if self._photo_editor is None:
            from facehub.modeling.disco_facegan.pipeline_embedding import DiscoFaceGANRotationPipeline

            self._photo_editor = DiscoFaceGANRotationPipeline(image_generator=self.image_generator,
                                                              factor_vaes=self.factor_vaes)
        return self._photo_editor

    def embed(self, image, face_index: int = 0, embed_steps: int | None = None):
        """Embed a face of a photo (array, PIL image or path) into W+ for :meth:`edit` (eq. 11; ``EmbeddedPhoto``
        with ``.factors`` read from it). ``face_index``: which face, largest first."""
        editor = self.photo_editor()
        if embed_steps is None:
            return editor.embed_photo(image, face_index)
        return editor.embed_photo(image, face_index, embed_steps)

    def edit(self, embedded, **changes):
        """The embedded photo with factors changed and the face pasted back: ``expression=``, ``lighting=``,
        ``identity=`` (one row each), ``yaw=`` / ``pitch=`` (degrees), ``output_type=``. Returns
        ``DiscoFaceGANEditOutput`` (``.images``, ``.crops``, ``.factors``)."""
        return self.photo_editor().edit(embedded, **changes)

    def render(self, factors: dict[str, torch.Tensor]):
        """The morphable model's render of checked ``factors`` at the generator's resolution
        (:class:`~facehub.modeling.disco_facegan.rendering.FactorRender`)."""
        from facehub.modeling.disco_facegan.rendering import FactorRenderer

        size = int(self.image_generator.config.resolution)
        if self._renderer is None or self._renderer.image_size != size:
            self._renderer = FactorRenderer(size).to(self.image_generator.const.device)
        lam = lambda_from_factors(self.check_factors(factors))
        return self._renderer.render(lam)


def factors_to_numpy(factors: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """The factors as float32 arrays (for JSON or a table)."""
    return {key: value.detach().cpu().numpy().astype(np.float32) for key, value in factors.items()}
