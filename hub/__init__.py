"""Checkpoints to and from the Hugging Face Hub: id resolution, push / pull, model cards, embedded defaults.

``resolve`` and ``pull`` are imported eagerly (cheap: they import ``huggingface_hub`` only when called); the push
and card helpers load on first use so that importing ``facehub.hub`` stays cheap.
"""

from importlib import import_module

from facehub.hub.pull import pull
from facehub.hub.resolver import EMBEDDED_DEFAULTS_DIR, ModelNotFoundError, list_embedded, resolve

_LAZY = {
    "NotAModelFolderError": "facehub.hub.cards",
    "describe_model_folder": "facehub.hub.cards",
    "render_model_card": "facehub.hub.cards",
    "write_model_card": "facehub.hub.cards",
    "GitNotFoundError": "facehub.hub.push",
    "GitPushError": "facehub.hub.push",
    "PushError": "facehub.hub.push",
    "init_bare_repo": "facehub.hub.push",
    "mirror_repo_path": "facehub.hub.push",
    "push_to_git": "facehub.hub.push",
    "push_to_hub": "facehub.hub.push",
}

__all__ = ["EMBEDDED_DEFAULTS_DIR", "ModelNotFoundError", "list_embedded", "pull", "resolve", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'facehub.hub' has no attribute {name!r}")
