"""The one Accelerate training loop every facehub method shares.

Run under ``accelerate launch`` (any number of processes or machines) or as a plain script (one process). The loop
owns: seeding, data order, gradient accumulation, mixed precision, the progress bar, TensorBoard and
``metrics.jsonl`` logging, full-state checkpoints (every ``checkpointing_steps``, at the end and on SIGTERM),
``resume`` from the newest complete checkpoint, periodic and final export to the HF format, and the optional push
to the Hub. A method only supplies networks, optimisers, data, losses and export (:class:`TrainingMethod`).

Resuming is exact: a run killed between checkpoints and resumed ends with the same step count and the same
weights as an uninterrupted run of the same seed and process count, because the data order is a pure function of
``(seed, epoch)`` and accelerate's checkpoint carries model, optimiser, scheduler, RNG and progress state.
"""

from __future__ import annotations

import json
import logging
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
from accelerate.utils import ProjectConfiguration, set_seed
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from facehub.trainers.core.config import TrainingConfig
from facehub.trainers.core.method import TrainingMethod

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"
COMPLETE_MARKER = "facehub_checkpoint.json"


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
    """Counters saved inside every checkpoint (registered with ``accelerator.register_for_checkpointing``)."""

    step: int = 0  # optimiser steps done
    micro_step: int = 0  # micro-batches consumed (step * gradient_accumulation_steps at step boundaries)

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step, "micro_step": self.micro_step}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step, self.micro_step = int(state["step"]), int(state["micro_step"])


@dataclass
class StepContext:
    """Handed to :meth:`TrainingMethod.training_step`: the accelerator, models and ``optimize``."""

    accelerator: Accelerator
    models: dict[str, torch.nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, Any]
    config: TrainingConfig
    step: int = 0
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
        self.schedulers[name].step()
        optimizer.zero_grad(set_to_none=True)


def list_checkpoints(output_dir: Path, complete_only: bool = True) -> list[Path]:
    """Checkpoint folders in ``output_dir/checkpoints``, oldest first; ``complete_only`` skips half-written ones."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        suffix = path.name.removeprefix(CHECKPOINT_PREFIX)
        if path.is_dir() and path.name.startswith(CHECKPOINT_PREFIX) and suffix.isdigit():
            if not complete_only or (path / COMPLETE_MARKER).is_file():
                found.append((int(suffix), path))
    return [path for _, path in sorted(found)]


def _resume_path(config: TrainingConfig) -> Path | None:
    if not config.resume:
        return None
    if isinstance(config.resume, str) and config.resume not in ("latest", "true"):
        path = Path(config.resume)
        if not (path / COMPLETE_MARKER).is_file():
            raise FileNotFoundError(f"{path} is not a complete facehub checkpoint (no {COMPLETE_MARKER}).")
        return path
    checkpoints = list_checkpoints(Path(config.output_dir))
    return checkpoints[-1] if checkpoints else None


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


def train(method: TrainingMethod, command: str | None = None) -> dict[str, Any]:
    """Train ``method`` according to its config; returns a summary (final step, last logged losses, paths).

    ``command`` is the command line that started the run; it goes into the exported model card.
    """
    from diffusers.optimization import get_scheduler

    config = method.config
    output_dir = Path(config.output_dir)
    accelerator = Accelerator(
        # Without a GPU, several processes only form a (gloo) group when accelerate is told to use the CPU.
        cpu=not torch.cuda.is_available(),
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        mixed_precision=config.mixed_precision,
        log_with=None if config.report_to == "none" else config.report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
    )
    logging.basicConfig(level=logging.INFO if accelerator.is_main_process else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s")
    set_seed(config.seed)  # the same initial weights on every process; DDP keeps them in step afterwards

    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))

    logger.info("Training %s on %d process(es), device %s", method.name, accelerator.num_processes, accelerator.device)
    models = method.build_models()
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
    schedulers = {
        name: get_scheduler(
            config.lr_scheduler,
            optimizer=optimizer,
            num_warmup_steps=config.lr_warmup_steps * accelerator.num_processes,
            num_training_steps=config.max_steps * accelerator.num_processes,
        )
        for name, optimizer in optimizers.items()
    }

    groups = (models, optimizers, schedulers)
    prepared = iter(accelerator.prepare(*(obj for group in groups for obj in group.values()), dataloader))
    models, optimizers, schedulers = ({name: next(prepared) for name in group} for group in groups)
    dataloader = next(prepared)
    if len(dataloader) == 0:
        raise ValueError(
            f"The dataset has {len(dataset)} samples: fewer than one batch of {config.train_batch_size} per process "
            f"on {accelerator.num_processes} processes."
        )
    progress = TrainingProgress()
    accelerator.register_for_checkpointing(progress)

    resume_from = _resume_path(config)
    if resume_from is not None:
        accelerator.load_state(str(resume_from))
        logger.info("Resumed from %s at step %d", resume_from, progress.step)
    elif config.resume:
        logger.info("No complete checkpoint in %s: starting from scratch.", output_dir / "checkpoints")

    if accelerator.is_main_process and config.report_to != "none":
        accelerator.init_trackers(method.name or "facehub", config=_flatten(config.to_dict()))

    ctx = StepContext(accelerator, models, optimizers, schedulers, config)
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
                with accelerator.accumulate(*models.values()):
                    ctx.step = progress.step
                    logs = method.training_step(batch, ctx)
                progress.micro_step += 1
                for key, value in logs.items():
                    running.setdefault(key, []).append(float(value))
                if not accelerator.sync_gradients:
                    continue
                progress.step += 1
                bar.update(1)
                step = progress.step

                if step % config.logging_steps == 0 or step == config.max_steps:
                    last_logs = _reduce_logs(accelerator, running)
                    last_logs["lr"] = next(iter(schedulers.values())).get_last_lr()[0]
                    running.clear()
                    bar.set_postfix({k: f"{v:.4g}" for k, v in last_logs.items()})
                    if accelerator.is_main_process:
                        accelerator.log(last_logs, step=step)
                        with open(output_dir / "metrics.jsonl", "a") as fh:
                            fh.write(json.dumps({"step": step, "time": round(time.time() - started, 3),
                                                 **last_logs}) + "\n")

                stop_now = _any_process(accelerator, stop.requested)
                if step % config.checkpointing_steps == 0 or step == config.max_steps or stop_now:
                    save_checkpoint(accelerator, config, progress)
                if config.export_steps and step % config.export_steps == 0 and step != config.max_steps:
                    export(accelerator, method, models, output_dir / "export", command)
                if stop_now:
                    logger.warning("Stop requested: state saved at step %d; resume with resume=true.", step)
                    stopped = True
                    break
                if step >= config.max_steps:
                    break
    bar.close()

    summary: dict[str, Any] = {"step": progress.step, "logs": last_logs, "output_dir": str(output_dir)}
    if progress.step >= config.max_steps:
        export_dir = export(accelerator, method, models, output_dir / "export", command)
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


def save_checkpoint(accelerator: Accelerator, config: TrainingConfig, progress: TrainingProgress) -> Path:
    """Save the full state to ``checkpoints/checkpoint-<step>``, mark it complete, drop the oldest beyond the limit."""
    output_dir = Path(config.output_dir)
    path = output_dir / "checkpoints" / f"{CHECKPOINT_PREFIX}{progress.step}"
    accelerator.wait_for_everyone()
    accelerator.save_state(str(path))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (path / COMPLETE_MARKER).write_text(json.dumps({"step": progress.step, "method": config.method}))
        if config.checkpoints_total_limit:
            for old in list_checkpoints(output_dir, complete_only=False)[: -config.checkpoints_total_limit]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return path


def export(
    accelerator: Accelerator,
    method: TrainingMethod,
    models: dict[str, torch.nn.Module],
    folder: Path,
    command: str | None = None,
) -> Path:
    """Write the HF-format bundle with its model card (main process), replacing the previous export atomically."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        staging = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        unwrapped = {name: accelerator.unwrap_model(model) for name, model in models.items()}
        method.export(unwrapped, staging)
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
    write_model_card(
        folder,
        repo_id=config.hub_model_id or f"facehub/{config.method}",
        method=config.method,
        training_command=command or f"facehub train {config.method} --config training_config.yaml",
        **method.model_card(),
    )
