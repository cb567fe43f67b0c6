"""Sample grids: the images a method shows every ``sample_steps`` optimiser steps, as one PNG per step
(``output_dir/samples/step-XXXXXX.png``) and a TensorBoard image (tag ``samples``).

A method returns its rows from :meth:`~facehub.trainers.core.TrainingMethod.sample_images`: an ordered mapping
``row name -> (N, C, H, W)`` tensor in [-1, 1] (C = 1 or 3; rows may hold different N, shorter rows are padded).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

SAMPLES_DIR = "samples"


def make_grid(rows: dict[str, torch.Tensor], padding: int = 2) -> np.ndarray:
    """Tile ``rows`` (one row of images per entry, in order) into one RGB uint8 array (H, W, 3)."""
    if not rows:
        raise ValueError("A sample grid needs at least one row of images.")
    batches = []
    for name, images in rows.items():
        images = torch.as_tensor(images).detach().float().cpu()
        if images.dim() == 3:
            images = images[None]
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"Sample row {name!r} has shape {tuple(images.shape)}; expected (N, 1 or 3, H, W).")
        batches.append(images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images)
    height, width = batches[0].shape[-2:]
    if any(b.shape[-2:] != (height, width) for b in batches):
        raise ValueError(f"Sample rows differ in image size: {[tuple(b.shape[-2:]) for b in batches]}.")
    columns = max(len(b) for b in batches)
    grid = np.full((len(batches) * (height + padding) + padding, columns * (width + padding) + padding, 3), 255,
                   dtype=np.uint8)
    for r, batch in enumerate(batches):
        pixels = ((batch.clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for c, image in enumerate(pixels):
            top, left = padding + r * (height + padding), padding + c * (width + padding)
            grid[top : top + height, left : left + width] = image
    return grid


def write_samples(output_dir: Path, step: int, grid: np.ndarray, tracker=None) -> Path:
    """Save ``grid`` as ``samples/step-XXXXXX.png`` and, given a TensorBoard tracker, log it at ``step``."""
    folder = Path(output_dir) / SAMPLES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step-{step:06d}.png"
    Image.fromarray(grid).save(path)
    if tracker is not None:
        tracker.writer.add_image("samples", grid, step, dataformats="HWC")
    return path
