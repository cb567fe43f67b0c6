"""Copy a model from the Hub (or the endpoint in ``HF_ENDPOINT``) into a plain local folder.

The copy is an ordinary folder (no symlinks into the cache), so it can be moved to an air-gapped machine and loaded
there with ``XPipeline.from_pretrained("/path/to/copy")``, or published into a local mirror with
:func:`facehub.hub.push.push_to_git`. ``snapshot_download`` keeps its bookkeeping in ``<local_dir>/.cache/huggingface``
(used to skip unchanged files on the next pull); pushes ignore it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from facehub.hub.errors import explain_hub_error, is_network_error
from facehub.hub.resolver import ModelNotFoundError


def pull(
    repo_id: str,
    local_dir: str | os.PathLike,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
) -> Path:
    """Download every file of ``repo_id`` at ``revision`` into ``local_dir`` and return ``local_dir``.

    Args:
        repo_id: ``"org/name"`` on the Hub or the endpoint in ``HF_ENDPOINT``.
        local_dir: destination folder, created when missing; files already there and unchanged are not downloaded
            again.
        revision: branch, tag or commit; ``None`` is ``main``.
        token: Hub token for private repos; ``None`` uses ``HF_TOKEN`` or the stored login.

    Raises:
        ModelNotFoundError: the repo or revision does not exist there, or the endpoint cannot be reached.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts):
        raise ModelNotFoundError(f"{repo_id!r} is not a Hub id of the form 'org/name'.")
    target = Path(local_dir).expanduser()
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"{target} is a file; pass a folder to download {repo_id!r} into.")
    created = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    try:
        snapshot_download(repo_id, revision=revision, token=token, local_dir=target)
    except Exception as err:  # an answer from the endpoint, or none at all (network): one line either way
        if not isinstance(err, (RepositoryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError)) and not (
            is_network_error(err)
        ):
            raise
        if created:
            shutil.rmtree(target, ignore_errors=True)  # leave no empty folder behind a failed pull
        at = f" at {revision!r}" if revision else ""
        raise ModelNotFoundError(explain_hub_error(
            err, action=f"pull {repo_id!r}{at}", air_gapped="copy the model folder over by other means")) from err
    return target.resolve()
