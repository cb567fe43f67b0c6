"""Render time of the default face model (852 triangles) on this machine: forward and backward at 64/128/256 px.

Run ``python benchmarks/bench_render.py``.
"""

from __future__ import annotations

import time

import torch

from facehub.modeling.geometry import FaceRenderer, MorphableFaceModel, OrthographicCamera
from facehub.modeling.geometry.morphable import SH_DC


def main(repeats: int = 5) -> None:
    torch.manual_seed(0)
    model = MorphableFaceModel.default()
    sh = torch.zeros(1, 3, 9)
    sh[:, :, 0] = 1.0 / SH_DC
    for size in (64, 128, 256):
        renderer, camera = FaceRenderer(size), OrthographicCamera(size / 200.0, (size / 2.0, size / 2.0))
        fwd, bwd = [], []
        for _ in range(repeats + 1):
            coeffs = torch.zeros(1, model.num_identity, requires_grad=True)
            t0 = time.perf_counter()
            out = renderer(model.shape(coeffs), model.triangles, camera, uvs=model.uvs,
                           albedo_texture=model.albedo(), sh_coeffs=sh)
            t1 = time.perf_counter()
            out.image.mean().backward()
            t2 = time.perf_counter()
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
        fwd, bwd = sorted(fwd[1:]), sorted(bwd[1:])
        print(f"{size:4d} px: forward {1e3 * fwd[len(fwd) // 2]:7.1f} ms, backward {1e3 * bwd[len(bwd) // 2]:7.1f} ms "
              f"(median of {repeats}, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
