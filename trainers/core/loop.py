"""The one Accelerate training loop every facehub method shares.

Run under ``accelerate launch`` (any number of processes or machines) or as a plain script (one process). The loop
owns: seeding, data order, gradient accumulation, mixed precision, the progress bar, TensorBoard and
``metrics.jsonl`` logging, full-state checkpoints (every ``checkpointing_steps``, at the end and on SIGTERM),
``resume`` from the newest intact checkpoint, per-optimiser learning-rate schedules, generator EMA, sample grids,
periodic and final export to the HF format, and the optional push to the Hub. A method only supplies networks,
optimisers, data, losses and export (:class:`TrainingMethod`).

Launcher settings: ``mixed_precision`` and ``gradient_accumulation_steps`` left unset in the config (``None``) are
the launcher's (``accelerate launch --mixed_precision bf16``; accumulation from ``ACCELERATE_GRADIENT_ACCUMULATION_STEPS``,
which ``facehub train --gradient_accumulation_steps N`` sets); a value in the config wins. What the processes
actually run with is written to ``output_dir/run_state.json``.

Resuming is exact: a run killed between checkpoints and resumed ends with the same step count and the same
weights as an uninterrupted run of the same seed and process count, because the data order is a pure function of
``(seed, epoch)``, learning rates are pure functions of the step, and the checkpoint carries weights, optimiser,
RNG and progress state. Checkpoints are facehub's own files (:mod:`facehub.trainers.core.checkpointing`): nothing
is unpickled on resume, and a damaged newest checkpoint falls back to the newest intact one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import GradientAccumulationPlugin, ProjectConfiguration, set_seed
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from facehub.trainers.core import checkpointing
from facehub.trainers.core.checkpointing import (
    CHECKPOINT_PREFIX,
    MANIFEST,
    CheckpointError,
    find_checkpoint,
    list_checkpoints,
    load_checkpoint,
    verify_checkpoint,
)
from facehub.trainers.core.config import TrainingConfig
from facehub.trainers.core.gan import ExponentialMovingAverage, frozen_call
from facehub.trainers.core.initial_weights import load_initial_weights
from facehub.trainers.core.method import TrainingMethod
from facehub.trainers.core.samples import make_grid, write_samples
from facehub.trainers.core.schedules import OptimizerSchedule, build_schedules

logger = logging.getLogger(__name__)

COMPLETE_MARKER = MANIFEST  # the manifest is written last: its presence marks a complete checkpoint
RUN_STATE = "run_state.json"
METRICS = "metrics.jsonl"

__all__ = ["CHECKPOINT_PREFIX", "COMPLETE_MARKER", "CheckpointError", "StepContext", "list_checkpoints", "train"]


class EpochShuffleSampler(Sampler[int]):
    """Shuffles indices with a permutation that depends only on ``(seed, epoch)``, never on global RNG state."""

    def __init__(self, length: int, seed: int):
        self.length, self.seed, self.epoch = length, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.length, generator=generator).tolist())

    def __len__(self) -> int:
        return self.length


@dataclass
class TrainingProgress:
    """Counters saved inside every checkpoint (``progress.json``)."""

    step: int = 0  # optimiser steps done
    micro_step: int = 0  # micro-batches consumed (step * gradient_accumulation_steps at step boundaries)

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step, "micro_step": self.micro_step}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step, self.micro_step = int(state["step"]), int(state["micro_step"])


@dataclass
class StepContext:
    """Handed to :meth:`TrainingMethod.training_step`: the accelerator, models, optimisers and their schedules.

    ``schedulers[name].get_last_lr()`` is the rate optimiser ``name`` applies in this step; ``ema[name]`` the
    :class:`~facehub.trainers.core.gan.ExponentialMovingAverage` of a network the method asked to average.
    """

    accelerator: Accelerator
    models: dict[str, torch.nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, OptimizerSchedule]
    config: TrainingConfig
    step: int = 0
    ema: dict[str, ExponentialMovingAverage] = field(default_factory=dict)
    _params: dict[str, list[torch.nn.Parameter]] = field(default_factory=dict)

    def optimize(self, name: str, loss: torch.Tensor) -> None:
        """Back-propagate ``loss`` and step optimiser ``name`` (accelerate skips the step while accumulating)."""
        optimizer = self.optimizers[name]
        self.accelerator.backward(loss)
        if self.accelerator.sync_gradients and self.config.max_grad_norm:
            params = self._params.setdefault(
                name, [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
            )
            self.accelerator.clip_grad_norm_(params, self.config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def frozen(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``models[name](*args, **kwargs)`` as a frozen network: gradients reach the inputs only, the network's
        parameters, buffers and DDP reducer are left alone (the generator step through a discriminator; see
        :func:`facehub.trainers.core.gan.frozen_call`)."""
        return frozen_call(self.accelerator, self.models[name], *args, **kwargs)


def _resume_path(config: TrainingConfig) -> Path | None:
    """The checkpoint to resume from: the given one (verified), or the newest intact one in ``output_dir``."""
    if not config.resume:
        return None
    if isinstance(config.resume, str) and config.resume not in ("latest", "true"):
        path = Path(config.resume)
        try:
            verify_checkpoint(path)
        except CheckpointError as error:
            raise CheckpointError(f"Cannot resume from {path}: {error}.") from None
        return path
    path, skipped = find_checkpoint(Path(config.output_dir))
    for bad, reason in skipped:
        logger.warning("Checkpoint %s is not usable (%s)%s", bad.name, reason,
                       f"; falling back to {path.name}" if path is not None else "")
    if path is None and skipped:
        raise CheckpointError(
            f"No intact checkpoint in {Path(config.output_dir) / 'checkpoints'} "
            f"({checkpointing.describe_skipped(skipped)}). Delete the damaged ones or set resume=false to start over."
        )
    return path


class _StopRequest:
    """Turns SIGTERM / SIGINT into a flag the loop checks between steps (so the state is saved, not torn)."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat


def build_accelerator(config: TrainingConfig, output_dir: Path) -> Accelerator:
    """The run's Accelerator. ``mixed_precision`` / ``gradient_accumulation_steps`` set in the config win; left
    unset (``None``) they are the launcher's (``accelerate launch --mixed_precision``, and
    ``ACCELERATE_GRADIENT_ACCUMULATION_STEPS``)."""
    options: dict[str, Any] = {}
    mixed_precision = getattr(config, "mixed_precision", None)
    if mixed_precision is not None:
        options["mixed_precision"] = mixed_precision
    accumulation = getattr(config, "gradient_accumulation_steps", None)
    if accumulation is not None:
        # A plugin, not the plain argument: accelerate lets the environment override the plain argument.
        options["gradient_accumulation_plugin"] = GradientAccumulationPlugin(num_steps=int(accumulation))
    return Accelerator(
        # Without a GPU, several processes only form a (gloo) group when accelerate is told to use the CPU.
        cpu=not torch.cuda.is_available(),
        log_with=None if config.report_to == "none" else config.report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
        **options,
    )


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop the lines of ``metrics.jsonl`` past ``step`` (logged by a run that was then resumed from ``step``)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if int(json.loads(line)["step"]) <= step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue
    staging = path.with_name(path.name + ".tmp")
    staging.write_text("".join(line + "\n" for line in kept))
    os.replace(staging, path)


def train(method: TrainingMethod, command: str | None = None) -> dict[str, Any]:
    """Train ``method`` according to its config; returns a summary (final step, last logged losses, paths).

    ``command`` is the command line that started the run; it goes into the exported model card.
    """
    config = method.config
    output_dir = Path(config.output_dir)
    accelerator = build_accelerator(config, output_dir)
    logging.basicConfig(level=logging.INFO if accelerator.is_main_process else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s")
    set_seed(config.seed)  # the same initial weights on every process; DDP keeps them in step afterwards

    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))

    logger.info("Training %s on %d process(es), device %s, mixed precision %s, %d micro-batch(es) per step",
                method.name, accelerator.num_processes, accelerator.device, accelerator.mixed_precision,
                accelerator.gradient_accumulation_steps)
    models = method.build_models()
    if config.init_from:
        load_initial_weights(models, config.init_from)
    optimizers = method.build_optimizers(models)
    dataset = method.build_dataset()
    sampler = EpochShuffleSampler(len(dataset), config.seed)
    dataloader = DataLoader(
        dataset,
        batch_size=config.train_batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=config.dataloader_num_workers,
        collate_fn=method.collate(),
    )

    groups = (models, optimizers)
    prepared = iter(accelerator.prepare(*(obj for group in groups for obj in group.values()), dataloader))
    models, optimizers = ({name: next(prepared) for name in group} for group in groups)
    dataloader = next(prepared)
    if len(dataloader) == 0:
        raise ValueError(
            f"The dataset has {len(dataset)} samples: fewer than one batch of {config.train_batch_size} per process "
            f"on {accelerator.num_processes} processes."
        )
    schedules = build_schedules(optimizers, config, method.learning_rate_schedules())
    emas = {name: ExponentialMovingAverage(accelerator.unwrap_model(models[name]), decay)
            for name, decay in method.ema_decays().items()}
    progress = TrainingProgress()

    resume_from = _resume_path(config)
    if resume_from is not None:
        progress.load_state_dict(load_checkpoint(accelerator, resume_from, models, optimizers, emas))
        logger.info("Resumed from %s at step %d", resume_from, progress.step)
    elif config.resume:
        logger.info("No complete checkpoint in %s: starting from scratch.", output_dir / "checkpoints")

    if accelerator.is_main_process:
        _truncate_metrics(output_dir / METRICS, progress.step)
        run_state = {
            "method": method.name,
            "num_processes": accelerator.num_processes,
            "distributed_type": str(accelerator.distributed_type.value),
            "device": str(accelerator.device),
            "mixed_precision": accelerator.mixed_precision,
            "gradient_accumulation_steps": accelerator.gradient_accumulation_steps,
            "train_batch_size": config.train_batch_size,
            "resumed_from": str(resume_from) if resume_from is not None else None,
            "start_step": progress.step,
        }
        (output_dir / RUN_STATE).write_text(json.dumps(run_state, indent=1) + "\n")

    if accelerator.is_main_process and config.report_to != "none":
        accelerator.init_trackers(method.name or "facehub", config=_flatten(config.to_dict()))
    tracker = None
    if accelerator.is_main_process and config.report_to == "tensorboard":
        tracker = accelerator.get_tracker("tensorboard", unwrap=False)
    sample_steps = int(getattr(config, "sample_steps", None) or method.sample_steps or 0)

    ctx = StepContext(accelerator, models, optimizers, schedules, config, ema=emas)
    batches_per_epoch = len(dataloader)
    bar = tqdm(total=config.max_steps, initial=progress.step, desc=f"train {method.name}",
               disable=not accelerator.is_local_main_process, dynamic_ncols=True)
    last_logs: dict[str, float] = {}
    running: dict[str, list[float]] = {}
    started = time.time()

    with _StopRequest() as stop:
        stopped = False
        while progress.step < config.max_steps and not stopped:
            epoch, skip = divmod(progress.micro_step, batches_per_epoch)
            # Through the prepared loader: it re-applies its own epoch counter to the sampler at every __iter__.
            dataloader.set_epoch(epoch)
            # A dataset whose items depend on the epoch (fresh augmentations each pass) hears it directly: with
            # several processes accelerate's sharded loader does not pass the epoch on to the dataset.
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)
            loader = accelerator.skip_first_batches(dataloader, skip) if skip else dataloader
            for batch in loader:
                for model in models.values():
                    model.train()
                for schedule in schedules.values():
                    schedule.apply(progress.step)
                with accelerator.accumulate(*models.values()):
                    ctx.step = progress.step
                    logs = method.training_step(batch, ctx)
                progress.micro_step += 1
                for key, value in logs.items():
                    running.setdefault(key, []).append(float(value))
                if not accelerator.sync_gradients:
                    continue
                for name, ema in emas.items():
                    ema.update(accelerator.unwrap_model(models[name]))
                progress.step += 1
                bar.update(1)
                step = progress.step

                if step % config.logging_steps == 0 or step == config.max_steps:
                    last_logs = _reduce_logs(accelerator, running)
                    for name, schedule in schedules.items():
                        last_logs[f"lr/{name}"] = schedule.get_last_lr()[0]  # the rate this step applied
                    running.clear()
                    bar.set_postfix({k: f"{v:.4g}" for k, v in last_logs.items() if not k.startswith("lr/")})
                    if accelerator.is_main_process:
                        accelerator.log(last_logs, step=step)
                        with open(output_dir / METRICS, "a") as fh:
                            fh.write(json.dumps({"step": step, "time": round(time.time() - started, 3),
                                                 **last_logs}) + "\n")

                if sample_steps and (step % sample_steps == 0 or step == config.max_steps):
                    _write_sample_grid(accelerator, method, models, emas, batch, output_dir, step, tracker)
                stop_now = _any_process(accelerator, stop.requested)
                if step % config.checkpointing_steps == 0 or step == config.max_steps or stop_now:
                    save_checkpoint(accelerator, method, progress, models, optimizers, emas)
                if config.export_steps and step % config.export_steps == 0 and step != config.max_steps:
                    export(accelerator, method, models, output_dir / "export", command, emas)
                if stop_now:
                    logger.warning("Stop requested: state saved at step %d; resume with resume=true.", step)
                    stopped = True
                    break
                if step >= config.max_steps:
                    break
    bar.close()

    summary: dict[str, Any] = {"step": progress.step, "logs": last_logs, "output_dir": str(output_dir)}
    if progress.step >= config.max_steps:
        export_dir = export(accelerator, method, models, output_dir / "export", command, emas)
        summary["export_dir"] = str(export_dir)
        if config.push_to_hub and accelerator.is_main_process:
            from facehub.hub.push import push_to_hub

            summary["hub_url"] = push_to_hub(export_dir, config.hub_model_id, token=config.hub_token,
                                             private=config.hub_private)
    summary["stopped"] = progress.step < config.max_steps
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary


def _any_process(accelerator: Accelerator, flag: bool) -> bool:
    if accelerator.num_processes == 1:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=accelerator.device)
    return bool(accelerator.reduce(value, reduction="sum").item() > 0)


def _reduce_logs(accelerator: Accelerator, running: dict[str, list[float]]) -> dict[str, float]:
    keys = sorted(running)
    if not keys:
        return {}
    means = torch.tensor([sum(running[k]) / len(running[k]) for k in keys], device=accelerator.device)
    means = accelerator.reduce(means, reduction="mean")
    return {k: float(v) for k, v in zip(keys, means.tolist(), strict=True)}


def _exported_models(accelerator: Accelerator, models: dict[str, torch.nn.Module],
                     emas: dict[str, ExponentialMovingAverage] | None) -> dict[str, torch.nn.Module]:
    """The unwrapped networks, each averaged one replaced by its EMA copy."""
    emas = emas or {}
    return {name: emas[name].average if name in emas else accelerator.unwrap_model(model)
            for name, model in models.items()}


def _write_sample_grid(accelerator, method, models, emas, batch, output_dir: Path, step: int, tracker) -> None:
    if accelerator.is_main_process:
        networks = _exported_models(accelerator, models, emas)
        modes = {name: network.training for name, network in networks.items()}
        for network in networks.values():
            network.eval()
        try:
            with torch.no_grad(), accelerator.autocast():
                rows = method.sample_images(networks, batch)
        finally:
            for name, network in networks.items():
                network.train(modes[name])
        if rows:
            write_samples(output_dir, step, make_grid(rows), tracker)
    accelerator.wait_for_everyone()


def save_checkpoint(
    accelerator: Accelerator,
    method: TrainingMethod,
    progress: TrainingProgress,
    models: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    emas: dict[str, ExponentialMovingAverage] | None = None,
) -> Path:
    """Save the full state to ``checkpoints/checkpoint-<step>`` (:mod:`facehub.trainers.core.checkpointing`)."""
    config = method.config
    return checkpointing.save_checkpoint(
        accelerator, Path(config.output_dir), progress.step, progress.state_dict(), models, optimizers, emas,
        method=config.method, total_limit=config.checkpoints_total_limit,
    )


def export(
    accelerator: Accelerator,
    method: TrainingMethod,
    models: dict[str, torch.nn.Module],
    folder: Path,
    command: str | None = None,
    emas: dict[str, ExponentialMovingAverage] | None = None,
) -> Path:
    """Write the HF-format bundle with its model card (main process), replacing the previous export atomically.

    A network with an EMA is exported as its EMA copy."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        staging = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        method.export(_exported_models(accelerator, models, emas), staging)
        _write_card(method, staging, command)
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    accelerator.wait_for_everyone()
    return folder


def _write_card(method: TrainingMethod, folder: Path, command: str | None) -> None:
    from facehub.hub.cards import write_model_card

    config = method.config
    (folder / "training_config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    card = method.model_card()
    if config.init_from and "base_model" not in card:
        card["base_model"] = config.init_from
    write_model_card(
        folder,
        repo_id=config.hub_model_id or f"facehub/{config.method}",
        method=config.method,
        training_command=command or f"facehub train {config.method} --config training_config.yaml",
        **card,
    )
