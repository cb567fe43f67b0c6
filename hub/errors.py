"""One-line explanations of what went wrong when talking to a Hub endpoint, with what to do about it.

``huggingface_hub`` raises its own HTTP errors for answers (401, 403, 404...) and lets the HTTP client's transport
errors through when there is no answer at all (no network, a wrong ``HF_ENDPOINT``, DNS failure, a timeout). Users
of ``facehub hub push`` and ``from_pretrained`` should see neither a traceback nor an ``httpx`` class name: they
should read which endpoint failed, why, and what to try next.
"""

from __future__ import annotations

import os

_TRANSPORT_CLASS_NAMES = frozenset(
    {"TransportError", "ConnectError", "ConnectTimeout", "ReadTimeout", "TimeoutException", "NetworkError",
     "ProxyError", "RemoteProtocolError"}
)


def hub_endpoint() -> str:
    """The endpoint ``huggingface_hub`` talks to (``HF_ENDPOINT`` or the public Hub)."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def is_offline_mode() -> bool:
    """Whether ``HF_HUB_OFFLINE`` asks ``huggingface_hub`` not to use the network."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _chain(err: BaseException):
    """``err`` and the exceptions it was raised from (``huggingface_hub`` wraps transport errors in its own)."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def is_network_error(err: BaseException) -> bool:
    """Whether ``err`` (or what it wraps) means the endpoint could not be reached at all, rather than an answer."""
    for link in _chain(err):
        names = {cls.__name__ for cls in type(link).__mro__}
        if names & _TRANSPORT_CLASS_NAMES or "OfflineModeIsEnabled" in names:
            return True
        if isinstance(link, (ConnectionError, TimeoutError)):
            return True
    return False


def http_status(err: BaseException) -> int | None:
    """The HTTP status of a ``huggingface_hub`` error (or one it wraps) that carries a response, else ``None``."""
    for link in _chain(err):
        status = getattr(getattr(link, "response", None), "status_code", None)
        if isinstance(status, int):
            return int(status)
    return None


def explain_hub_error(err: BaseException, *, action: str, endpoint: str | None = None,
                      air_gapped: str = "for an air-gapped site publish with --git-remote") -> str:
    """One line: ``action`` failed at ``endpoint``, why (network, authentication, permission, not found), and the fix.

    ``action`` says what was attempted, e.g. ``"push runs/x/export to org/name"``; ``air_gapped`` is the way round
    the network that fits the action (pushing: a git remote; loading: a local folder).
    """
    endpoint = endpoint or hub_endpoint()
    offline_error = any("OfflineModeIsEnabled" in {c.__name__ for c in type(link).__mro__} for link in _chain(err))
    if offline_error or (is_offline_mode() and (is_network_error(err) or type(err).__name__ == "LocalEntryNotFoundError")):
        return (f"Could not {action}: HF_HUB_OFFLINE is set, so {endpoint} was not contacted and the local cache "
                f"has no copy. Unset HF_HUB_OFFLINE, or {air_gapped}.")
    if is_network_error(err):
        cause = next(link for link in _chain(err) if is_network_error(link) and not link.__cause__)
        return (f"Could not {action}: {endpoint} cannot be reached ({_short(cause)}). Check the network connection "
                f"and HF_ENDPOINT, or {air_gapped}.")
    status = http_status(err)
    if status == 401:
        return (f"Could not {action}: {endpoint} refused the credentials (401). Pass a valid token with --token or "
                "HF_TOKEN, or log in with `hf auth login`.")
    if status == 403:
        return (f"Could not {action}: the token has no write access to this repo at {endpoint} (403). Use a token "
                "with write permission for the organisation, or push to a repo you own.")
    if status == 404 or type(err).__name__ in {"RepositoryNotFoundError", "RevisionNotFoundError"}:
        return (f"Could not {action}: {endpoint} does not know this repo or revision (404). Check the repo id and "
                "the branch.")
    if status == 405:
        return (f"Could not {action}: {endpoint} does not accept this request (405): it is read-only, as a mirror "
                f"such as olah is. Use an endpoint that accepts uploads, or {air_gapped}.")
    if status is not None and status >= 500:
        return f"Could not {action}: {endpoint} answered {status} (a server error). Try again later."
    return f"Could not {action} at {endpoint}: {_short(err)}."


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split()) or err.__class__.__name__
    return text if len(text) <= 200 else text[:197] + "..."
