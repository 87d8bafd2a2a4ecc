"""The one helper that keeps credentials in URLs out of every output: ``check config``,
log lines, error messages. ``postgresql://wd:hunter2@db/wd`` -> ``postgresql://wd:***@db/wd``;
a bare userinfo on http(s) (a token, ``https://TOKEN@host``) -> ``***@``; ``password=``-like
query values -> ``***``."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# scheme://userinfo@ : the userinfo ends at the last "@" before the path.
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")
_SECRET_QUERY = re.compile(
    r"(?i)\b(password|passwd|pass|token|secret|api_key|apikey|key|sslpassword)=([^&#\s]+)"
)


def redact_url(url: str) -> str:
    """``url`` without the password (or the whole userinfo when there is no user name
    and password pair) and without password-like query values."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparsable URL)"
    if not parts.scheme or not parts.netloc:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, colon, _ = userinfo.partition(":")
        if colon:
            netloc = f"{user}:***@{host}"
        elif parts.scheme.lower() in ("http", "https"):
            netloc = f"***@{host}"  # https://TOKEN@host: the user part is the secret
        # else a database user name alone (postgresql://wd@db/wd) is no secret
    query = _SECRET_QUERY.sub(lambda m: f"{m.group(1)}=***", parts.query)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def redact_urls(text: str) -> str:
    """Every URL in free text redacted (error messages, log lines)."""
    if "://" not in text:
        return text
    return _URL.sub(lambda m: redact_url(m.group(0)), text)
