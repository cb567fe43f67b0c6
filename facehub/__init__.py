"""facehub: face geometry as HF-style models, Accelerate trainers, Hub tooling and a Gradio hub.

The package is a namespace over four folders (``facehub.modeling``, ``facehub.trainers``, ``facehub.hub``,
``facehub.apps``) plus this module, which holds the version, the method registry (:mod:`facehub.methods`) and the
most used classes, imported on first use so that ``import facehub`` stays cheap::

    import facehub
    from facehub import FaceSwapPipeline, methods

    facehub.__version__
    swap = FaceSwapPipeline.from_pretrained("facehub/depthnet")
    rotate = methods.load("prn_dense", "rotation")
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("facehub")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"

#: Top-level name -> module that defines it.
_EXPORTS: dict[str, str] = {
    # faces and geometry
    "FaceAnalyzer": "facehub.modeling.faces",
    "Face": "facehub.modeling.faces",
    "same_person": "facehub.modeling.faces",
    "FaceHubImageError": "facehub.modeling.faces",
    # DepthNets
    "DepthNetModel": "facehub.modeling.depthnet",
    "KeypointRegistrationPipeline": "facehub.modeling.depthnet",
    "FaceRotationPipeline": "facehub.modeling.depthnet",
    "FaceFrontalizationPipeline": "facehub.modeling.depthnet",
    "FaceSwapPipeline": "facehub.modeling.depthnet",
    "UnreachablePoseError": "facehub.modeling.depthnet",
    # PRN-Dense
    "PRNDenseModel": "facehub.modeling.prn_dense",
    "FaceReconstructionPipeline": "facehub.modeling.prn_dense",
    # CycleGAN repair
    "FaceRepairPipeline": "facehub.modeling.cyclegan",
    # CPU speed
    "reuse_freed_memory": "facehub.modeling.cpu_allocator",
    # loading and errors
    "CheckpointError": "facehub.modeling.modeling_utils",
    "Pose": "facehub.modeling.pipeline_utils",
    "ModelNotFoundError": "facehub.hub.resolver",
    "resolve": "facehub.hub.resolver",
}

__all__ = ["__version__", "methods", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name == "methods":
        return importlib.import_module("facehub.methods")
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'facehub' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

