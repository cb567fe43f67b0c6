"""The two domains of the face-swap repair (DepthNets, Moniz, Beckham et al. 2018, section 3.3).

"We paste the rotated face by DepthNet onto the background of the target image and train a CycleGAN to map from the
domain of 'swapped in faces' to the ground truth faces in our dataset." :func:`make_pasted_swaps` makes both from a
folder of photos: for ordered pairs of different photos (a pure function of ``seed``), the
:class:`~facehub.modeling.depthnet.FaceSwapPipeline`'s raw paste (``out.warped``: the DepthNet warp pasted with the
feathered mask, before colour transfer and blending) is cropped with
:func:`facehub.modeling.cyclegan.crop_around_mask`, the framing :func:`~facehub.modeling.cyclegan.repair_face` uses
at inference, into ``OUT/swaps/`` (domain A); the target photo itself, cropped with the same box, goes to
``OUT/real/`` (domain B). Train with::

    facehub prepare-swaps --images PHOTOS --out SWAPS --count 2000
    facehub train cyclegan --config trainers/configs/cyclegan-repair-cpu-small.yaml \\
        data.domain_a=SWAPS/swaps data.domain_b=SWAPS/real

Unreadable photos and photos without a usable face are skipped and counted (never a crash); a killed run continues
where it stopped (existing outputs are kept).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm


@dataclass
class PastedSwapsReport:
    """What :func:`make_pasted_swaps` did: swaps written (``made``), already there (``kept``), pairs skipped by
    reason (``skipped``), and the photos it could not use (``unusable``: path -> reason)."""

    made: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    unusable: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items()))
        return f"{self.made} swaps made, {self.kept} already there" + (f"; skipped {reasons}" if reasons else "")


def _ordered_pairs(num_photos: int, count: int, seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng([seed, 8011])
    pairs = []
    for _ in range(count):
        source, target = rng.choice(num_photos, size=2, replace=False)
        pairs.append((int(source), int(target)))
    return pairs


def _save_atomic(image: np.ndarray, path: Path) -> None:
    from PIL import Image

    partial = path.with_name(path.name + ".partial")
    Image.fromarray(image).save(partial, format="PNG")
    partial.replace(path)


def make_pasted_swaps(images: str | Path, out: str | Path, count: int, seed: int = 0, size: int = 128,
                      model: str = "facehub/depthnet", progress: bool = True) -> PastedSwapsReport:
    """Write ``count`` pasted swaps to ``out/swaps`` and the matching real crops to ``out/real`` (module docstring)."""
    from facehub.modeling.cyclegan import crop_around_mask
    from facehub.modeling.depthnet import FaceSelectionError, FaceSwapPipeline
    from facehub.modeling.faces import FaceHubImageError, load_image
    from facehub.trainers.data.prepare import IMAGE_SUFFIXES, scan_images

    if count <= 0:
        raise ValueError(f"Got {count} for `count`; expected a positive number of swaps.")
    paths = [path for path, _ in scan_images(Path(images))]
    if len(paths) < 2:
        raise FileNotFoundError(
            f"Need at least two photos ({', '.join(sorted(IMAGE_SUFFIXES))}) under {images} to swap faces, "
            f"found {len(paths)}."
        )
    out = Path(out)
    swaps_dir, real_dir = out / "swaps", out / "real"
    swaps_dir.mkdir(parents=True, exist_ok=True)
    real_dir.mkdir(parents=True, exist_ok=True)
    pipe = FaceSwapPipeline.from_pretrained(model)
    report = PastedSwapsReport()
    cache: dict[int, np.ndarray | None] = {}

    def photo(index: int) -> np.ndarray | None:
        if index not in cache:
            try:
                cache[index] = load_image(paths[index])
            except FaceHubImageError as err:
                report.unusable[paths[index]] = str(err)
                cache[index] = None
        return cache[index]

    for k, (source, target) in enumerate(tqdm(_ordered_pairs(len(paths), count, seed), desc="pasted swaps",
                                              disable=not progress)):
        name = f"{k:06d}.png"
        if (swaps_dir / name).exists() and (real_dir / name).exists():
            report.kept += 1
            continue
        source_image, target_image = photo(source), photo(target)
        if source_image is None or target_image is None:
            report.skipped["unreadable photo"] += 1
            continue
        try:
            swap = pipe(source_image, target_image)
        except FaceSelectionError as err:
            report.unusable.setdefault(paths[source if "source" in str(err) else target], str(err))
            report.skipped["no usable face"] += 1
            continue
        # Each file appears whole (written, then renamed); a swap without its real crop is redone on resume.
        _save_atomic(crop_around_mask(target_image, swap.mask, size), real_dir / name)
        _save_atomic(crop_around_mask(swap.warped, swap.mask, size), swaps_dir / name)
        report.made += 1
    (out / "report.json").write_text(json.dumps(
        {"made": report.made, "kept": report.kept, "skipped": dict(report.skipped), "unusable": report.unusable},
        indent=2))
    return report
