"""Turn a model id into a local folder (``facehub.hub.resolve``).

Order of lookup, first hit wins:

1. an embedded default shipped inside the package (``hub/defaults/<org>/<name>``), so ``"facehub/depthnet"``
   works with no network at all;
2. an existing local directory;
3. the Hugging Face Hub through ``huggingface_hub.snapshot_download``, which honours ``HF_ENDPOINT``,
   ``HF_HUB_OFFLINE``, ``HF_TOKEN`` and the usual cache.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

EMBEDDED_DEFAULTS_DIR = Path(__file__).resolve().parent / "defaults"


class ModelNotFoundError(FileNotFoundError):
    """Raised when a model id is neither embedded, a local folder, nor reachable on the Hub."""


@dataclass(frozen=True)
class EmbeddedModel:
    model_id: str
    path: Path
    class_name: str | None
    description: str


def _describe(folder: Path) -> tuple[str | None, str]:
    for name in ("model_index.json", "config.json"):
        if (folder / name).is_file():
            class_name = json.loads((folder / name).read_text()).get("_class_name")
            break
    else:
        class_name = None
    description = ""
    card = folder / "README.md"
    if card.is_file():
        # First prose line after the YAML header and the title.
        body = card.read_text().split("---", 2)[-1]
        lines = [line.strip() for line in body.splitlines()]
        description = next((line for line in lines if line and not line.startswith("#")), "")
    return class_name, description


def list_embedded() -> list[EmbeddedModel]:
    """The embedded default checkpoints, as ``org/name`` ids, sorted."""
    models = []
    if EMBEDDED_DEFAULTS_DIR.is_dir():
        for org in sorted(p for p in EMBEDDED_DEFAULTS_DIR.iterdir() if p.is_dir()):
            for folder in sorted(p for p in org.iterdir() if p.is_dir()):
                class_name, description = _describe(folder)
                models.append(EmbeddedModel(f"{org.name}/{folder.name}", folder, class_name, description))
    return models


def resolve(model_id: str | os.PathLike, *, revision: str | None = None, token: str | bool | None = None) -> Path:
    """Return the local folder that holds ``model_id``.

    Args:
        model_id: ``"org/name"`` (embedded default or Hub repo) or a path to a local folder.
        revision: Hub branch, tag or commit (ignored for embedded and local models).
        token: Hub token; ``None`` uses ``HF_TOKEN`` / the stored login.

    Raises:
        ModelNotFoundError: with what was tried and what to do next.
    """
    text = os.fspath(model_id)
    embedded = EMBEDDED_DEFAULTS_DIR / text
    if "/" in text and text.count("/") == 1 and not text.startswith((".", "/")) and embedded.is_dir():
        return embedded
    local = Path(text).expanduser()
    if local.is_dir():
        return local.resolve()
    if local.exists():
        raise ModelNotFoundError(f"{text!r} is a file, not a model folder. Pass the folder that holds config.json.")
    if text.count("/") != 1 or text.startswith((".", "/", "~")):
        known = ", ".join(m.model_id for m in list_embedded()) or "none"
        raise ModelNotFoundError(
            f"{text!r} is not a local folder and not a Hub id of the form 'org/name'. Embedded defaults: {known}."
        )

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(snapshot_download(text, revision=revision, token=token))
    except (RepositoryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
        known = ", ".join(m.model_id for m in list_embedded()) or "none"
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        offline = " (HF_HUB_OFFLINE is set, so only the local cache was searched)" if _offline() else ""
        raise ModelNotFoundError(
            f"Could not find model {text!r}: not embedded (embedded defaults: {known}), not a local folder, and "
            f"not downloadable from {endpoint}{offline}: {err.__class__.__name__}: {err}"
        ) from err


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
