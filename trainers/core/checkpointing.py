"""Training checkpoints that facehub writes and reads itself, with nothing unpickled on resume.

A checkpoint is the folder ``output_dir/checkpoints/checkpoint-<step>``:

- ``model_<name>.safetensors``: each network's weights (``ema_<name>.safetensors``: its EMA copy, if any);
- ``optimizer_<name>.pt`` (and ``scaler.pt`` under fp16): ``torch.save`` of the state dicts, read back with
  ``torch.load(weights_only=True)``, which builds only tensors and plain containers;
- ``rng_state_<process>.json``: Python's, NumPy's and torch's (CPU and CUDA) random states of every process;
- ``progress.json``: the step counters;
- ``facehub_checkpoint.json``, written last: the manifest (step, method, process count, and the size and sha256 of
  every file above). A folder is only ever made visible under its final name once the manifest is in it.

Resuming verifies the manifest first and only then reads the files it lists, by the names above; any other file
in the folder is ignored (never opened). A newest checkpoint that fails verification (a truncated or altered
file, a missing or unreadable manifest) is skipped with a log line saying why, and the newest intact one is used.
A file that passes verification but cannot be applied (an RNG state that does not parse, weights for another
network, a pickle of anything but tensors) is an error that names the file: resuming from it would not continue
the run exactly. Resuming with another number of processes restores everything but the random states of the
processes the original run did not have, and says that the continuation is not exact.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import random
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"
MANIFEST = "facehub_checkpoint.json"
FORMAT = "facehub-checkpoint-1"
PROGRESS = "progress.json"
SCALER = "scaler.pt"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: damaged, written by something else, or not matching this run."""


def model_file(name: str) -> str:
    return f"model_{name}.safetensors"


def ema_file(name: str) -> str:
    return f"ema_{name}.safetensors"


def optimizer_file(name: str) -> str:
    return f"optimizer_{name}.pt"


def rng_file(process_index: int) -> str:
    return f"rng_state_{process_index}.json"


def list_checkpoints(output_dir: Path, complete_only: bool = True) -> list[Path]:
    """Checkpoint folders in ``output_dir/checkpoints``, oldest first; ``complete_only`` skips the ones without a
    manifest (half written). Whether a listed one is intact is :func:`verify_checkpoint`'s question."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        suffix = path.name.removeprefix(CHECKPOINT_PREFIX)
        if path.is_dir() and path.name.startswith(CHECKPOINT_PREFIX) and suffix.isdigit():
            if not complete_only or (path / MANIFEST).is_file():
                found.append((int(suffix), path))
    return [path for _, path in sorted(found)]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------------------------
# Random states as JSON


def capture_rng_state() -> dict[str, Any]:
    """This process's Python, NumPy and torch random states, as JSON-ready values."""
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy": {"kind": kind, "keys": keys.tolist(), "position": int(position), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode("ascii"),
        "cuda": [],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [base64.b64encode(s.numpy().tobytes()).decode("ascii") for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Apply a state from :func:`capture_rng_state`; raises ``ValueError``/``KeyError``/``TypeError`` when damaged."""
    python = state["python"]
    internal = tuple(int(v) for v in python["state"])
    if len(internal) != 625:
        raise ValueError(f"Python's state has {len(internal)} words, expected 625")
    numpy_state = state["numpy"]
    keys = np.asarray(numpy_state["keys"], dtype=np.uint32)
    if keys.shape != (624,):
        raise ValueError(f"NumPy's state has {keys.size} keys, expected 624")
    torch_state = torch.frombuffer(bytearray(base64.b64decode(state["torch"], validate=True)), dtype=torch.uint8)
    cuda_states = [torch.frombuffer(bytearray(base64.b64decode(s, validate=True)), dtype=torch.uint8)
                   for s in state["cuda"]]
    # Everything parsed: apply.
    random.setstate((int(python["version"]), internal, python["gauss"]))
    np.random.set_state((str(numpy_state["kind"]), keys, int(numpy_state["position"]), int(numpy_state["has_gauss"]),
                         float(numpy_state["cached_gaussian"])))
    torch.set_rng_state(torch_state)
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states[: torch.cuda.device_count()])


# --------------------------------------------------------------------------------------------------------------------
# Saving


def save_checkpoint(
    accelerator,
    output_dir: Path,
    step: int,
    progress: dict[str, int],
    models: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    emas: dict[str, Any] | None = None,
    method: str = "",
    total_limit: int | None = None,
) -> Path:
    """Write ``checkpoints/checkpoint-<step>`` (see the module docstring) from every process; returns its path.

    The files go into ``checkpoint-<step>.partial`` first; the main process writes the manifest last and renames
    the folder, so a checkpoint visible under its final name is complete. Afterwards the oldest checkpoints beyond
    ``total_limit`` are removed.
    """
    from safetensors.torch import save_model

    root = Path(output_dir) / "checkpoints"
    final = root / f"{CHECKPOINT_PREFIX}{step}"
    staging = root / f"{CHECKPOINT_PREFIX}{step}.partial"
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        for name, model in models.items():
            save_model(accelerator.unwrap_model(model), str(staging / model_file(name)))
        for name, ema in (emas or {}).items():
            save_model(ema.average, str(staging / ema_file(name)))
        for name, optimizer in optimizers.items():
            torch.save(optimizer.state_dict(), staging / optimizer_file(name))
        if accelerator.scaler is not None:
            torch.save(accelerator.scaler.state_dict(), staging / SCALER)
        (staging / PROGRESS).write_text(json.dumps({key: int(value) for key, value in progress.items()}))
    (staging / rng_file(accelerator.process_index)).write_text(json.dumps(capture_rng_state()))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        files = {
            path.name: {"size": path.stat().st_size, "sha256": _sha256(path)}
            for path in sorted(staging.iterdir()) if path.is_file()
        }
        manifest = {"format": FORMAT, "step": int(step), "method": method,
                    "num_processes": accelerator.num_processes, "models": sorted(models),
                    "optimizers": sorted(optimizers), "emas": sorted(emas or {}), "files": files}
        with open(staging / MANIFEST, "w") as fh:
            fh.write(json.dumps(manifest, indent=1))
            fh.flush()
            os.fsync(fh.fileno())
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
        if total_limit:
            for old in list_checkpoints(output_dir, complete_only=False)[:-total_limit]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


# --------------------------------------------------------------------------------------------------------------------
# Verifying and choosing


def verify_checkpoint(path: Path) -> dict[str, Any]:
    """The manifest of an intact checkpoint; :class:`CheckpointError` saying what is wrong otherwise."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointError(f"{path} has no {MANIFEST} (not a complete facehub checkpoint)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{manifest_path} is unreadable ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), dict):
        raise CheckpointError(
            f"{path} was not written by this version of facehub (its {MANIFEST} lists no verified files; older "
            "checkpoints hold pickles, which facehub does not load)"
        )
    for name, facts in manifest["files"].items():
        if "/" in name or "\\" in name or name in ("", ".", ".."):
            raise CheckpointError(f"{manifest_path} lists {name!r}, which is not a file of the checkpoint folder")
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"{name} is missing")
        size = file.stat().st_size
        if size != facts.get("size"):
            raise CheckpointError(f"{name} has {size} bytes, the manifest says {facts.get('size')} (truncated or altered)")
        if _sha256(file) != facts.get("sha256"):
            raise CheckpointError(f"{name} does not match its sha256 in the manifest (altered or damaged)")
    return manifest


def find_checkpoint(output_dir: Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest intact checkpoint in ``output_dir`` (or ``None``), and the newer ones skipped with the reason."""
    skipped = []
    for path in reversed(list_checkpoints(output_dir, complete_only=False)):
        try:
            verify_checkpoint(path)
        except CheckpointError as error:
            skipped.append((path, str(error)))
            continue
        return path, skipped
    return None, skipped


# --------------------------------------------------------------------------------------------------------------------
# Loading


def _load_tensors_file(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - the unpickler's many error types all mean the same here
        raise CheckpointError(
            f"{path} holds something other than tensors and plain values, which facehub does not load "
            f"({type(error).__name__})"
        ) from None


def load_checkpoint(
    accelerator,
    path: Path,
    models: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    emas: dict[str, Any] | None = None,
    manifest: dict[str, Any] | None = None,
) -> dict[str, int]:
    """Restore the state written by :func:`save_checkpoint` into this process; returns the progress counters.

    ``path`` must have passed :func:`verify_checkpoint` (its manifest is ``manifest``; read again if not given).
    """
    from safetensors.torch import load_model

    path = Path(path)
    manifest = manifest if manifest is not None else verify_checkpoint(path)
    listed = set(manifest["files"])
    ignored = sorted(p.name for p in path.iterdir() if p.name not in listed and p.name != MANIFEST)
    if ignored and accelerator.is_main_process:
        logger.warning("Ignoring files in %s that facehub did not write: %s", path, ", ".join(ignored))

    def need(name: str, what: str) -> Path:
        if name not in listed:
            raise CheckpointError(f"{path} holds no {what} ({name}); was it written by another configuration?")
        return path / name

    saved_processes = int(manifest.get("num_processes", 1))
    same_processes = saved_processes == accelerator.num_processes
    if not same_processes and accelerator.is_main_process:
        logger.warning(
            "%s was written by %d process(es) and this run has %d: weights, optimiser state and step are restored, "
            "but the data order and random streams differ from the original run's (resume with %d for an exact "
            "continuation).", path, saved_processes, accelerator.num_processes, saved_processes,
        )
    for name, model in models.items():
        file = need(model_file(name), f"weights for {name!r}")
        try:
            load_model(accelerator.unwrap_model(model), str(file), strict=True)
        except Exception as error:  # noqa: BLE001
            raise CheckpointError(f"{file} does not fit the network {name!r}: {error}") from None
    for name, ema in (emas or {}).items():
        file = need(ema_file(name), f"EMA weights for {name!r}")
        try:
            load_model(ema.average, str(file), strict=True)
        except Exception as error:  # noqa: BLE001
            raise CheckpointError(f"{file} does not fit the EMA of {name!r}: {error}") from None
    for name, optimizer in optimizers.items():
        file = need(optimizer_file(name), f"state for the optimiser {name!r}")
        state = _load_tensors_file(file)
        try:
            optimizer.load_state_dict(state)
        except Exception as error:  # noqa: BLE001
            raise CheckpointError(f"{file} does not fit the optimiser {name!r}: {error}") from None
    if accelerator.scaler is not None and SCALER in listed:
        accelerator.scaler.load_state_dict(_load_tensors_file(path / SCALER))
    try:
        progress = json.loads(need(PROGRESS, "progress counters").read_text())
        progress = {key: int(progress[key]) for key in ("step", "micro_step")}
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{path / PROGRESS} is damaged ({error})") from None
    if not same_processes and rng_file(accelerator.process_index) not in listed:
        return progress  # a process the original run did not have: it keeps its freshly seeded streams
    rng = need(rng_file(accelerator.process_index), f"random state of process {accelerator.process_index}")
    try:
        restore_rng_state(json.loads(rng.read_text()))
    except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as error:
        raise CheckpointError(
            f"The random state {rng} is damaged ({error}); the run cannot continue exactly from this checkpoint. "
            "Resume from an older checkpoint (resume=<path>) or start over."
        ) from None
    return progress


def describe_skipped(skipped: Iterable[tuple[Path, str]]) -> str:
    return "; ".join(f"{path.name}: {reason}" for path, reason in skipped)
