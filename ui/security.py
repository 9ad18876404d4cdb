"""Who may talk to the dashboard: Host names it answers to, and where writes may come from.

Why: the server holds traces and accepts uploads, and a web page the user visits can make the
browser send requests to ``127.0.0.1``.  Two attacks follow, and both are refused here:

* **DNS rebinding.**  A page at ``evil.example`` re-points its own name at 127.0.0.1 and then reads
  the dashboard as "same origin".  The browser still sends ``Host: evil.example``, so only Host
  values that are loopback names, the address the server is bound to, or names configured with
  ``--allow-host`` / ``ACCEL_PROFILER_ALLOWED_HOSTS`` are answered (403 otherwise).
* **Cross-origin writes.**  A page can POST (a Dash callback, an upload) without reading the
  answer.  Every request that is not GET/HEAD/OPTIONS must come from the dashboard's own origin:
  an ``Origin`` header naming another origin (or ``null``), or ``Sec-Fetch-Site: cross-site``,
  is refused.  Browsers always send ``Origin`` on cross-origin POSTs; tools such as curl send
  none and are let through, since they are not a web page acting for someone.

:class:`RequestGuard` is WSGI middleware wrapped around the Flask app in :mod:`ui.server`.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

#: Host names that always mean this machine.
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "ip6-localhost", "ip6-loopback"})
#: Extra Host names to answer to (comma-separated), besides ``--allow-host``.
HOSTS_ENV = "ACCEL_PROFILER_ALLOWED_HOSTS"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_WILDCARDS = frozenset({"", "0.0.0.0", "::", "*"})


def host_name(value: str) -> str:
    """The host part of a ``Host`` header or netloc, lower case, without port or IPv6 brackets."""
    v = value.strip().lower()
    if v.startswith("["):
        return v[1 : v.find("]")] if "]" in v else v[1:]
    if v.count(":") == 1:
        v = v.split(":", 1)[0]
    return v.rstrip(".")


def is_loopback(host: str) -> bool:
    """True for loopback names and addresses (127.0.0.0/8, ::1)."""
    h = host_name(host)
    if h in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def allowed_hosts(bind_host: str = "127.0.0.1", extra: Iterable[str] = ()) -> frozenset[str]:
    """Host names the server answers to: loopback, the bound address (unless a wildcard), the
    ``extra`` ones and those in ``ACCEL_PROFILER_ALLOWED_HOSTS``."""
    names = set(LOOPBACK_NAMES)
    if host_name(bind_host) not in _WILDCARDS:
        names.add(host_name(bind_host))
    env = os.environ.get(HOSTS_ENV, "")
    names.update(host_name(h) for h in [*extra, *env.split(",")] if h.strip())
    return frozenset(names)


def exposure_warning(bind_host: str) -> str | None:
    """The warning to print when ``bind_host`` reaches beyond this machine, else None."""
    if is_loopback(bind_host):
        return None
    return (f"WARNING: the dashboard is bound to {bind_host}, beyond this machine: anyone who can reach "
            f"this address can open the traces it lists and upload files.  Requests must name an allowed "
            f"host (--allow-host NAME or {HOSTS_ENV}); bind to 127.0.0.1 unless you mean to share it.")


def refusal(environ: dict[str, Any], allowed: frozenset[str]) -> str | None:
    """Why the request must be refused, or None when it may proceed."""
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    name = host_name(str(host))
    if name not in allowed and not (name.startswith("127.") and is_loopback(name)):
        return (f"Host {name!r} is not one this dashboard answers to; open it as http://127.0.0.1:PORT/ "
                f"or start it with --allow-host {name}")
    if str(environ.get("REQUEST_METHOD", "GET")).upper() in _SAFE_METHODS:
        return None
    if str(environ.get("HTTP_SEC_FETCH_SITE", "")).lower() == "cross-site":
        return "cross-site requests may not change anything here"
    origin = environ.get("HTTP_ORIGIN")
    if origin is None:
        return None
    o = urlsplit(str(origin))
    if str(origin).strip().lower() == "null" or not o.netloc:
        return "requests from an opaque origin may not change anything here"
    if o.netloc.lower() != str(host).strip().lower():
        return f"requests from {origin} may not change anything here (only from this dashboard's own page)"
    return None


class RequestGuard:
    """WSGI middleware: answer 403 with a one-line reason to requests :func:`refusal` refuses."""

    def __init__(self, app: Callable[..., Any], allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        why = refusal(environ, self.allowed)
        if why is None:
            return self.app(environ, start_response)
        body = (why + "\n").encode()
        start_response("403 Forbidden", [("Content-Type", "text/plain; charset=utf-8"),
                                         ("Content-Length", str(len(body)))])
        return [body]


def warn_if_exposed(bind_host: str, out: Any = None) -> None:
    """Print :func:`exposure_warning` to stderr (every start, not only in the help text)."""
    msg = exposure_warning(bind_host)
    if msg:
        print(msg, file=out or sys.stderr, flush=True)


__all__ = ["HOSTS_ENV", "LOOPBACK_NAMES", "RequestGuard", "allowed_hosts", "exposure_warning", "host_name",
           "is_loopback", "refusal", "warn_if_exposed"]
