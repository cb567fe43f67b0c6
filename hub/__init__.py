"""Checkpoints to and from the Hugging Face Hub: id resolution, push / pull, model cards, embedded defaults."""

from facehub.hub.resolve import EMBEDDED_DEFAULTS_DIR, ModelNotFoundError, list_embedded, resolve

__all__ = ["EMBEDDED_DEFAULTS_DIR", "ModelNotFoundError", "list_embedded", "resolve"]
