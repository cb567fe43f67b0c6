"""Publish an exported model folder: to the Hugging Face Hub, or to any git remote for air-gapped sites.

- :func:`push_to_hub` creates the Hub repo if needed and uploads the folder through ``huggingface_hub.HfApi``
  (honours ``HF_ENDPOINT`` and ``HF_TOKEN``).
- :func:`push_to_git` commits the folder to a branch of a plain git remote (a bare repository on a file share, a
  Gitea/GitLab server, or a bare repository inside an olah ``mirrors-path``: ``<mirrors>/models/<org>/<name>``, which
  olah then serves to ``from_pretrained`` as if it were the Hub; :func:`mirror_repo_path` gives that path).

Both write a model card (``README.md``, see :mod:`facehub.hub.cards`) into the folder first when it has none.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from facehub.hub.cards import CARD_NAME, check_model_folder, describe_model_folder, write_model_card
from facehub.hub.errors import explain_hub_error, http_status, is_network_error

logger = logging.getLogger(__name__)

DEFAULT_COMMIT_MESSAGE = "Upload model with facehub"
GIT_AUTHOR = ("facehub", "facehub@localhost")

# Never published: local download metadata (``snapshot_download(local_dir=...)``), git internals, Python caches.
IGNORE_PATTERNS = [".git", ".git/*", ".cache/huggingface", ".cache/huggingface/*", "__pycache__", "*/__pycache__/*"]
_GIT_EXCLUDES = [".cache/huggingface/", "__pycache__/", "*.pyc"]


class PushError(RuntimeError):
    """A model folder could not be published; the message says why and what to do."""


class GitNotFoundError(PushError):
    """The ``git`` executable is not installed or not on ``PATH``."""


class GitPushError(PushError):
    """A git command failed (remote unreachable, push rejected, ...); ``stderr`` holds git's own words."""

    def __init__(self, message: str, stderr: str = ""):
        super().__init__(message)
        self.stderr = stderr


def ensure_model_card(folder: str | os.PathLike, repo_id: str) -> Path | None:
    """Write a default model card into ``folder`` when it has no ``README.md``; return its path if one was written.

    The default card reads the class, components and method from the folder and the metrics from its
    ``eval_results.json``. Write a fuller card (description, training command) with
    :func:`facehub.hub.cards.write_model_card` before pushing to replace it.
    """
    path = check_model_folder(folder)
    if (path / CARD_NAME).is_file():
        return None
    info = describe_model_folder(path)
    card = write_model_card(path, repo_id=repo_id, method=info.method, class_name=info.class_name)
    logger.info("Wrote a model card to %s", card)
    return card


def _check_repo_id(repo_id: str) -> None:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts) or any(p in {".", ".."} for p in parts):
        raise PushError(f"{repo_id!r} is not a repo id of the form 'org/name'.")


def push_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    commit_message: str = DEFAULT_COMMIT_MESSAGE,
    revision: str | None = None,
    create_card: bool = True,
) -> str:
    """Upload an exported model folder to the Hub (or the endpoint in ``HF_ENDPOINT``) and return the commit URL.

    Args:
        folder: the folder written by ``save_pretrained``.
        repo_id: ``"org/name"``; the repo is created when it does not exist (``exist_ok``).
        token: Hub token with write access; ``None`` uses ``HF_TOKEN`` or the stored login.
        private: create the repo private (an existing repo keeps its visibility).
        commit_message: the Hub commit's title.
        revision: branch to commit to (created from the default branch when missing); ``None`` is ``main``.
        create_card: write a default ``README.md`` first when the folder has none.

    Raises:
        NotAModelFolderError: ``folder`` is missing or holds no saved model.
        PushError: the endpoint refused (bad token, no write access, a read-only mirror), with its answer.
    """
    path = check_model_folder(folder)
    _check_repo_id(repo_id)
    if create_card:
        ensure_model_card(path, repo_id)

    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=path,
            repo_type="model",
            revision=revision,
            commit_message=commit_message,
            ignore_patterns=IGNORE_PATTERNS,
        )
    except Exception as err:  # every failure of the endpoint becomes one line naming it, the cause and the fix
        if not (isinstance(err, (HfHubHTTPError, OSError, ValueError)) or is_network_error(err)):
            raise
        message = explain_hub_error(err, action=f"push {path} to {repo_id!r}", endpoint=api.endpoint)
        if http_status(err) is None and not is_network_error(err):
            message += (" Check the token (--token or HF_TOKEN needs write access) and that the endpoint accepts "
                        "uploads (a mirror such as olah is read-only: publish there with --git-remote).")
        raise PushError(message) from err
    return info.commit_url


def mirror_repo_path(mirrors_path: str | os.PathLike, repo_id: str, repo_type: str = "models") -> Path:
    """Where olah looks for ``repo_id`` in one of its ``mirrors-path`` folders: ``<mirrors>/<repo_type>/<org>/<name>``."""
    _check_repo_id(repo_id)
    if repo_type not in {"models", "datasets", "spaces"}:
        raise ValueError(f"Got {repo_type!r} for `repo_type`; expected 'models', 'datasets' or 'spaces'.")
    return Path(mirrors_path).expanduser() / repo_type / repo_id


def init_bare_repo(path: str | os.PathLike, *, branch: str = "main") -> Path:
    """Create an empty bare git repository at ``path`` (its ``HEAD`` on ``branch``) unless one is there already."""
    git = _git_executable()
    target = Path(path).expanduser()
    if (target / "HEAD").is_file() and (target / "objects").is_dir():
        return target
    if target.exists() and any(target.iterdir()):
        raise PushError(f"{target} exists and is not a bare git repository; choose another path or empty it.")
    target.mkdir(parents=True, exist_ok=True)
    _run([git, "init", "--quiet", "--bare", f"--initial-branch={branch}", str(target)], what=f"create {target}")
    return target


def _git_executable() -> str:
    git = shutil.which("git")
    if git is None:
        raise GitNotFoundError(
            "git is not installed or not on PATH; push_to_git needs it. Install git (e.g. `apt-get install git`) "
            "or push to the Hub instead."
        )
    return git


def _absolute_remote(remote: str) -> str:
    """Make a relative local path absolute (git runs inside the model folder); URLs and ``host:path`` stay as they are."""
    if "://" in remote:
        return remote
    colon, slash = remote.find(":"), remote.find("/")
    if colon > 0 and (slash < 0 or colon < slash) and not Path(remote).exists():
        return remote  # scp-like ssh syntax: user@host:org/name.git
    return str(Path(remote).expanduser().resolve())


def _has_symlinks(folder: Path) -> bool:
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d != ".git"]
        if any(os.path.islink(os.path.join(root, name)) for name in (*dirs, *files)):
            return True
    return False


def _run(command: list[str], *, what: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(command, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        stderr = result.stderr.strip() or result.stdout.strip()
        raise GitPushError(f"git could not {what} (exit {result.returncode}):\n{stderr}", stderr=stderr)
    return result.stdout


def push_to_git(
    folder: str | os.PathLike,
    remote_url: str | os.PathLike,
    *,
    branch: str = "main",
    message: str = DEFAULT_COMMIT_MESSAGE,
    repo_id: str | None = None,
    create_card: bool = True,
) -> str:
    """Commit the content of an exported model folder to ``branch`` of a git remote and push it; return the commit id.

    The commit's tree is exactly the folder's content (files removed from the folder are removed from the branch;
    symbolic links are replaced by the files they point to; ``.cache/huggingface/``, ``__pycache__/`` and what a
    ``.gitignore`` in the folder lists are left out).
    When the branch already exists on the remote its tip is fetched (shallow) and the new commit goes on top of it, so
    the remote's history is kept and the push is a fast-forward; otherwise the branch is created. When the content
    equals the branch tip nothing is pushed and the tip's id is returned. Commits are authored by
    ``facehub <facehub@localhost>``; the user's git configuration (credentials, proxies) is otherwise used as is.

    git-lfs is not assumed: every file, safetensors included, goes in as an ordinary git blob (``$GIT_DIR/info/
    attributes`` switches off any ``filter=lfs`` from a ``.gitattributes`` in the folder), which olah and plain git
    serve as they are. Hosting services that cap blob sizes (GitHub: 100 MB) need LFS for larger weights; use
    :func:`push_to_hub` or a plain bare repository for those.

    Args:
        folder: the folder written by ``save_pretrained``.
        remote_url: any URL or path ``git push`` accepts (``/srv/mirrors/models/org/name``, ``ssh://...``).
        branch: the branch to push to.
        message: the commit message.
        repo_id: the Hub-style id used in a generated model card; ``None`` takes the last two parts of the remote.
        create_card: write a default ``README.md`` into the folder first when it has none.

    Raises:
        NotAModelFolderError: ``folder`` is missing or holds no saved model.
        GitNotFoundError: git is not installed.
        GitPushError: the remote is unreachable or refused the push; ``err.stderr`` is git's message.
    """
    path = check_model_folder(folder)
    git = _git_executable()
    remote = _absolute_remote(os.fspath(remote_url))
    if create_card:
        ensure_model_card(path, repo_id or "/".join(remote.rstrip("/").removesuffix(".git").split("/")[-2:]))

    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": GIT_AUTHOR[0],
        "GIT_AUTHOR_EMAIL": GIT_AUTHOR[1],
        "GIT_COMMITTER_NAME": GIT_AUTHOR[0],
        "GIT_COMMITTER_EMAIL": GIT_AUTHOR[1],
    }
    if not sys.stdin or not sys.stdin.isatty():
        env["GIT_TERMINAL_PROMPT"] = "0"  # fail with git's message instead of waiting for a password nobody types
    for key in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(key, None)

    with tempfile.TemporaryDirectory(prefix="facehub-push-") as tmp:
        git_dir = Path(tmp) / "repo.git"
        work_tree = path
        if _has_symlinks(path):
            # A folder of links (a snapshot in the huggingface_hub cache points into its blobs/) would go in as
            # links; commit the files they point to instead.
            work_tree = Path(tmp) / "files"
            shutil.copytree(path, work_tree, symlinks=False, ignore=shutil.ignore_patterns(".git", "__pycache__"))
        base = [
            git,
            "-C",
            str(work_tree),
            f"--git-dir={git_dir}",
            f"--work-tree={work_tree}",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "core.autocrlf=false",
            "-c",
            "core.safecrlf=false",
        ]
        _run([git, "init", "--quiet", "--bare", str(git_dir)], what="create a temporary repository", env=env)
        _run([*base, "config", "core.bare", "false"], what="configure the temporary repository", env=env)
        (git_dir / "info").mkdir(exist_ok=True)
        (git_dir / "info" / "exclude").write_text("\n".join(_GIT_EXCLUDES) + "\n")
        (git_dir / "info" / "attributes").write_text("* -text -filter -ident\n")

        heads = _run(
            [*base, "ls-remote", "--heads", remote, f"refs/heads/{branch}"],
            what=f"reach the remote {remote} (a local path must already be a bare repository: `git init --bare PATH` or "
            "`facehub hub push --mirrors-dir DIR` creates one)",
            env=env,
        )
        parent = None
        if heads.strip():
            _run(
                [*base, "fetch", "--quiet", "--depth=1", remote, f"refs/heads/{branch}"],
                what=f"fetch {branch} from {remote}",
                env=env,
            )
            parent = _run([*base, "rev-parse", "FETCH_HEAD^{commit}"], what="read the fetched commit", env=env).strip()
            _run([*base, "update-ref", f"refs/heads/{branch}", parent], what="set the branch", env=env)
        _run([*base, "symbolic-ref", "HEAD", f"refs/heads/{branch}"], what="set HEAD", env=env)
        _run([*base, "add", "--all"], what=f"add the files of {path}", env=env)
        if not _run([*base, "ls-files"], what="list the staged files", env=env).strip():
            raise PushError(f"{path} has no files to commit.")
        if parent is not None:
            unchanged = (
                subprocess.run(
                    [*base, "diff", "--cached", "--quiet", parent],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                ).returncode
                == 0
            )
            if unchanged:
                logger.info("%s already holds this content on %s (%s); nothing pushed.", remote, branch, parent)
                return parent
        _run([*base, "commit", "--quiet", "--no-verify", "-m", message], what="commit", env=env)
        commit = _run([*base, "rev-parse", "HEAD"], what="read the new commit", env=env).strip()
        try:
            _run(
                [*base, "push", "--quiet", "--no-verify", remote, f"HEAD:refs/heads/{branch}"],
                what=f"push to {remote}",
                env=env,
            )
        except GitPushError as err:
            raise GitPushError(
                f"{remote} refused the push to {branch}:\n{err.stderr}\nIf someone pushed in the meantime, run the "
                "push again; if the remote is protected, push with an account that may write to it.",
                stderr=err.stderr,
            ) from err
    return commit
