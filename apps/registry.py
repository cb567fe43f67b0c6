"""The demo's tab registry and the context every tab is built with.

A capability adds itself to the Gradio hub by registering a tab builder::

    from facehub.apps.registry import register_tab

    @register_tab("Rotate", order=20)
    def build(ctx):
        ...  # create Gradio components and events; they land inside the tab's ``gr.Tab``

``build(ctx)`` receives the :class:`DemoContext`, whose ``ctx.load(model_id, cls)`` loads checkpoints once and shares
them between tabs. A builder may return a :class:`TabRefresh`: the demo then runs it whenever the user opens the tab
(for content that changes while the app runs, such as the list of loaded checkpoints or of the offered models).

Where tabs come from: the capability tabs in :data:`BUILTIN_TAB_MODULES` (Rotate, Reconstruct, Swap, Generate, Compare,
Models, About),
which list every method of the registry (:mod:`facehub.methods`) with their capability, plus the ``tabs`` modules
that a method declares in its ``MethodSpec`` for a tab of its own. They are imported when the demo is built (not when
this module is imported), so a tab's heavy imports cost nothing until then, and a tab that fails to import is
reported in the log and left out instead of taking the whole demo down.

Which models the demo touches: by default only the embedded defaults (``facehub hub list``) and saved models in one
allow-listed folder, ``DemoContext.models_dir`` (``facehub demo --models-dir DIR``, or ``FACEHUB_MODELS_DIR``).
Anything else typed into a model box is refused with :data:`MODEL_REFUSED`, the same sentence whatever it was, so
the demo answers nothing about the server's files. ``allow_any_model=True`` (``--allow-any-model``) lifts this for
a demo that only trusted users reach.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

BUILTIN_TAB_MODULES: list[str] = [
    "facehub.apps.tabs.rotate",
    "facehub.apps.tabs.reconstruct",
    "facehub.apps.tabs.swap",
    "facehub.apps.tabs.generate",
    "facehub.apps.tabs.compare",
    "facehub.apps.tabs.models",
    "facehub.apps.tabs.about",
]
"""Modules of the capability tabs. A method's own tab is not added here: the method names its module in
``MethodSpec.tabs`` and :func:`tab_modules` finds it in the method registry."""

MODELS_DIR_ENV = "FACEHUB_MODELS_DIR"
"""Environment variable naming the allow-listed models folder when none is passed to :class:`DemoContext`."""

MODEL_REFUSED = (
    "This demo cannot use that model. Pick one from the list: an embedded default, or a model saved in the demo's "
    "models folder."
)
"""The one answer to any model id the demo does not offer (missing, outside the allow-list, malformed, too long)."""

NO_MODEL_SELECTED = "No model selected: pick one from the list."

MAX_MODEL_ID_LENGTH = 256
"""Longer model ids are refused before any file-system call."""


class ModelNotAllowedError(ValueError):
    """A model id the demo does not offer; the message is always :data:`MODEL_REFUSED` (or
    :data:`NO_MODEL_SELECTED`) and never depends on what exists on the server."""


@dataclass(frozen=True)
class TabRefresh:
    """What a tab builder may return: ``fn(*inputs)`` is called when the tab is opened and its results fill
    ``outputs`` (the capability tabs re-scan the offered models this way, with the chosen method as input)."""

    fn: Callable[..., Any]
    outputs: Sequence[Any]
    inputs: Sequence[Any] = ()


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


def method_tab_modules() -> list[str]:
    """The ``tabs`` modules every registered method declares (``MethodSpec.tabs``), in method-name order."""
    from facehub import methods

    modules: list[str] = []
    for spec in methods.all_methods():
        modules.extend(module for module in spec.tabs if module not in modules)
    return modules


def tab_modules() -> list[str]:
    """The capability tabs' modules, then those the method registry names."""
    modules = list(BUILTIN_TAB_MODULES)
    try:
        extra = method_tab_modules()
    except Exception:
        logger.exception("The method registry failed to load; only the built-in tabs are shown.")
        extra = []
    return modules + [module for module in extra if module not in modules]


def load_builtin_tabs(modules: Sequence[str] | None = None) -> list[str]:
    """Import the tab modules (default :func:`tab_modules`); return the ones that failed to import."""
    failed = []
    for module in tab_modules() if modules is None else modules:
        try:
            importlib.import_module(module)
        except Exception:
            logger.exception("Demo tab module %s failed to import; its tab is left out.", module)
            failed.append(module)
    return failed


def registered_tabs() -> list[TabSpec]:
    """Every registered tab, in display order (the tab modules are imported first)."""
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


@dataclass(frozen=True)
class OfferedModel:
    """A model the demo offers: the id shown in the pickers, its folder, its saved class and card line."""

    model_id: str
    path: Path
    class_name: str | None
    description: str
    embedded: bool


def _is_saved_model(folder: Path) -> bool:
    return (folder / "model_index.json").is_file() or (folder / "config.json").is_file()


def _default_models_dir() -> Path | None:
    value = os.environ.get(MODELS_DIR_ENV, "").strip()
    return Path(value) if value else None


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


@dataclass
class DemoContext:
    """What every tab builder gets: the device, the models the demo may use, and bounded caches.

    Attributes:
        device: where loaded models are moved (``"cuda"`` or ``"cpu"``; detected when not given).
        models_dir: the allow-listed folder of saved models (``model_index.json`` or ``config.json`` in
            ``DIR/<name>`` or ``DIR/<org>/<name>``); default ``$FACEHUB_MODELS_DIR``, or none.
        allow_any_model: also accept any local folder or Hub id (only for a demo that trusted users alone reach).
        max_models: how many loaded models are kept; the least recently used is dropped beyond that.
        max_temp_folders: how many per-request output folders (mesh exports) are kept; older ones are deleted,
            and all of them when the process exits.
    """

    device: str = field(default_factory=default_device)
    models_dir: Path | str | None = field(default_factory=_default_models_dir)
    allow_any_model: bool = False
    max_models: int = 4
    max_temp_folders: int = 16
    _models: OrderedDict[tuple[str, type], Any] = field(default_factory=OrderedDict, init=False, repr=False)
    _loaded: dict[tuple[str, type], LoadedCheckpoint] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)
    _loading: dict[tuple[str, type], threading.Lock] = field(default_factory=dict, init=False, repr=False)
    _temp_root: Path | None = field(default=None, init=False, repr=False)
    _temp_folders: list[Path] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_models < 1:
            raise ValueError(f"Got {self.max_models} for `max_models`; the demo needs room for at least 1 model.")
        if self.max_temp_folders < 1:
            raise ValueError(f"Got {self.max_temp_folders} for `max_temp_folders`; it must be at least 1.")

    # ---- which models the demo offers --------------------------------------------------------------------------

    def _models_root(self) -> Path | None:
        if self.models_dir is None or str(self.models_dir).strip() == "":
            return None
        root = Path(self.models_dir).expanduser()
        return root.resolve() if root.is_dir() else None

    def offered_models(self) -> list[OfferedModel]:
        """Every model the demo offers: the embedded defaults, then the saved models of :attr:`models_dir`.

        A folder of the models directory whose id is also an embedded id is left out (the embedded default wins,
        and the log says so); rename the folder to offer it.
        """
        from facehub.hub.resolver import list_embedded, saved_class_name

        offered = [OfferedModel(m.model_id, m.path, m.class_name, m.description, True) for m in list_embedded()]
        taken = {m.model_id for m in offered}
        root = self._models_root()
        if root is not None:
            for entry in sorted(root.iterdir()):
                if not entry.is_dir() or not entry.resolve().is_relative_to(root):
                    continue  # links that lead out of the models folder are neither offered nor searched
                candidates = [entry] if _is_saved_model(entry) else sorted(p for p in entry.iterdir() if p.is_dir())
                for candidate in candidates:
                    folder = candidate.resolve()
                    if not folder.is_relative_to(root) or not _is_saved_model(folder):
                        continue
                    model_id = candidate.relative_to(root).as_posix()
                    if model_id in taken:
                        logger.warning("Models folder entry %s has the id of an embedded default, which wins; "
                                       "rename the folder to offer it.", model_id)
                        continue
                    offered.append(OfferedModel(model_id, folder, saved_class_name(folder), "", False))
        return offered

    def resolve(self, model_id: Any) -> tuple[str, Path]:
        """``(id to show, resolved folder)`` of a model the demo offers.

        Accepted: an embedded id, or a saved model under :attr:`models_dir` given by its id (``name`` or
        ``org/name``) or by any path that leads there (symbolic links are followed first). With
        :attr:`allow_any_model`, anything :func:`facehub.hub.resolve` finds.

        Raises:
            ModelNotAllowedError: with :data:`NO_MODEL_SELECTED` for an empty id, else :data:`MODEL_REFUSED`
                (the same text whatever the id was).
        """
        text = model_id.strip() if isinstance(model_id, str) else ""
        if not text:
            raise ModelNotAllowedError(NO_MODEL_SELECTED)
        if self.allow_any_model:
            from facehub.hub.resolver import resolve

            return text, resolve(text)
        if len(text) > MAX_MODEL_ID_LENGTH or any(ord(char) < 32 or char == "\x7f" for char in text):
            raise ModelNotAllowedError(MODEL_REFUSED)
        from facehub.hub import resolver

        embedded_root = resolver.EMBEDDED_DEFAULTS_DIR  # read now: tests and tools point it elsewhere
        for model in resolver.list_embedded():
            if model.model_id == text:
                return model.model_id, model.path.resolve()
        roots = [root for root in (self._models_root(), Path(embedded_root)) if root is not None]
        for root in roots:
            try:
                root = root.resolve(strict=True)
                candidate = Path(text)
                folder = (candidate if candidate.is_absolute() else root / candidate).resolve(strict=True)
            except (OSError, RuntimeError, ValueError):
                continue
            if folder != root and folder.is_relative_to(root) and folder.is_dir() and _is_saved_model(folder):
                return folder.relative_to(root).as_posix(), folder
        raise ModelNotAllowedError(MODEL_REFUSED)

    # ---- the bounded model cache -------------------------------------------------------------------------------

    def load(self, model_id: str, cls: type, loader: Callable[[Path], Any] | None = None) -> Any:
        """The model ``model_id`` loaded as ``cls``, from the cache when it is there.

        The id goes through :meth:`resolve` (so only offered models load) and the cache is keyed by the resolved
        folder and ``cls``: every spelling of one model shares one copy. ``loader(folder)`` builds it (default
        ``cls.from_pretrained(folder)``); it is moved to :attr:`device`. At most :attr:`max_models` stay cached,
        the least recently used is dropped first.

        Raises:
            ModelNotAllowedError: the id is not offered. Loading errors (``CheckpointError``...) pass through.
        """
        return self.load_checkpoint(model_id, cls, loader)[0]

    def load_checkpoint(
        self, model_id: str, cls: type, loader: Callable[[Path], Any] | None = None
    ) -> tuple[Any, LoadedCheckpoint, bool]:
        """:meth:`load`, also returning the checkpoint's record and whether this call loaded it (``False``: it
        came from the cache, even when another request was loading it at the same moment)."""
        shown, folder = self.resolve(model_id)
        key = (str(folder), cls)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key], self._loaded[key], False
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # one load per model at a time; other models' requests go on meanwhile
            with self._lock:
                if key in self._models:  # another request loaded it while this one waited
                    self._models.move_to_end(key)
                    return self._models[key], self._loaded[key], False
            try:
                start = time.perf_counter()
                model = loader(folder) if loader is not None else cls.from_pretrained(str(folder))
                if hasattr(model, "to"):
                    model = model.to(self.device)
                record = LoadedCheckpoint(
                    model_id=shown,
                    class_name=cls.__name__,
                    path=folder,
                    num_parameters=count_parameters(model),
                    device=self.device,
                    load_seconds=time.perf_counter() - start,
                )
                with self._lock:
                    self._models[key], self._loaded[key] = model, record
                    while len(self._models) > self.max_models:
                        dropped, _ = self._models.popitem(last=False)
                        gone = self._loaded.pop(dropped, None)
                        logger.info("Dropped %s (%s) from the demo's model cache (max_models=%d).",
                                    gone.model_id if gone else dropped[0], dropped[1].__name__, self.max_models)
            finally:
                with self._lock:
                    self._loading.pop(key, None)
            return model, record, True

    def _key(self, model_id: str, cls: type) -> tuple[str, type] | None:
        try:
            return str(self.resolve(model_id)[1]), cls
        except (ModelNotAllowedError, OSError):
            return None

    def is_loaded(self, model_id: str, cls: type) -> bool:
        """Whether ``model_id`` is already cached for ``cls``."""
        key = self._key(model_id, cls)
        with self._lock:
            return key is not None and key in self._models

    def checkpoint(self, model_id: str, cls: type) -> LoadedCheckpoint | None:
        """The record of ``model_id`` loaded as ``cls``, or ``None``."""
        key = self._key(model_id, cls)
        with self._lock:
            return None if key is None else self._loaded.get(key)

    def loaded(self) -> list[LoadedCheckpoint]:
        """The checkpoints held now, least recently used first."""
        with self._lock:
            return [self._loaded[key] for key in self._models if key in self._loaded]

    def clear(self) -> None:
        """Forget every cached model (frees their memory once no tab holds them)."""
        with self._lock:
            self._models.clear()
            self._loaded.clear()

    # ---- bounded temporary folders -----------------------------------------------------------------------------

    def temp_folder(self, prefix: str = "facehub-") -> Path:
        """A new empty folder for one request's output files, under this demo's own temporary folder.

        Only the newest :attr:`max_temp_folders` are kept (Gradio copies returned files into its cache before the
        next requests can push a folder out), and the whole temporary folder is removed when the process exits.
        """
        with self._lock:
            if self._temp_root is None or not self._temp_root.is_dir():
                self._temp_root = Path(tempfile.mkdtemp(prefix="facehub-demo-"))
                atexit.register(_remove_tree, self._temp_root)
            folder = Path(tempfile.mkdtemp(prefix=prefix, dir=self._temp_root))
            self._temp_folders.append(folder)
            while len(self._temp_folders) > self.max_temp_folders:
                _remove_tree(self._temp_folders.pop(0))
            return folder

    def temp_folders(self) -> list[Path]:
        """The output folders kept now, oldest first."""
        with self._lock:
            return list(self._temp_folders)

    def close(self) -> None:
        """Drop the cached models and delete the temporary folder (also done at exit)."""
        self.clear()
        with self._lock:
            if self._temp_root is not None:
                _remove_tree(self._temp_root)
            self._temp_root, self._temp_folders = None, []
