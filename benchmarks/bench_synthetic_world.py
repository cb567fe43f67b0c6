"""Throughput of the synthetic face world at 128x128 on this machine (views per second, median of several runs).

Run ``python benchmarks/bench_synthetic_world.py [--views 24] [--size 128] [--v2]``. The reference measured in the
same run is the renderer alone on the same meshes, so the figure shows what the world adds around rendering.
``--v2`` turns on every variation of synthetic world v2 (fine detail and relief, glasses and hair on every identity,
the background plane, a withheld deformation) to show what the extra layers cost.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from facehub.trainers.data.synthetic_world import SyntheticFaceWorld, SyntheticWorldConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--views", type=int, default=24)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--v2", action="store_true", help="turn on every synthetic world v2 variation")
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    variation = {}
    if args.v2:
        variation = dict(fine_detail=0.2, fine_relief=0.003, glasses=1.0, hair=1.0, background_plane=True,
                         withheld_scale=0.02)
    world = SyntheticFaceWorld(SyntheticWorldConfig(num_identities=args.views, views_per_identity=1,
                                                    image_size=args.size, uv_size=64, **variation))
    world[0]  # warm-up: loads the model, builds the renderer
    totals = []
    for _ in range(args.runs):
        start = time.perf_counter()
        for index in range(len(world)):
            world[index]
        totals.append(time.perf_counter() - start)
    per_view = statistics.median(totals) / len(world)

    from facehub.modeling.geometry.render import OrthographicCamera

    model, renderer = world.model, world.renderer
    vertices = model.shape()[0] * (0.55 * args.size / world._mean_width) + torch.tensor([args.size / 2] * 2 + [0.0])
    albedo = model.albedo()
    render_times = []
    for _ in range(args.runs * len(world)):
        start = time.perf_counter()
        with torch.no_grad():
            renderer(vertices[None], model.triangles, OrthographicCamera(1.0, (0.0, 0.0)), uvs=model.uvs,
                     albedo_texture=albedo)
        render_times.append(time.perf_counter() - start)
    render = statistics.median(render_times)
    name = "synthetic world v2 (every variation on)" if args.v2 else "synthetic world"
    print(f"{name} at {args.size}x{args.size}: {per_view * 1e3:.1f} ms a view, {1 / per_view:.1f} views/s")
    print(f"reference, renderer alone (same mesh, no lighting): {render * 1e3:.1f} ms ({per_view / render:.2f}x)")


if __name__ == "__main__":
    main()
