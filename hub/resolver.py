"""Turn a model id into a local folder (``facehub.hub.resolve``).

Which copy wins when a name could mean several (each choice is logged on the ``facehub.hub.resolver`` logger):

1. **An existing local folder always wins.** ``"facehub/depthnet"`` that exists as a folder relative to the working
   directory is that folder, even though an embedded default has the same id; a warning says so, since the user may
   have meant the embedded copy (pass an absolute path, or change directory, to choose).
2. **An embedded default** (``hub/defaults/<org>/<name>``, shipped inside the package) answers an id that is exactly
   an embedded one, with no network at all; an info line says the embedded copy is used. It does not answer when the
   caller asks for the Hub: ``prefer_hub=True``, a ``revision`` or ``force_download=True``.
3. **The Hugging Face Hub** through ``huggingface_hub.snapshot_download``, which honours ``HF_ENDPOINT``,
   ``HF_HUB_OFFLINE``, ``HF_TOKEN`` and the usual cache; ``cache_dir``, ``local_files_only``, ``force_download``,
   ``revision`` and ``token`` are passed on to it.

Ids that cannot name anything (empty, far too long for a path or a Hub id) are refused with
:class:`ModelNotFoundError` before any file system or network call.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

EMBEDDED_DEFAULTS_DIR = Path(__file__).resolve().parent / "defaults"

#: Longest model id accepted: longer than any path a file system takes (Linux: 4096 bytes) is no model.
MAX_MODEL_ID_LENGTH = 4096
#: Longest single path component (Linux and macOS: 255 bytes); the Hub's names are at most 96 characters.
MAX_NAME_LENGTH = 255


class ModelNotFoundError(FileNotFoundError):
    """Raised when a model id is neither embedded, a local folder, nor reachable on the Hub."""


@dataclass(frozen=True)
class EmbeddedModel:
    model_id: str
    path: Path
    class_name: str | None
    description: str


def saved_class_name(folder: Path) -> str | None:
    """``_class_name`` of ``model_index.json`` (a pipeline) or ``config.json`` (a network) in ``folder``; ``None``
    when there is neither, or it cannot be read (any folder may be offered here, so a bad file is not an error)."""
    for name in ("model_index.json", "config.json"):
        config = folder / name
        if config.is_file():
            try:
                value = json.loads(config.read_text()).get("_class_name")
            except (OSError, UnicodeDecodeError, ValueError, AttributeError):
                return None
            return value if isinstance(value, str) else None
    return None


def _describe(folder: Path) -> tuple[str | None, str]:
    class_name = saved_class_name(folder)
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


def _check_id(text: str) -> None:
    """Refuse ids no folder or Hub repo can have, before the file system answers with ``OSError [Errno 36]``."""
    if not text.strip():
        raise ModelNotFoundError(
            "The model id is empty. Pass an embedded id such as 'facehub/depthnet', a folder or a Hub id."
        )
    if "\x00" in text:
        raise ModelNotFoundError("The model id contains a NUL character; it is neither a folder path nor a Hub id.")
    longest = max((len(part.encode("utf-8", "surrogateescape")) for part in text.split("/")), default=0)
    if len(text) > MAX_MODEL_ID_LENGTH or longest > MAX_NAME_LENGTH:
        raise ModelNotFoundError(
            f"The model id is {len(text):,} characters long (starting {text[:40]!r}): too long for a folder path "
            f"(at most {MAX_NAME_LENGTH} bytes a name) or a Hub id ('org/name'). Check what was passed as the model."
        )


def _embedded_folder(text: str) -> Path | None:
    """The embedded default whose id is exactly ``text`` ('org/name'), or None."""
    if text.count("/") != 1 or text.startswith((".", "/", "~")) or text.endswith("/") or "\\" in text:
        return None
    if any(part in ("", ".", "..") for part in text.split("/")):
        return None
    folder = EMBEDDED_DEFAULTS_DIR / text
    return folder if folder.is_dir() else None


def resolve(
    model_id: str | os.PathLike,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    force_download: bool = False,
    prefer_hub: bool = False,
) -> Path:
    """Return the local folder that holds ``model_id`` (precedence in the module docstring).

    Args:
        model_id: ``"org/name"`` (embedded default or Hub repo) or a path to a local folder.
        revision: Hub branch, tag or commit; asking for one skips the embedded copy (ignored for local folders).
        token: Hub token; ``None`` uses ``HF_TOKEN`` / the stored login.
        cache_dir: Hub cache folder (default: ``HF_HUB_CACHE``).
        local_files_only: look only in the Hub cache, never download.
        force_download: download again even if cached; skips the embedded copy.
        prefer_hub: go to the Hub even when ``model_id`` is an embedded id.

    Raises:
        ModelNotFoundError: with what was tried and what to do next.
    """
    text = os.fspath(model_id)
    _check_id(text)
    embedded = _embedded_folder(text)
    local = Path(text).expanduser()
    try:
        local_is_dir, local_exists = local.is_dir(), local.exists()
    except OSError as err:  # a name the file system refuses (too long, bad characters): not a folder
        raise ModelNotFoundError(f"{text[:80]!r} cannot be a model folder ({err.strerror}).") from err
    if local_is_dir:
        folder = local.resolve()
        if embedded is not None and folder != embedded.resolve():
            logger.warning(
                "Loading %r from the local folder %s; it shadows the embedded default of the same name. Pass another "
                "path to use the folder without this warning, or run from another directory to load the embedded "
                "copy.", text, folder,
            )
        return folder
    wants_hub = prefer_hub or revision is not None or force_download
    if embedded is not None and not wants_hub:
        logger.info(
            "Loading %r from the embedded copy at %s (no network); pass prefer_hub=True or a revision to download "
            "it from the Hub instead.", text, embedded,
        )
        return embedded
    if local_exists:
        raise ModelNotFoundError(f"{text!r} is a file, not a model folder. Pass the folder that holds config.json.")
    if text.count("/") != 1 or text.startswith((".", "/", "~")):
        known = ", ".join(m.model_id for m in list_embedded()) or "none"
        raise ModelNotFoundError(
            f"{text!r} is not a local folder and not a Hub id of the form 'org/name'. Embedded defaults: {known}."
        )

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    try:
        folder = snapshot_download(
            text,
            revision=revision,
            token=token,
            cache_dir=None if cache_dir is None else os.fspath(cache_dir),
            local_files_only=local_files_only,
            force_download=force_download,
        )
    except (RepositoryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, HFValidationError, OSError) as err:
        known = ", ".join(m.model_id for m in list_embedded()) or "none"
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        if local_files_only:
            where = " (local_files_only=True, so only the local cache was searched)"
        elif _offline():
            where = " (HF_HUB_OFFLINE is set, so only the local cache was searched)"
        else:
            where = ""
        raise ModelNotFoundError(
            f"Could not find model {text!r}: not embedded (embedded defaults: {known}), not a local folder, and "
            f"not downloadable from {endpoint}{where}: {err.__class__.__name__}: {err}"
        ) from err
    logger.info("Loading %r from the Hub snapshot at %s.", text, folder)
    return Path(folder)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
