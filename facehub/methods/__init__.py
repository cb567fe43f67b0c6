"""The method registry: every facehub method is declared once, here, and everything else finds it here.

A method is a :class:`MethodSpec`: its name, what it can do (capabilities, each served by a pipeline class), its
embedded default checkpoint, its networks, its training recipe, its evaluation and benchmark entry points, the demo
tabs of its own, and the facts its model cards state. ``facehub train|eval|bench METHOD``, ``facehub hub list``,
the model cards and the demo's tabs all read the registry; none keeps a list of its own.

Where declarations come from:

- built-in methods: one module per method in this package (``facehub/methods/<name>.py``) holding
  ``METHOD = MethodSpec(...)``. Every module of the package is discovered, so adding a method means adding that one
  file (docs/adding-a-method.md walks through it);
- other packages: an entry point in the ``facehub.methods`` group whose object is a :class:`MethodSpec`
  (``[project.entry-points."facehub.methods"] mymethod = "mypkg.facehub_method:METHOD"``);
- at run time: :func:`register`.

Every reference in a spec is a ``"module:attribute"`` string, imported only when it is used, so listing the
methods (``facehub --help``, the demo's pickers) costs no torch or diffusers import.

Use from Python::

    from facehub import methods

    methods.available("rotation")                 # ["depthnet", "prn_dense"]
    pipe = methods.load("depthnet", "rotation")   # the pipeline on the method's embedded default
    pipe = methods.load("depthnet", "rotation", model="org/name")   # or another checkpoint of that method
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any

logger = logging.getLogger(__name__)

#: The capabilities the demo and the held-out checks iterate over. A method may declare others as well
#: (``frontalization``, ``registration``, ``repair``); they are listed by :func:`available` like these.
CAPABILITIES: tuple[str, ...] = ("rotation", "reconstruction", "swap", "generation")

ENTRY_POINT_GROUP = "facehub.methods"


class UnknownMethodError(ValueError):
    """A method name, or a capability of a method, that the registry does not know."""


def import_object(target: str) -> Any:
    """Import ``"package.module:attribute"`` (dotted attributes allowed) and return the attribute."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"{target!r} is not of the form 'package.module:attribute'.")
    obj: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class MethodSpec:
    """One method, declared once.

    Attributes:
        name: the method's name, also its folder under ``modeling/`` and ``trainers/<name>.py``
            (``"depthnet"``); used by ``facehub train|eval|bench NAME`` and as a model-card tag.
        title: a short human name (``"DepthNets"``), shown in the demo's pickers and in cards.
        paper: the paper the method implements, as a citation line.
        summary: one sentence on what the method's models do (cards and the demo).
        capabilities: capability -> ``"module:PipelineClass"`` that serves it (``{"rotation":
            "facehub.modeling.depthnet:FaceRotationPipeline"}``); see :data:`CAPABILITIES`.
        default_model: the embedded default checkpoint id (``"facehub/depthnet"``), loaded when no model is given;
            ``None`` when the method ships none.
        models: component name -> ``"module:ModelClass"`` of the networks a checkpoint holds.
        training: ``"module:TrainingMethodSubclass"`` run by ``facehub train NAME`` in the shared loop, or ``None``.
        evaluation: ``"module:main"`` run by ``facehub eval NAME`` (``main(argv) -> int``), or ``None``.
        benchmark: ``"module:main"`` run by ``facehub bench NAME``, or ``None``.
        tabs: modules that register demo tabs of the method's own (the capability tabs list every method with
            that capability by themselves, so most methods need none).
        pipeline_tag: the Hub task of its checkpoints (``"image-to-image"``, ``"image-to-3d"``...).
        tags: extra Hub tags for its cards.
    """

    name: str
    title: str
    paper: str
    summary: str
    capabilities: Mapping[str, str] = field(default_factory=dict)
    default_model: str | None = None
    models: Mapping[str, str] = field(default_factory=dict)
    training: str | None = None
    evaluation: str | None = None
    benchmark: str | None = None
    tabs: tuple[str, ...] = ()
    pipeline_tag: str = "image-to-image"
    tags: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.name.isidentifier():
            raise ValueError(f"Got {self.name!r} for `name`; a method name must be a Python identifier.")
        for attribute in ("capabilities", "models"):
            mapping = getattr(self, attribute)
            for key, target in mapping.items():
                if ":" not in target:
                    raise ValueError(
                        f"Method {self.name!r}: {attribute}[{key!r}] = {target!r} is not 'package.module:Class'."
                    )
            object.__setattr__(self, attribute, MappingProxyType(dict(mapping)))
        for attribute in ("training", "evaluation", "benchmark"):
            target = getattr(self, attribute)
            if target is not None and ":" not in target:
                raise ValueError(f"Method {self.name!r}: `{attribute}` = {target!r} is not 'package.module:name'.")
        object.__setattr__(self, "tabs", tuple(self.tabs))
        object.__setattr__(self, "tags", tuple(self.tags))

    def supports(self, capability: str) -> bool:
        """Whether the method declares ``capability``."""
        return capability in self.capabilities

    def pipeline_class(self, capability: str) -> type:
        """The pipeline class serving ``capability`` (imported now)."""
        if capability not in self.capabilities:
            raise UnknownMethodError(
                f"Method {self.name!r} has no {capability!r} capability; it offers: "
                f"{', '.join(sorted(self.capabilities)) or 'none'}. Methods with {capability!r}: "
                f"{', '.join(available(capability)) or 'none'}."
            )
        return import_object(self.capabilities[capability])

    def model_class(self, component: str) -> type:
        """The network class of ``component`` (imported now)."""
        if component not in self.models:
            raise UnknownMethodError(
                f"Method {self.name!r} has no component {component!r}; its components: {', '.join(self.models)}."
            )
        return import_object(self.models[component])

    def training_class(self) -> type:
        """The :class:`~facehub.trainers.core.method.TrainingMethod` subclass of ``facehub train NAME``."""
        if self.training is None:
            raise UnknownMethodError(f"Method {self.name!r} cannot be trained with `facehub train`.")
        return import_object(self.training)

    def config_class(self) -> type:
        """The training config dataclass of the method (its training recipe's ``config_class``)."""
        return self.training_class().config_class

    def entry_point(self, verb: str):
        """``main(argv) -> int`` of ``facehub eval`` (``verb="eval"``) or ``facehub bench`` (``"bench"``)."""
        target = {"eval": self.evaluation, "bench": self.benchmark}[verb]
        if target is None:
            with_it = [n for n in names() if getattr(get(n), {"eval": "evaluation", "bench": "benchmark"}[verb])]
            raise UnknownMethodError(
                f"Method {self.name!r} has no `facehub {verb}` yet. Methods with one: {', '.join(with_it) or 'none'}."
            )
        return import_object(target)

    def load(self, capability: str, model: str | None = None, **kwargs: Any):
        """``pipeline_class(capability).from_pretrained(model or default_model, **kwargs)``."""
        model = model or self.default_model
        if model is None:
            raise UnknownMethodError(f"Method {self.name!r} ships no embedded default: pass `model=` (a checkpoint).")
        return self.pipeline_class(capability).from_pretrained(model, **kwargs)


_REGISTRY: dict[str, MethodSpec] = {}
_DISCOVERED = False
_LOCK = threading.RLock()


def register(spec: MethodSpec, *, replace: bool = False) -> MethodSpec:
    """Add ``spec`` to the registry (for methods defined at run time; packages use the entry-point group).

    Registering a second, different spec under a name in use is an error unless ``replace=True``.
    """
    if not isinstance(spec, MethodSpec):
        raise TypeError(f"register() takes a MethodSpec, got {type(spec).__name__}.")
    with _LOCK:
        _discover()
        existing = _REGISTRY.get(spec.name)
        if existing is not None and existing != spec and not replace:
            raise ValueError(f"A method named {spec.name!r} is already registered; pass replace=True to replace it.")
        _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a method (tests, or a plugin that replaces a built-in under another name)."""
    with _LOCK:
        _discover()
        _REGISTRY.pop(name, None)


def _discover() -> None:
    """Import the built-in declaration modules and the entry points, once."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    with _LOCK:
        if _DISCOVERED:
            return
        found: dict[str, MethodSpec] = {}
        for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
            if module.name.startswith("_"):
                continue
            spec = getattr(importlib.import_module(f"{__name__}.{module.name}"), "METHOD", None)
            if not isinstance(spec, MethodSpec):
                raise TypeError(f"{__name__}.{module.name} must define METHOD = MethodSpec(...).")
            found[spec.name] = spec
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            try:
                spec = entry.load()
            except Exception:  # a broken plugin must not take facehub down
                logger.exception("The facehub method plugin %r (%s) failed to load; it is left out.", entry.name,
                                 entry.value)
                continue
            if not isinstance(spec, MethodSpec):
                logger.error("The facehub method plugin %r is a %s, not a MethodSpec; it is left out.", entry.name,
                             type(spec).__name__)
                continue
            if spec.name in found:
                logger.warning("The facehub method plugin %r redefines the built-in method %r; the built-in stays.",
                               entry.value, spec.name)
                continue
            found[spec.name] = spec
        for name, spec in found.items():
            _REGISTRY.setdefault(name, spec)
        _DISCOVERED = True


def names() -> list[str]:
    """Every registered method's name, sorted."""
    _discover()
    return sorted(_REGISTRY)


def all_methods() -> list[MethodSpec]:
    """Every registered :class:`MethodSpec`, sorted by name."""
    _discover()
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def get(name: str) -> MethodSpec:
    """The spec of method ``name``; :class:`UnknownMethodError` lists the known ones."""
    _discover()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownMethodError(f"Unknown method {name!r}. Known methods: {', '.join(names()) or 'none'}.") from None


def available(capability: str | None = None) -> list[str]:
    """Names of the methods with ``capability`` (all methods when ``None``), sorted."""
    _discover()
    return [name for name in sorted(_REGISTRY) if capability is None or _REGISTRY[name].supports(capability)]


def trainable() -> list[str]:
    """Names of the methods ``facehub train`` can train."""
    return [spec.name for spec in all_methods() if spec.training]


def load(name: str, capability: str, model: str | None = None, **kwargs: Any):
    """The ready pipeline of method ``name`` for ``capability``, on ``model`` (default: the embedded default).

    ``kwargs`` go to the pipeline's ``from_pretrained`` (``revision``, ``cache_dir``, ``local_files_only``...).
    """
    return get(name).load(capability, model=model, **kwargs)


def method_of_class(class_name: str) -> MethodSpec | None:
    """The method whose pipelines or networks include a class named ``class_name`` (read from the specs only)."""
    for spec in all_methods():
        targets = [*spec.capabilities.values(), *spec.models.values()]
        if any(target.rpartition(":")[2].rpartition(".")[2] == class_name for target in targets):
            return spec
    return None


__all__ = [
    "CAPABILITIES",
    "MethodSpec",
    "UnknownMethodError",
    "all_methods",
    "available",
    "get",
    "import_object",
    "load",
    "method_of_class",
    "names",
    "register",
    "trainable",
    "unregister",
]
