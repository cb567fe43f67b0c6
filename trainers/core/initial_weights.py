"""``init_from``: start a run's networks from a trained checkpoint (fine-tuning) instead of a fresh initialisation.

Each network the method builds is looked up in the checkpoint by its class (a bundle's component of that class, as
``from_pretrained`` finds it, or a single-model folder); one found must have the same config as the network built
from the run's config, so an architecture change is an error, never a partial load. Networks the checkpoint does not
hold (a GAN's discriminator beside an exported generator) keep their fresh initialisation. A resumed run loads its
own checkpoint afterwards, so ``init_from`` only shapes step 0.
"""

from __future__ import annotations

import json
import logging

import torch

from facehub.trainers.core.config import ConfigError

logger = logging.getLogger(__name__)


def _differences(built: dict, loaded: dict) -> list[str]:
    """Config fields that differ, compared as JSON values (a saved tuple reads back as a list)."""
    built, loaded = (json.loads(json.dumps(config, default=str)) for config in (built, loaded))
    keys = sorted(k for k in set(built) | set(loaded) if not k.startswith("_"))
    return [f"{k}: {loaded.get(k)!r} there, {built.get(k)!r} here" for k in keys if built.get(k) != loaded.get(k)]


def load_initial_weights(models: dict[str, torch.nn.Module], checkpoint: str) -> list[str]:
    """Copy the weights of ``checkpoint`` (embedded id, Hub id or folder) into the networks it holds; returns the
    names of the networks initialised from it.

    Raises:
        ConfigError: the checkpoint holds none of the networks, or one with another architecture.
    """
    from facehub.modeling.modeling_utils import CheckpointError

    loaded_names = []
    for name, model in models.items():
        loader = getattr(type(model), "from_pretrained", None)
        if loader is None:
            continue
        try:
            source = loader(checkpoint)
        except (CheckpointError, ValueError, OSError) as err:
            logger.info("init_from %s: no %s for `%s` (%s); it starts fresh", checkpoint, type(model).__name__, name,
                        str(err).splitlines()[0])
            continue
        differences = _differences(dict(model.config), dict(source.config))
        if differences:
            raise ConfigError(f"init_from {checkpoint} holds a {type(model).__name__} with other settings than this "
                              f"run's `{name}` ({'; '.join(differences[:4])}); match `model` to it or drop init_from.")
        model.load_state_dict(source.state_dict())
        loaded_names.append(name)
    if not loaded_names:
        raise ConfigError(f"init_from {checkpoint} holds none of this run's networks ({', '.join(models)}); give a "
                          "checkpoint of the same method.")
    logger.info("Initialised %s from %s", ", ".join(loaded_names), checkpoint)
    return loaded_names
