"""One JSON POST to a chat endpoint, guarded, for the LLM parser (the API key must go nowhere else):

- only ``https://`` URLs, or ``http://`` to this machine (127.0.0.0/8, ::1, localhost): no key in clear text on a
  network, no ``file://`` or other schemes;
- no redirect is followed: a redirect could carry the ``Authorization`` header to another origin;
- one deadline for the whole request (connecting, sending, every byte of the answer): a server that drips its
  answer is cut off when it passes;
- an answer longer than ``MAX_REPLY_BYTES`` is refused, read no further than that;
- an error quotes at most a short, sanitised excerpt of what the server sent.

Connections are direct (no proxy).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import threading
import time
from http.client import HTTPConnection, HTTPException, HTTPResponse, HTTPSConnection
from urllib.parse import SplitResult, urlsplit

MAX_REPLY_BYTES = 2_000_000
EXCERPT_CHARS = 120


def excerpt(text: object, limit: int = EXCERPT_CHARS) -> str:
    """A short, quoted, printable excerpt of untrusted text for an error message (control characters → ``?``)."""
    text = " ".join(str(text)[: limit * 4].split())
    clean = "".join(c if c.isprintable() else "?" for c in text[:limit])
    return repr(clean + ("…" if len(text) > limit else ""))


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint_url(url: object, argument: str = "llm.base_url") -> SplitResult:
    """The URL's parts; raises ``ValueError`` naming ``argument`` unless it is ``https://host...`` or
    ``http://`` to this machine, without a user name or password."""
    expected = "an https:// URL (or http:// to this machine: 127.0.0.1, ::1, localhost)"
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
        _ = parts and parts.port  # an invalid port raises here
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{argument}: expected {expected}, got {excerpt(url)}")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError(f"{argument}: expected {expected}; plain http:// to {parts.hostname!r} would send the API "
                         f"key in clear text, got {excerpt(url)}")  # fmt: skip
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{argument}: expected no user name or password in the URL, got {excerpt(parts.hostname)} "
                         "with one (the API key goes in MAGICNAMING_LLM_API_KEY)")  # fmt: skip
    return parts


class _Deadline:
    """Cuts a connection's socket once ``seconds`` have passed: any read or write blocked on it then ends."""

    def __init__(self, connection: HTTPConnection, seconds: float) -> None:
        self.connection, self.expired = connection, False
        self.end = time.monotonic() + seconds
        self.timer = threading.Timer(seconds, self._cut)
        self.timer.daemon = True

    def _cut(self) -> None:
        self.expired = True
        sock = self.connection.sock
        if sock is not None:  # the plain socket's shutdown, under TLS too: the blocked reader sees the end
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def check(self) -> None:
        """Raises ``TimeoutError`` past the deadline (a connect that ended after it had no socket to cut)."""
        if self.expired or time.monotonic() >= self.end:
            self.expired = True
            raise TimeoutError("deadline passed")

    def __enter__(self) -> _Deadline:
        self.timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.timer.cancel()
        self.connection.close()


def _declared_length(response: HTTPResponse) -> int:
    length = response.getheader("Content-Length", "").strip()
    return int(length) if length.isdigit() else 0


def _error_detail(data: bytes) -> str:
    """What an HTTP error answer says: its JSON ``error.message``, else an excerpt of its text."""
    try:
        body = json.loads(data)
        message = body["error"]["message"] if isinstance(body.get("error"), dict) else body["error"]
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        message = data.decode("utf-8", "replace")
    return excerpt(message)


def post_json(url: str, payload: dict, headers: dict[str, str], timeout: float, argument: str = "llm.base_url"):
    """POSTs ``payload`` as JSON to ``url`` and returns the JSON answer (rules: module doc).

    Raises:
        ValueError: a URL that is not allowed, an answer that is not JSON.
        OSError: unreachable, too slow (``TimeoutError``), an HTTP error or a redirect, an answer too long.
    """
    parts = check_endpoint_url(url, argument)
    kind = HTTPSConnection if parts.scheme == "https" else HTTPConnection
    connection = kind(parts.hostname, parts.port or (443 if kind is HTTPSConnection else 80), timeout=timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    body = json.dumps(payload).encode()
    with _Deadline(connection, timeout) as deadline:
        try:
            connection.connect()
            deadline.check()
            connection.request("POST", target, body, {**headers, "Content-Type": "application/json"})
            response = connection.getresponse()
            declared = _declared_length(response)  # longer than the cap: refused unread
            data = response.read(MAX_REPLY_BYTES + 1) if declared <= MAX_REPLY_BYTES else b""
            deadline.check()
        except (OSError, HTTPException) as error:
            if deadline.expired:
                raise TimeoutError(f"{argument}: {url} did not answer in full within llm.timeout = {timeout} s "
                                   "(the limit for the whole request)") from error  # fmt: skip
            raise OSError(f"{argument}: cannot reach {url} ({excerpt(error)})") from error
    if max(declared, len(data)) > MAX_REPLY_BYTES:
        raise OSError(f"{argument}: {url} answered more than {MAX_REPLY_BYTES} bytes (the limit of an answer); "
                      "refused after reading at most that much")  # fmt: skip
    if 300 <= response.status < 400:
        location = excerpt(response.getheader("Location", ""))
        raise OSError(f"{argument}: {url} answered HTTP {response.status}, a redirect to {location}; redirects are "
                      f"not followed (they could carry the API key elsewhere): set {argument} to the final "
                      "address")  # fmt: skip
    if not 200 <= response.status < 300:
        raise OSError(f"{argument}: {url} answered HTTP {response.status}: {_error_detail(data)}")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as error:
        raise ValueError(f"{argument}: {url} did not answer JSON ({len(data)} bytes, starting "
                         f"{excerpt(data[:EXCERPT_CHARS].decode('utf-8', 'replace'))})") from error  # fmt: skip


__all__ = ["MAX_REPLY_BYTES", "check_endpoint_url", "excerpt", "post_json"]
