"""Secrets out of everything the project records: manifests, saved configs, stage logs, printed commands.

One rule, applied by :func:`redacted` wherever options, URLs or text are written where others may read them:

- by structure: any string or structure under a secret-like key (``key``, ``secret``, ``token``, ``password``,
  ``passwd``, ``credential``, ``sig``/``signature``, ``authorization``, ``cookie``, ``sas``, ``connection_string``,
  ``account_key``, ...), at any depth, dicts inside lists too (a service account's dict goes whole); numbers,
  booleans and None are kept (a count such as ``single_token`` is no secret);
- by value: a URL loses its userinfo (``https://user:password@host``) and its query string when a parameter of it
  carries a credential (a presigned S3 ``X-Amz-Signature``, GCS ``X-Goog-Signature``, Azure SAS ``sig``); free text
  (a log line, a connection string) loses the values of ``NAME=VALUE`` / ``NAME: VALUE`` pairs with a secret-like
  ``NAME`` and any PEM private key.

Redaction cannot know every secret: keep credentials in the environment, where nothing records them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit, urlunsplit

REDACTED = "<redacted>"
# a key is secret-like when one of its words is one of these ("num_tokens" is not: "tokens" is a count) ...
SECRET_WORDS = frozenset({"key", "secret", "token", "password", "passwd", "pwd", "credential", "credentials", "sig",
                          "signature", "auth", "authorization", "cookie", "sas"})  # fmt: skip
# ... or when its letters hold one of these (AccountKey, apikey, x-api-key, SSECustomerKey, connection_string)
SECRET_PARTS = ("accesskey", "secretkey", "apikey", "accountkey", "customerkey", "privatekey", "sastoken",
                "sessiontoken", "securitytoken", "connectionstring", "clientsecret", "password", "passwd",
                "credential", "signature", "authorization")  # fmt: skip
# user-only userinfo is a secret on these (https://TOKEN@host); elsewhere it names a container (abfs://box@account)
WEB_SCHEMES = frozenset({"http", "https", "ftp", "ftps", "ws", "wss"})

_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>`]+")
_PAIR = re.compile(
    r"(?P<name>[A-Za-z_][\w.-]*)(?P<quote>[\"']?)(?P<separator>=|\s*:\s+)"
    r"(?:(?P<open>[\"'])(?P<quoted>.*?)(?P=open)|(?P<bare>(?:(?:Bearer|Basic|Token)\s+)?[^\s\"'&;,)}\]]+))"
)
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.DOTALL)


def secret_key(name: str) -> bool:
    """Whether an option, header, query parameter or field called ``name`` holds a secret."""
    words = [word.lower() for word in _WORDS.findall(name)]
    letters = "".join(words)
    return any(word in SECRET_WORDS for word in words) or any(part in letters for part in SECRET_PARTS)


def redacted_url(url: str) -> str:
    """``url`` without its userinfo's secret and without a query string that carries a credential."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    netloc = f"{REDACTED}@{host}" if at and (":" in userinfo or parts.scheme.lower() in WEB_SCHEMES) else parts.netloc
    names = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True)]
    query = REDACTED if any(secret_key(name) for name in names) else parts.query
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # unchanged, to the character (a glob such as s3://bucket/part-?.parquet)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


_PLAIN = re.compile(r"-?\d+(?:\.\d+)?|None|null|true|false|True|False|")  # what _hidden keeps, as text


def _pair(match: re.Match) -> str:
    value = match["quoted"] if match["open"] else match["bare"]
    if not secret_key(match["name"]) or _PLAIN.fullmatch(value):
        return match[0]
    value = f"{match['open']}{REDACTED}{match['open']}" if match["open"] else REDACTED
    return f"{match['name']}{match['quote']}{match['separator']}{value}"


def redacted_text(text: str) -> str:
    """Free text (a log line, an error message, a command line, a connection string) without the secrets it shows:
    URLs as :func:`redacted_url`, the values of secret-like ``NAME=VALUE`` / ``NAME: VALUE`` pairs, PEM private keys.
    """
    text = _PRIVATE_KEY.sub(REDACTED, text)
    text = _URL.sub(lambda match: redacted_url(match[0]), text)
    return _PAIR.sub(_pair, text)


def _hidden(value):
    """``value`` of a secret-like key as recorded: secrets are strings (or structures of them), so None, booleans,
    numbers (a count such as ``single_token``) and empty strings are kept; anything else is ``"<redacted>"``."""
    kept = value is None or isinstance(value, bool | int | float) or (isinstance(value, str) and not value)
    return value if kept else REDACTED


def redacted(value):
    """A copy of ``value`` (dicts, lists, tuples, dataclasses, strings and plain values, nested) safe to record:
    every value under a secret-like key replaced by ``"<redacted>"`` (but None, booleans, numbers and empty strings:
    :func:`_hidden`), every string as :func:`redacted_text`. Dataclasses come
    back as dicts (as :func:`dataclasses.asdict`, without copying what it redacts)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {key: _hidden(item) if secret_key(str(key)) else redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):  # a named tuple comes back as a plain one
        items = [redacted(item) for item in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, str):
        return redacted_text(value)
    return value


__all__ = ["REDACTED", "redacted", "redacted_text", "redacted_url", "secret_key"]
