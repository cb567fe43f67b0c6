"""A local Hugging Face Hub endpoint for tests: olah serving bare git repositories, on 127.0.0.1 only.

olah (the ``olah`` dev dependency) is a Hub mirror. Besides its download cache it serves git repositories placed in
its ``mirrors-path`` folders, laid out as ``<mirrors>/models/<org>/<name>`` (``datasets/`` and ``spaces/`` likewise);
bare repositories work (olah reads them with GitPython: refs, trees and blobs; git-lfs pointers only from a
non-bare ``.git/lfs``). With ``[accessibility] offline = true`` it never contacts huggingface.co: repo metadata,
trees and files of mirrored repos are answered from git alone. It has no upload API (``/api/repos/create`` answers
405), so it stands in for the Hub only for downloads.

``start_local_hub(root)`` writes the config, starts ``olah-cli`` on a free port in its own process group, waits until
it answers and returns a :class:`LocalHub`; ``LocalHub.stop()`` ends the whole group.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ports import free_port

# Environment variables of huggingface_hub that a client of the local hub must not inherit from the caller.
HF_CLIENT_VARIABLES = (
    "HF_ENDPOINT",
    "HF_HOME",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_TOKEN_PATH",
)




def olah_executable() -> str:
    """The ``olah-cli`` of the running interpreter's environment."""
    candidate = Path(sys.executable).parent / "olah-cli"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("olah-cli")
    if found is None:
        raise RuntimeError(
            "olah-cli was not found next to the Python interpreter or on PATH; install the dev extra "
            "(`pip install -e .[dev]`, which pins olah) to run the local Hub tests."
        )
    return found


def olah_config(*, port: int, repos_path: Path, mirrors_path: Path) -> str:
    """An olah ``config.toml``: loopback only, offline (never reaches huggingface.co), serving ``mirrors_path``."""
    netloc = f"127.0.0.1:{port}"
    return "\n".join(
        [
            "[basic]",
            'host = "127.0.0.1"',
            f"port = {port}",
            f"repos-path = {json.dumps(str(repos_path))}",
            f"mirrors-path = [{json.dumps(str(mirrors_path))}]",
            'mirror-scheme = "http"',
            f'mirror-netloc = "{netloc}"',
            f'mirror-lfs-netloc = "{netloc}"',
            "",
            "[accessibility]",
            "offline = true",
            "",
        ]
    )


@dataclass
class LocalHub:
    """A running olah server.

    Attributes:
        root: folder holding its config, cache, logs and mirrors.
        mirrors: its ``mirrors-path``; a bare repository at ``mirrors/models/<org>/<name>`` is served as that id.
        port: the loopback port it listens on.
        process: the ``olah-cli`` process (leader of its own process group).
        log: its combined stdout / stderr.
    """

    root: Path
    mirrors: Path
    port: int
    process: subprocess.Popen
    log: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def repo_path(self, repo_id: str) -> Path:
        """Where the git repository of model ``repo_id`` lives for olah."""
        return self.mirrors / "models" / repo_id

    def client_env(self, hf_home: Path, **extra: str) -> dict[str, str]:
        """Environment for a subprocess whose ``huggingface_hub`` talks only to this server, with a fresh cache."""
        env = {key: value for key, value in os.environ.items() if key not in HF_CLIENT_VARIABLES}
        env.update(
            HF_ENDPOINT=self.endpoint,
            HF_HOME=str(hf_home),
            HF_HUB_CACHE=str(hf_home / "hub"),
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1",
            HF_HUB_ETAG_TIMEOUT="30",
            HF_HUB_DOWNLOAD_TIMEOUT="30",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
        )
        env.update(extra)
        return env

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        """Stop the server and everything it started (its process group); wait for it to exit."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait(timeout=10)


def _wait_until_answering(hub: LocalHub, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    while time.monotonic() < deadline:
        if hub.process.poll() is not None:
            raise RuntimeError(f"olah exited with code {hub.process.returncode} before answering:\n{hub.log_tail()}")
        try:
            # Any HTTP answer means the server is up (olah's own index page answers 500 with starlette >= 1.0); a
            # repo that is not mirrored answers 404.
            with opener.open(f"{hub.endpoint}/api/models/facehub-probe/none/revision/main", timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"olah did not answer on {hub.endpoint} within {timeout:.0f} s:\n{hub.log_tail()}")


def start_local_hub(root: Path, *, timeout: float = 60.0, attempts: int = 3) -> LocalHub:
    """Start olah over ``root / "mirrors"`` on a free loopback port and return it once it answers HTTP.

    A port taken between choosing and binding it makes olah exit; the start is then retried on another port.
    """
    mirrors = root / "mirrors"
    (mirrors / "models").mkdir(parents=True, exist_ok=True)
    env = {key: value for key, value in os.environ.items() if key not in HF_CLIENT_VARIABLES}
    last_error: Exception | None = None
    for attempt in range(attempts):
        port = free_port()
        config = root / "olah.toml"
        config.write_text(olah_config(port=port, repos_path=root / "cache", mirrors_path=mirrors))
        log = root / f"olah-{attempt}.log"
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                [olah_executable(), "-c", str(config), "--log-path", str(root / "logs")],
                cwd=root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        hub = LocalHub(root=root, mirrors=mirrors, port=port, process=process, log=log)
        try:
            _wait_until_answering(hub, timeout)
            return hub
        except RuntimeError as err:
            hub.stop()
            last_error = err
    raise RuntimeError(f"could not start olah in {attempts} attempts: {last_error}")
