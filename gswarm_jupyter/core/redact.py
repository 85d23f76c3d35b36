"""Credentials in URLs stay out of what is kept or shown.

Invariant: what these functions answer holds no URL userinfo (`https://user:pass@host/` becomes
`https://***@host/`); records, messages, error details and log lines carry only their answers.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

REDACTED = "***"
# scheme://userinfo@ inside free text (a message, an exception's text)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s]*@")


def redact_url(url: str) -> str:
    """`url` with its userinfo (if any) replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not even a URL: redact whatever looks like userinfo
        return redact_text(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{REDACTED}@{host}"))


def redact_text(text: str) -> str:
    """`text` with the userinfo of every URL in it replaced by `***`."""
    return _USERINFO.sub(rf"\1{REDACTED}@", text)


def has_redacted_userinfo(url: str) -> bool:
    """`url` is one whose credentials were removed (they cannot be used again)."""
    return urlsplit(url).netloc.startswith(f"{REDACTED}@")
