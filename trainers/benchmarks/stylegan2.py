"""Benchmark: StyleGAN2 generator speed, unfused modulated convolutions against the paper's grouped form, and training
throughput.

Measured in this run, for each preset (``cpu-small`` 64 px; ``ffhq-256`` with ``--presets``):

- the generator's forward pass (``torch.inference_mode``, median of ``--runs``) at batch 1 and at ``--batch``, with
  facehub's unfused modulated convolution (style on the input, demodulation as a matrix product) and with the
  reference measured in the same run: the same weights through the grouped convolution with one modulated weight per
  sample, as the paper writes eq. 1-3 (``ModulatedConv2d.forward_grouped``); their ratio;
- a training step (generator and discriminator forward and backward, lazy R1 on one step in 16) at ``--batch``,
  both forms, in images per second;
- with ``--train``: the shared loop's throughput (images per second) of ``facehub train stylegan2`` with one and two
  processes on a small synthetic world, from ``metrics.jsonl`` between the first and the last log.

Usage: ``facehub bench stylegan2 [--runs 10] [--batch 16] [--presets cpu-small ffhq-256] [--train]`` (or
``python benchmarks/bench_stylegan2.py`` with the same options).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from facehub.trainers.benchmarks.timing import median_seconds


def set_grouped(model: torch.nn.Module, grouped: bool) -> None:
    """Switch every modulated convolution of ``model`` between the unfused and the grouped form."""
    from facehub.modeling.stylegan2.layers import ModulatedConv2d

    for module in model.modules():
        if isinstance(module, ModulatedConv2d):
            module.grouped = grouped


def training_step_seconds(generator, discriminator, batch: int, runs: int) -> float:
    """Median seconds of one generator + discriminator step (Adam), R1 on every 16th step."""
    from facehub.trainers.core.gan import r1_penalty
    from facehub.trainers.stylegan2 import discriminator_logistic_loss, generator_logistic_loss

    g_opt = torch.optim.Adam(generator.parameters(), lr=2e-3, betas=(0.0, 0.99))
    d_opt = torch.optim.Adam(discriminator.parameters(), lr=2e-3, betas=(0.0, 0.99))
    real = torch.rand(batch, 3, generator.config.resolution, generator.config.resolution) * 2 - 1
    counter = iter(range(10**9))

    def step():
        index = next(counter)
        out = generator(torch.randn(batch, generator.latent_dim))
        g_loss = generator_logistic_loss(discriminator(out.images).scores)
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        regularise = index % 16 == 0
        images = real.clone().requires_grad_(regularise)
        scores = discriminator(torch.cat([images, out.images.detach()])).scores
        d_loss = discriminator_logistic_loss(scores[:batch], scores[batch:])
        if regularise:
            d_loss = d_loss + r1_penalty(scores[:batch], images)
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()

    return median_seconds(step, runs, warmup=2)


def training_throughput(processes: int, workdir: Path, steps: int) -> float:
    """Images per second of ``facehub train stylegan2 --preset cpu-small`` on a small synthetic world."""
    out = workdir / f"train-p{processes}"
    launch = ["--cpu"] if processes == 1 else ["--multi_gpu", "--num_processes", str(processes)]
    batch = 16
    command = [
        sys.executable, "-m", "accelerate.commands.launch", *launch, "-m", "facehub.trainers.run", "stylegan2",
        "--preset", "cpu-small", f"output_dir={out}", f"max_steps={steps}", "logging_steps=5", "report_to=none",
        f"checkpointing_steps={10 * steps}", "sample_steps=0", f"train_batch_size={batch}",
        "data.synthetic.num_identities=64", "data.synthetic.image_size=96",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // processes))}
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    logs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    seconds_per_step = (logs[-1]["time"] - logs[0]["time"]) / (logs[-1]["step"] - logs[0]["step"])
    return processes * batch / seconds_per_step


def main(argv: list[str] | None = None) -> int:
    from facehub.modeling.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator, stylegan2_config

    parser = argparse.ArgumentParser(prog="facehub bench stylegan2", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs per figure (median; default 10)")
    parser.add_argument("--batch", type=int, default=16, help="batch of the batched figures (default 16)")
    parser.add_argument("--presets", nargs="+", default=["cpu-small"], help="network presets (default cpu-small)")
    parser.add_argument("--train", action="store_true", help="also measure the loop's throughput, 1 and 2 processes")
    parser.add_argument("--train-steps", type=int, default=40)
    args = parser.parse_args(argv)
    if args.runs < 1 or args.batch < 1 or args.train_steps < 10:
        parser.error(f"--runs and --batch must be at least 1 and --train-steps at least 10, got {args.runs}, "
                     f"{args.batch} and {args.train_steps}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for preset in args.presets:
        config = stylegan2_config(preset)
        torch.manual_seed(0)
        generator = StyleGAN2Generator(**config.generator_kwargs())
        discriminator = StyleGAN2Discriminator(**config.discriminator_kwargs())
        print(f"\n{preset}: {config.resolution} px, latent {config.latent_dim}, widths {list(config.channels)}, "
              f"{sum(p.numel() for p in generator.parameters()) / 1e6:.2f} M generator parameters")
        print(f"{'figure':<34} {'unfused':>10} {'grouped (ref)':>14} {'ratio':>7}")
        for batch in sorted({1, args.batch}):
            z = torch.randn(batch, config.latent_dim)
            timings = []
            for grouped in (False, True):
                set_grouped(generator, grouped)
                with torch.inference_mode():
                    timings.append(median_seconds(lambda z=z, g=generator: g(z, noise_mode="const"), args.runs))
            print(f"{f'generator forward, batch {batch} (ms)':<34} {timings[0] * 1e3:>10.1f} {timings[1] * 1e3:>14.1f} "
                  f"{timings[1] / timings[0]:>6.2f}x")
        rates = []
        for grouped in (False, True):
            set_grouped(generator, grouped)
            seconds = training_step_seconds(generator, discriminator, args.batch, max(3, args.runs // 2))
            rates.append(args.batch / seconds)
        set_grouped(generator, False)
        print(f"{f'G + D training step, batch {args.batch} (img/s)':<34} {rates[0]:>10.1f} {rates[1]:>14.1f} "
              f"{rates[0] / rates[1]:>6.2f}x")
    if args.train:
        print("\nthe shared loop, cpu-small, batch 16 per process, a small synthetic world:")
        with tempfile.TemporaryDirectory() as workdir:
            for processes in (1, 2):
                rate = training_throughput(processes, Path(workdir), args.train_steps)
                print(f"  {processes} process(es): {rate:.1f} images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
