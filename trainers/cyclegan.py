"""CycleGAN training recipe (Zhu et al., ICCV 2017) for the adversarial repair of DepthNet face swaps (Moniz, Beckham
et al. 2018, section 3.3), plugged into the shared loop.

Run: ``facehub train cyclegan --config trainers/configs/cyclegan-repair-cpu-small.yaml data.domain_a=DIR
data.domain_b=DIR`` or ``accelerate launch -m facehub.trainers.cyclegan --config FILE``. The config is
:class:`CycleGANRepairConfig` with the presets ``cpu-small`` and ``paper`` (``--preset NAME``); ``facehub train
cyclegan --help`` lists every setting.

Data. Two unpaired image sets: ``data.domain_a`` = X, pasted face swaps (the target photo with the DepthNet-warped
source face pasted in), ideally cropped with :func:`facehub.modeling.cyclegan.crop_around_mask` so training sees
the framing :func:`~facehub.modeling.cyclegan.repair_face` uses; ``data.domain_b`` = Y, real faces. Each is either a
folder of images (searched recursively; unreadable files are skipped, counted and reported in a warning) or a dataset
saved by ``facehub prepare`` (its ``image`` column of aligned face crops; the ``prepare`` output folder or its
``dataset/`` subfolder). Images are centre-cropped to a square, resized to the preset's ``image_size`` and flipped
left-right at random (``data.flip``; the flips depend only on seed, epoch and sample, so resuming is exact). The two
sets need not have the same size: an epoch is as long as the larger one. ``data.cache_limit_mb`` (1024): when both
sets fit at ``image_size``, the resized crops stay in memory and training decodes nothing.

Networks and optimisers. ``generator_ab`` = G: X -> Y (the repair), ``generator_ba`` = F: Y -> X,
``discriminator_a`` = D_X, ``discriminator_b`` = D_Y (:mod:`facehub.modeling.cyclegan`). ``model.preset``
(``cpu-small``, ``paper``, ``paper-128``) with any network field of
:class:`~facehub.modeling.cyclegan.CycleGANConfig` as an override (``model.num_residual_blocks=6``); its objective
fields go under ``losses`` (``losses.cycle_loss_weight``, ``identity_loss_fraction``, ``history_size``,
``lr_decay_start_fraction``; defaults are CycleGAN's). Two Adam optimisers as in CycleGAN's code: ``"generator"``
over G and F, ``"discriminator"`` over D_X and D_Y, both with ``learning_rate`` (2e-4) and betas (``adam_beta1``,
``adam_beta2``) = (0.5, 0.999), no gradient clipping (``max_grad_norm: null``).

Objective, per step (CycleGAN section 3 and 4):

- generators: ``L_GAN(G, D_Y) + L_GAN(F, D_X) + lambda L_cyc(G, F) + 0.5 lambda L_identity`` -- eq. 3 with the
  adversarial terms of eq. 1 replaced by least squares (section 4: G minimises ``E_x[(D_Y(G(x)) - 1)^2]``), the
  L1 cycle loss of eq. 2 (``||F(G(x)) - x||_1 + ||G(F(y)) - y||_1``) weighted by ``cycle_loss_weight`` (lambda =
  10), and the identity loss of section 5.2 (``||G(y) - y||_1 + ||F(x) - x||_1``) weighted by
  ``identity_loss_fraction * lambda``. The discriminators' weights get no gradient from this step (they are read
  through detached copies of their parameters).
- discriminators: D_Y minimises ``E_y[(D_Y(y) - 1)^2] + E_x[D_Y(G(x))^2]`` (and D_X likewise), halved "to slow down
  the rate at which D learns" (section 4), where the generated images come from a history of the last
  ``history_size`` (50) fakes (Shrivastava et al.): each new fake is shown as is, or with probability 1/2 swapped
  for a stored one. The histories travel with the discriminator optimiser's state, so they are saved in every
  checkpoint and a resumed run continues with them.

Learning rate. CycleGAN keeps it constant for the first half of training and decays it linearly to zero over the
second half: both optimisers get ``linear_decay_factor`` as their schedule in the loop
(:meth:`CycleGANRepairTraining.learning_rate_schedules`), on top of ``lr_scheduler`` (``constant``, the default,
gives exactly CycleGAN's schedule); the decay starts at ``lr_decay_start_fraction * max_steps`` (0.5; 1 turns it
off). The loop logs the applied rates as ``lr/generator`` and ``lr/discriminator``.

Samples. With ``sample_steps`` (a method attribute, or the config's when it has one), the loop writes a grid of
pasted swaps, repairs and cycles (and the reverse direction) to ``samples/`` and TensorBoard.

Export. ``FaceRepairPipeline(repair=G, real_to_swap=F).save_pretrained(export/)`` plus the model card. The
discriminators are training state only; they live in the checkpoints.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from accelerate import PartialState
from PIL import Image
from torch.utils.data import Dataset

from facehub.modeling.cyclegan import CycleGANConfig, CycleGANGenerator, FaceRepairPipeline, PatchDiscriminator
from facehub.modeling.cyclegan.configuration_cyclegan import CYCLEGAN_PRESETS, cyclegan_config
from facehub.modeling.cyclegan.modeling_cyclegan import patchgan_receptive_field
from facehub.trainers.core import StepContext, TrainingConfig, TrainingMethod
from facehub.trainers.core.config import ConfigError, ConfigSection, ModelSection

logger = logging.getLogger(__name__)

METHOD_NAME = "cyclegan"
#: The registry's ``training`` entry of this method (``facehub/methods/cyclegan.py``).
METHOD_TARGET = "facehub.trainers.cyclegan:CycleGANRepairTraining"
#: CycleGANConfig fields that belong to the objective (``losses.<field>``); the others are network settings
#: (``model.<field>``, next to ``model.preset``).
OBJECTIVE_FIELDS = ("cycle_loss_weight", "identity_loss_fraction", "history_size", "lr_decay_start_fraction")
DEFAULT_CACHE_LIMIT_MB = 1024


# --------------------------------------------------------------------------------------------------------------------
# Config


@dataclass
class CycleGANModelConfig(ModelSection):
    """``model``: a :data:`~facehub.modeling.cyclegan.configuration_cyclegan.CYCLEGAN_PRESETS` name plus overrides of
    the network fields of :class:`~facehub.modeling.cyclegan.CycleGANConfig` (``null``: the preset's value).

    Fields:
        preset: ``cpu-small`` (64 px, trains on two CPU cores), ``paper`` (256 px, 9 residual blocks) or
            ``paper-128`` (128 px, 6 blocks).
        image_size: side of the square crops both generators read and write.
        channels: image channels.
        generator_channels: ngf, the generators' first width.
        num_downsamplings: stride-2 stages of each generator (the image size must be divisible by 2 ** this).
        num_residual_blocks: residual blocks at the generators' lowest resolution.
        discriminator_channels: ndf, the PatchGANs' first width.
        discriminator_layers: stride-2 layers of each PatchGAN (3: 70x70 patches).
        norm: ``instance``, ``batch`` or ``none``.
        padding: ``reflect``, ``replicate`` or ``zero``.
        dropout: dropout in the residual blocks.
    """

    model_presets: ClassVar[dict[str, dict[str, Any]]] = CYCLEGAN_PRESETS

    preset: str = "cpu-small"
    image_size: int | None = None
    channels: int | None = None
    generator_channels: int | None = None
    num_downsamplings: int | None = None
    num_residual_blocks: int | None = None
    discriminator_channels: int | None = None
    discriminator_layers: int | None = None
    norm: Literal["instance", "batch", "none"] | None = None
    padding: Literal["reflect", "replicate", "zero"] | None = None
    dropout: float | None = None


@dataclass
class CycleGANDataConfig(ConfigSection):
    """``data``: the two unpaired image sets (see the module docstring).

    Fields:
        domain_a: X, pasted face swaps: a folder of images (searched recursively) or a ``facehub prepare`` output.
        domain_b: Y, real faces: a folder of images or a ``facehub prepare`` output.
        flip: random left-right flips (a pure function of seed, epoch and sample).
        cache_limit_mb: keep the resized crops in memory when both sets fit in this many MiB.
    """

    domain_a: str | None = None
    domain_b: str | None = None
    flip: bool = True
    cache_limit_mb: float = DEFAULT_CACHE_LIMIT_MB

    def __post_init__(self):
        if self.cache_limit_mb < 0:
            raise ConfigError(f"Got {self.cache_limit_mb} for `data.cache_limit_mb`; it must be 0 or more.")


@dataclass
class CycleGANLossesConfig(ConfigSection):
    """``losses``: CycleGAN's objective (defaults are CycleGAN's).

    Fields:
        cycle_loss_weight: lambda of eq. 3, the weight of the L1 cycle loss.
        identity_loss_fraction: the identity loss weighs ``identity_loss_fraction * lambda`` (section 5.2).
        history_size: fakes in each discriminator's history (Shrivastava et al.); 0 shows only fresh fakes.
        lr_decay_start_fraction: the learning rate decays linearly to zero from this fraction of ``max_steps``
            (1: no decay).
    """

    cycle_loss_weight: float = 10.0
    identity_loss_fraction: float = 0.5
    history_size: int = 50
    lr_decay_start_fraction: float = 0.5


@dataclass
class CycleGANRepairConfig(TrainingConfig):
    """CycleGAN repair training: the shared fields of :class:`~facehub.trainers.core.TrainingConfig` with
    CycleGAN's optimiser (Adam, 2e-4, betas (0.5, 0.999), no clipping, batch 1) plus :class:`CycleGANModelConfig`,
    :class:`CycleGANDataConfig` and :class:`CycleGANLossesConfig`; the network and objective are validated together
    (:func:`~facehub.modeling.cyclegan.configuration_cyclegan.cyclegan_config`).

    Presets: ``cpu-small`` (64 px crops, trains on two CPU cores) and ``paper`` (CycleGAN at 256 px, batch 1).
    """

    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "cpu-small": {
            "max_steps": 10_000, "train_batch_size": 4, "learning_rate": 2e-4, "adam_beta1": 0.5,
            "adam_beta2": 0.999, "max_grad_norm": None, "lr_scheduler": "constant", "checkpointing_steps": 500,
            "checkpoints_total_limit": 2, "export_steps": 2500, "logging_steps": 50,
            "model": {"preset": "cpu-small"},
            "losses": {"cycle_loss_weight": 10.0, "identity_loss_fraction": 0.5, "history_size": 50,
                       "lr_decay_start_fraction": 0.5},
            "data": {"flip": True, "cache_limit_mb": 1024},
        },
        "paper": {
            "max_steps": 200_000, "train_batch_size": 1, "learning_rate": 2e-4, "adam_beta1": 0.5,
            "adam_beta2": 0.999, "max_grad_norm": None, "lr_scheduler": "constant", "checkpointing_steps": 5000,
            "export_steps": 50_000, "logging_steps": 100,
            "model": {"preset": "paper"},
            "losses": {"cycle_loss_weight": 10.0, "identity_loss_fraction": 0.5, "history_size": 50,
                       "lr_decay_start_fraction": 0.5},
        },
    }

    method: str = METHOD_NAME
    train_batch_size: int = 1
    learning_rate: float = 2e-4
    adam_beta1: float = 0.5
    max_grad_norm: float | None = None
    model: CycleGANModelConfig = field(default_factory=CycleGANModelConfig)
    data: CycleGANDataConfig = field(default_factory=CycleGANDataConfig)
    losses: CycleGANLossesConfig = field(default_factory=CycleGANLossesConfig)

    def __post_init__(self):
        super().__post_init__()
        self.model.validate(lambda **settings: cyclegan_config(**settings),
                            {"preset": self.model.preset, **self.model.overrides(), **self.losses.to_dict()},
                            other_keys=dict.fromkeys(self.losses.keys(), "losses"))

    def network(self) -> CycleGANConfig:
        """The validated :class:`~facehub.modeling.cyclegan.CycleGANConfig`: networks and objective together."""
        return cyclegan_config(self.model.preset, **self.model.overrides(), **self.losses.to_dict())


# --------------------------------------------------------------------------------------------------------------------
# Losses, the history of fakes and the learning-rate decay


def least_squares_gan_loss(scores: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Least-squares GAN loss (CycleGAN section 4, replacing the log-likelihood of eq. 1): the mean of
    ``(D(.) - 1)^2`` for a real target and ``D(.)^2`` for a generated one, over every patch score."""
    target = 1.0 if target_is_real else 0.0
    return (scores.float() - target).pow(2).mean()


def linear_decay_factor(step: int, max_steps: int, decay_start_fraction: float) -> float:
    """CycleGAN's schedule as a factor on the learning rate: 1 until ``decay_start_fraction * max_steps``, then a
    linear fall that reaches ``1 / (number of decaying steps)`` at the last step (0 just after it)."""
    decay_start = int(round(decay_start_fraction * max_steps))
    if step < decay_start:
        return 1.0
    return max(0.0, (max_steps - step) / (max_steps - decay_start))


class FakeImageHistory:
    """The image history buffer of Shrivastava et al. 2017, as CycleGAN uses it (section 4, 50 images).

    :meth:`query` takes a batch of freshly generated images and returns the batch the discriminator is trained on:
    until the history is full every new image is stored and shown; afterwards each new image is, with probability
    1/2, shown as is, or else swapped with a randomly chosen stored image (which is shown instead). Decisions use the
    history's own random generator, so they neither disturb nor depend on the global RNG; :meth:`state_dict` holds
    the stored images and that generator's state.
    """

    def __init__(self, capacity: int, seed: int):
        self.capacity = int(capacity)
        self.images: torch.Tensor | None = None  # (n <= capacity, C, H, W)
        self.random = torch.Generator().manual_seed(int(seed))

    def __len__(self) -> int:
        return 0 if self.images is None else len(self.images)

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        images = images.detach()
        if self.capacity == 0:
            return images
        if self.images is not None and self.images.device != images.device:
            self.images = self.images.to(images.device)
        shown = []
        for image in images:
            if len(self) < self.capacity:
                stored = image[None].clone()
                self.images = stored if self.images is None else torch.cat([self.images, stored.to(self.images)])
                shown.append(image)
            elif torch.rand((), generator=self.random).item() < 0.5:
                slot = int(torch.randint(self.capacity, (), generator=self.random))
                shown.append(self.images[slot].clone().to(image))
                self.images[slot] = image
            else:
                shown.append(image)
        return torch.stack(shown)

    def state_dict(self) -> dict[str, Any]:
        images = torch.empty(0) if self.images is None else self.images.detach().cpu().clone()
        return {"capacity": self.capacity, "images": images, "random_state": self.random.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["capacity"]) != self.capacity:
            raise ValueError(
                f"The checkpoint's history of fakes holds up to {int(state['capacity'])} images but this run's "
                f"`history_size` is {self.capacity}; resume with the same setting."
            )
        images = state["images"]
        self.images = images.clone() if images.numel() else None
        self.random.set_state(state["random_state"])


class DiscriminatorAdam(torch.optim.Adam):
    """Adam over both discriminators whose ``state_dict`` also carries the two histories of fakes.

    The histories are the discriminators' training data, so they belong to the discriminator's optimisation state;
    keeping them here puts them into every checkpoint the shared loop writes (it saves the optimisers' state dicts) and
    restores them on ``resume``. With several processes each one keeps its own history and the main process's is
    the one saved, so an exact resume is guaranteed for one process (as the loop is for the rest of the state).
    """

    def __init__(self, params, histories: dict[str, FakeImageHistory], **adam_options):
        super().__init__(params, **adam_options)
        self.fake_histories = histories

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["fake_histories"] = {name: history.state_dict() for name, history in self.fake_histories.items()}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        histories = state_dict.pop("fake_histories", {})
        super().load_state_dict(state_dict)
        for name, history_state in histories.items():
            self.fake_histories[name].load_state_dict(history_state)


# --------------------------------------------------------------------------------------------------------------------
# Data: two unpaired image domains


def _square_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop an RGB uint8 array to a square and resize it to ``size`` (Pillow's antialiased bicubic)."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = Image.fromarray(np.ascontiguousarray(image[top : top + side, left : left + side]))
    if side != size:
        square = square.resize((size, size), Image.Resampling.BICUBIC)
    return np.array(square, dtype=np.uint8)


class ImageFolderDomain:
    """Every image-suffixed file under ``root`` (recursively, sorted), read with facehub's image loader."""

    def __init__(self, root: Path):
        from facehub.trainers.data.prepare import IMAGE_SUFFIXES, scan_images

        self.root = root
        self.paths = [path for path, _ in scan_images(root)]
        if not self.paths:
            raise FileNotFoundError(f"No image files ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root}.")

    def __len__(self) -> int:
        return len(self.paths)

    def describe(self, index: int) -> str:
        return self.paths[index]

    def read(self, index: int) -> np.ndarray:
        from facehub.modeling.faces.image_io import load_image

        return load_image(self.paths[index])


class PreparedDatasetDomain:
    """The ``image`` column of a dataset saved by ``facehub prepare`` (``datasets.load_from_disk``)."""

    def __init__(self, folder: Path):
        import datasets

        loaded = datasets.load_from_disk(str(folder))
        if isinstance(loaded, datasets.DatasetDict):
            if "train" not in loaded:
                raise ValueError(f"{folder} holds the splits {sorted(loaded)} and no 'train' split; pass one split.")
            loaded = loaded["train"]
        if "image" not in loaded.column_names:
            raise ValueError(
                f"{folder} is a dataset without an 'image' column (columns: {loaded.column_names}); CycleGAN "
                "training needs the aligned face crops that `facehub prepare` writes there."
            )
        self.root = folder
        self.rows = loaded.select_columns(["image"])

    def __len__(self) -> int:
        return len(self.rows)

    def describe(self, index: int) -> str:
        return f"{self.root} row {index}"

    def read(self, index: int) -> np.ndarray:
        from facehub.modeling.faces.image_io import load_image

        return load_image(self.rows[index]["image"])


def _is_saved_dataset(folder: Path) -> bool:
    return (folder / "dataset_info.json").is_file() or (folder / "dataset_dict.json").is_file()


def open_image_domain(path: str | Path, option: str) -> ImageFolderDomain | PreparedDatasetDomain:
    """A saved dataset (``facehub prepare``'s output folder or its ``dataset/``) or a folder of image files."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Got {str(path)!r} for `data.{option}`, which is not a folder. Give a folder of images or a dataset "
            "saved by `facehub prepare`."
        )
    if _is_saved_dataset(folder):
        return PreparedDatasetDomain(folder)
    if _is_saved_dataset(folder / "dataset"):
        return PreparedDatasetDomain(folder / "dataset")
    return ImageFolderDomain(folder)


@dataclass
class DomainReport:
    """What reading one domain found: readable images, and the skipped ones with their reasons."""

    name: str
    source: str
    readable: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


class UnpairedImageDomains(Dataset):
    """Unpaired samples ``{"domain_a": (3, S, S), "domain_b": (3, S, S)}``, float in [-1, 1].

    On construction every image of both domains is read once: unreadable ones are dropped and counted
    (:attr:`reports`, and a warning), and when both domains at ``image_size`` fit in ``cache_limit_mb`` the resized
    crops are kept in memory so training decodes nothing. Sample ``i`` pairs image ``i mod len(A)`` with image
    ``i mod len(B)`` (any pairing will do: no loss compares an A image with a B image); the loop's sampler shuffles.

    The random left-right flips are a pure function of ``(seed, epoch, i)`` (the loop's dataloader hands the epoch
    to :meth:`set_epoch`), not of the global RNG, so a resumed run flips exactly the images the uninterrupted run
    would have flipped.
    """

    def __init__(
        self,
        domain_a: ImageFolderDomain | PreparedDatasetDomain,
        domain_b: ImageFolderDomain | PreparedDatasetDomain,
        image_size: int,
        flip: bool = True,
        cache_limit_mb: float = DEFAULT_CACHE_LIMIT_MB,
        seed: int = 0,
    ):
        self.image_size, self.flip, self.seed, self.epoch = int(image_size), bool(flip), int(seed), 0
        bytes_per_image = 3 * self.image_size**2
        cache = (len(domain_a) + len(domain_b)) * bytes_per_image <= cache_limit_mb * 2**20
        self.domains = {"domain_a": domain_a, "domain_b": domain_b}
        self.indices: dict[str, list[int]] = {}
        self.cached: dict[str, np.ndarray | None] = {}
        self.reports: dict[str, DomainReport] = {}
        for name, domain in self.domains.items():
            self.indices[name], self.cached[name], self.reports[name] = self._scan(name, domain, cache)

    def _scan(self, name: str, domain, cache: bool) -> tuple[list[int], np.ndarray | None, DomainReport]:
        from tqdm.auto import tqdm

        from facehub.modeling.faces.image_io import FaceHubImageError

        report = DomainReport(name, str(domain.root))
        readable, crops = [], []
        quiet = not PartialState().is_local_main_process
        for index in tqdm(range(len(domain)), desc=f"reading {name}", unit="image", disable=quiet, leave=False):
            try:
                image = domain.read(index)
            except FaceHubImageError as error:
                report.skipped.append((domain.describe(index), str(error)))
                continue
            readable.append(index)
            if cache:
                crops.append(_square_resize(image, self.image_size))
        report.readable = len(readable)
        if report.skipped and PartialState().is_local_main_process:
            source, reason = report.skipped[0]
            warnings.warn(
                f"data.{name}: skipped {len(report.skipped)} of {len(domain)} files that could not be read as images "
                f"(first: {source}: {reason})",
                stacklevel=3,
            )
        if not readable:
            raise ValueError(f"data.{name} ({domain.root}) has no readable image; check the folder or dataset.")
        return readable, (np.stack(crops) if cache else None), report

    def __len__(self) -> int:
        return max(len(indices) for indices in self.indices.values())

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _image(self, name: str, index: int, flip: bool) -> torch.Tensor:
        position = index % len(self.indices[name])
        cached = self.cached[name]
        if cached is not None:
            crop = cached[position]
        else:
            crop = _square_resize(self.domains[name].read(self.indices[name][position]), self.image_size)
        tensor = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float() / 127.5 - 1.0
        return tensor.flip(-1) if flip else tensor

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        flips = np.random.default_rng((self.seed, self.epoch, index)).random(len(self.domains)) < 0.5
        return {
            name: self._image(name, index, self.flip and flip) for name, flip in zip(self.domains, flips, strict=True)
        }


# --------------------------------------------------------------------------------------------------------------------
# The method


class CycleGANRepairTraining(TrainingMethod):
    """CycleGAN between pasted face swaps (``data.domain_a``) and real faces (``data.domain_b``); see the module
    docstring."""

    name = METHOD_NAME
    config_class = CycleGANRepairConfig
    config: CycleGANRepairConfig

    def __init__(self, config: CycleGANRepairConfig):
        super().__init__(config)
        self.preset = config.model.preset
        self.cyclegan: CycleGANConfig = config.network()
        self.fake_histories: dict[str, FakeImageHistory] = {}

    def build_models(self) -> dict[str, torch.nn.Module]:
        c = self.cyclegan
        return {
            "generator_ab": CycleGANGenerator(**c.generator_kwargs()),
            "generator_ba": CycleGANGenerator(**c.generator_kwargs()),
            "discriminator_a": PatchDiscriminator(**c.discriminator_kwargs()),
            "discriminator_b": PatchDiscriminator(**c.discriminator_kwargs()),
        }

    def build_optimizers(self, models: dict[str, torch.nn.Module]) -> dict[str, torch.optim.Optimizer]:
        """CycleGAN's two Adam optimisers: ``generator`` (G and F together) and ``discriminator`` (D_X and D_Y)."""
        c = self.config
        adam = dict(lr=c.learning_rate, betas=(c.adam_beta1, c.adam_beta2), weight_decay=c.weight_decay)
        process = PartialState().process_index
        self.fake_histories = {
            domain: FakeImageHistory(self.cyclegan.history_size, seed=c.seed * 1_000_003 + 2 * process + offset)
            for offset, domain in enumerate(("a", "b"))
        }
        generators = [*models["generator_ab"].parameters(), *models["generator_ba"].parameters()]
        discriminators = [*models["discriminator_a"].parameters(), *models["discriminator_b"].parameters()]
        return {
            "generator": torch.optim.Adam(generators, **adam),
            "discriminator": DiscriminatorAdam(discriminators, self.fake_histories, **adam),
        }

    def build_dataset(self) -> UnpairedImageDomains:
        options = self.config.data
        for option, meaning in (("domain_a", "pasted face swaps"), ("domain_b", "real faces")):
            if not getattr(options, option):
                raise ValueError(
                    f"`data.{option}` is not set: give a folder of {meaning} (images, searched recursively) or a "
                    f"dataset saved by `facehub prepare`, e.g. data.{option}=path/to/{option}."
                )
        data = UnpairedImageDomains(
            open_image_domain(options.domain_a, "domain_a"),
            open_image_domain(options.domain_b, "domain_b"),
            image_size=self.cyclegan.image_size,
            flip=options.flip,
            cache_limit_mb=options.cache_limit_mb,
            seed=self.config.seed,
        )
        for name, report in data.reports.items():
            logger.info(
                "data.%s: %d images from %s (%d skipped)%s",
                name,
                report.readable,
                report.source,
                len(report.skipped),
                ", cached in memory" if data.cached[name] is not None else "",
            )
        return data

    def learning_rate_schedules(self) -> dict[str, Callable[[int], float]]:
        """CycleGAN's schedule for both optimisers: constant, then linear decay to zero from
        ``lr_decay_start_fraction * max_steps`` (:func:`linear_decay_factor`), on top of ``lr_scheduler``."""
        max_steps, start = self.config.max_steps, self.cyclegan.lr_decay_start_fraction

        def decay(step: int) -> float:
            return linear_decay_factor(step, max_steps, start)

        return {"generator": decay, "discriminator": decay}

    def sample_images(self, models: dict[str, torch.nn.Module], batch: dict[str, torch.Tensor]):
        """Up to 8 faces of the step's batch: pasted swaps x, their repairs G(x) and cycles F(G(x)); real faces y,
        F(y) and G(F(y))."""
        real_a, real_b = batch["domain_a"][:8], batch["domain_b"][:8]
        fake_b, fake_a = models["generator_ab"](real_a).image, models["generator_ba"](real_b).image
        return {
            "pasted": real_a, "repaired": fake_b, "pasted_cycle": models["generator_ba"](fake_b).image,
            "real": real_b, "real_to_swap": fake_a, "real_cycle": models["generator_ab"](fake_a).image,
        }

    def training_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float]:
        c = self.cyclegan
        real_a, real_b = batch["domain_a"], batch["domain_b"]
        generator_ab, generator_ba = ctx.models["generator_ab"], ctx.models["generator_ba"]
        discriminator_a, discriminator_b = ctx.models["discriminator_a"], ctx.models["discriminator_b"]

        # Generators G (A -> B) and F (B -> A): eq. 3 with least-squares adversarial terms, plus identity.
        fake_b = generator_ab(real_a).image  # G(x)
        fake_a = generator_ba(real_b).image  # F(y)
        # Through the frozen discriminators: gradients reach the generators only.
        adversarial_ab = least_squares_gan_loss(ctx.frozen("discriminator_b", fake_b).patch_scores, True)
        adversarial_ba = least_squares_gan_loss(ctx.frozen("discriminator_a", fake_a).patch_scores, True)
        cycle = (generator_ba(fake_b).image.float() - real_a).abs().mean() + (
            generator_ab(fake_a).image.float() - real_b
        ).abs().mean()  # eq. 2
        generator_loss = adversarial_ab + adversarial_ba + c.cycle_loss_weight * cycle
        identity = torch.zeros((), device=real_a.device)
        if c.identity_loss_fraction > 0:
            identity = (generator_ab(real_b).image.float() - real_b).abs().mean() + (
                generator_ba(real_a).image.float() - real_a
            ).abs().mean()
            generator_loss = generator_loss + c.identity_loss_fraction * c.cycle_loss_weight * identity
        ctx.optimize("generator", generator_loss)

        # Discriminators D_Y and D_X on real images and on the history of fakes, halved (section 4).
        history_b = self.fake_histories["b"].query(fake_b)
        history_a = self.fake_histories["a"].query(fake_a)
        discriminator_b_loss = 0.5 * (
            least_squares_gan_loss(discriminator_b(real_b).patch_scores, True)
            + least_squares_gan_loss(discriminator_b(history_b).patch_scores, False)
        )
        discriminator_a_loss = 0.5 * (
            least_squares_gan_loss(discriminator_a(real_a).patch_scores, True)
            + least_squares_gan_loss(discriminator_a(history_a).patch_scores, False)
        )
        ctx.optimize("discriminator", discriminator_a_loss + discriminator_b_loss)

        return {
            "generator_total": generator_loss.detach().item(),
            "adversarial_ab": adversarial_ab.detach().item(),
            "adversarial_ba": adversarial_ba.detach().item(),
            "cycle": cycle.detach().item(),
            "identity": identity.detach().item(),
            "discriminator_a": discriminator_a_loss.detach().item(),
            "discriminator_b": discriminator_b_loss.detach().item(),
        }

    def export(self, models: dict[str, torch.nn.Module], folder: Path) -> None:
        FaceRepairPipeline(repair=models["generator_ab"], real_to_swap=models["generator_ba"]).save_pretrained(folder)

    def model_card(self) -> dict[str, Any]:
        c = self.cyclegan
        data = self.config.data
        patch = patchgan_receptive_field(c.discriminator_layers)
        return {
            "description": (
                "CycleGAN (Zhu et al., ICCV 2017) face-swap repair for DepthNets (Moniz, Beckham et al., NeurIPS 2018, "
                f"section 3.3), {self.preset} preset ({c.image_size} px, {c.num_residual_blocks} residual blocks, "
                f"{patch}x{patch} PatchGAN): `repair` maps pasted "
                "face swaps to real-looking faces so the face matches its hair and background; `real_to_swap` is "
                f"the reverse generator. Trained between {data.domain_a} (pasted swaps) and "
                f"{data.domain_b} (real faces)."
            ),
            "tags": ["cyclegan", "face-swap", "face-repair", "unpaired-image-to-image"],
            "pipeline_tag": "image-to-image",
        }


def main(argv: list[str] | None = None) -> int:
    from facehub.trainers.run import main as run_main

    return run_main(argv, method=METHOD_NAME)


if __name__ == "__main__":
    sys.exit(main())
