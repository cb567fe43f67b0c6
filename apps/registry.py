"""The demo's tab registry and the context every tab is built with.

A capability adds itself to the Gradio hub by registering a tab builder::

    from facehub.apps.registry import register_tab

    @register_tab("Rotate", order=20)
    def build(ctx):
        ...  # create Gradio components and events; they land inside the tab's ``gr.Tab``

``build(ctx)`` receives the :class:`DemoContext`, whose ``ctx.load(model_id, cls)`` loads checkpoints once and shares
them between tabs. A builder may return a :class:`TabRefresh`: the demo then runs it whenever the user opens the tab
(for content that changes while the app runs, such as the list of loaded checkpoints).

Tabs live in the modules named in :data:`BUILTIN_TAB_MODULES`; they are imported when the demo is built (not when
this module is imported), so a tab's heavy imports cost nothing until then, and a tab that fails to import is
reported in the log and left out instead of taking the whole demo down.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

BUILTIN_TAB_MODULES: list[str] = [
    "facehub.apps.tabs.rotate",
    "facehub.apps.tabs.reconstruct",
    "facehub.apps.tabs.swap",
    "facehub.apps.tabs.models",
    "facehub.apps.tabs.about",
]
"""Modules that register the built-in tabs; a new capability tab adds its module here."""


@dataclass(frozen=True)
class TabRefresh:
    """What a tab builder may return: ``fn()`` is called when the tab is opened and its results fill ``outputs``."""

    fn: Callable[[], Any]
    outputs: Sequence[Any]


@dataclass(frozen=True)
class TabSpec:
    """A registered tab: its label, position (lower ``order`` comes first) and builder ``build(ctx)``."""

    name: str
    order: int
    build: Callable[[DemoContext], TabRefresh | None]

    @property
    def source(self) -> str:
        """``module.function`` of the builder, to tell registrations apart."""
        return f"{self.build.__module__}.{self.build.__qualname__}"


_TABS: dict[str, TabSpec] = {}


def register_tab(name: str, order: int = 50) -> Callable:
    """Decorator: register ``build(ctx)`` as the builder of the tab labelled ``name``.

    Tabs are shown by increasing ``order``, then by name. Registering the same builder again (a re-imported module)
    replaces the entry; a second, different builder for a label already in use is an error.
    """

    def decorator(build: Callable[[DemoContext], TabRefresh | None]) -> Callable:
        spec = TabSpec(name=name, order=order, build=build)
        existing = _TABS.get(name)
        if existing is not None and existing.source != spec.source:
            raise ValueError(
                f"Tab {name!r} is already registered by {existing.source}; {spec.source} must use another label."
            )
        _TABS[name] = spec
        return build

    return decorator


def load_builtin_tabs(modules: Sequence[str] | None = None) -> list[str]:
    """Import the tab modules (default :data:`BUILTIN_TAB_MODULES`); return the ones that failed to import."""
    failed = []
    for module in BUILTIN_TAB_MODULES if modules is None else modules:
        try:
            importlib.import_module(module)
        except Exception:
            logger.exception("Demo tab module %s failed to import; its tab is left out.", module)
            failed.append(module)
    return failed


def registered_tabs() -> list[TabSpec]:
    """Every registered tab, in display order (built-in tab modules are imported first)."""
    load_builtin_tabs()
    return sorted(_TABS.values(), key=lambda spec: (spec.order, spec.name))


def default_device() -> str:
    """``"cuda"`` when a CUDA GPU is usable, else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def count_parameters(obj: Any) -> int:
    """Number of parameters of a ``torch.nn.Module``, or summed over a pipeline's module components."""
    import torch

    if isinstance(obj, torch.nn.Module):
        return sum(p.numel() for p in obj.parameters())
    components = getattr(obj, "components", None) or {}
    return sum(count_parameters(c) for c in components.values() if isinstance(c, torch.nn.Module))


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint the demo holds in memory: its id, the class that loaded it, its folder and size."""

    model_id: str
    class_name: str
    path: Path
    num_parameters: int
    device: str
    load_seconds: float


@dataclass
class DemoContext:
    """What every tab builder gets: the device and a cache of loaded models shared between tabs.

    Attributes:
        device: where loaded models are moved (``"cuda"`` or ``"cpu"``; detected when not given).
    """

    device: str = field(default_factory=default_device)
    _models: dict[tuple[str, type], Any] = field(default_factory=dict, init=False, repr=False)
    _loaded: dict[tuple[str, type], LoadedCheckpoint] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def load(self, model_id: str, cls: type) -> Any:
        """Load ``model_id`` (embedded id, local folder or Hub id) with ``cls.from_pretrained``, once.

        The id is resolved with :func:`facehub.hub.resolve` (raising its ``ModelNotFoundError`` with what was tried),
        the model is moved to :attr:`device`, cached under ``(model_id, cls)`` and recorded for :meth:`loaded`.
        """
        from facehub.hub.resolver import resolve

        key = (model_id, cls)
        with self._lock:
            if key in self._models:
                return self._models[key]
            start = time.perf_counter()
            path = resolve(model_id)
            model = cls.from_pretrained(str(path))
            if hasattr(model, "to"):
                model = model.to(self.device)
            self._models[key] = model
            self._loaded[key] = LoadedCheckpoint(
                model_id=model_id,
                class_name=cls.__name__,
                path=path,
                num_parameters=count_parameters(model),
                device=self.device,
                load_seconds=time.perf_counter() - start,
            )
            return model

    def is_loaded(self, model_id: str, cls: type) -> bool:
        """Whether ``model_id`` is already cached for ``cls``."""
        with self._lock:
            return (model_id, cls) in self._models

    def checkpoint(self, model_id: str, cls: type) -> LoadedCheckpoint | None:
        """The record of ``model_id`` loaded as ``cls``, or ``None``."""
        with self._lock:
            return self._loaded.get((model_id, cls))

    def loaded(self) -> list[LoadedCheckpoint]:
        """The checkpoints loaded so far, in load order."""
        with self._lock:
            return list(self._loaded.values())

    def clear(self) -> None:
        """Forget every cached model (frees their memory once no tab holds them)."""
        with self._lock:
            self._models.clear()
            self._loaded.clear()
