"""URL credentials never reach what is kept or shown."""

from __future__ import annotations

import pytest

from gswarm_jupyter.core.db import Database
from gswarm_jupyter.core.errors import InvalidRequest
from gswarm_jupyter.core.modelregistry import ModelRegistry
from gswarm_jupyter.core.redact import has_redacted_userinfo, redact_text, redact_url
from gswarm_jupyter.core.sources import parse_source


@pytest.mark.parametrize("url, shown", [
    ("https://user:pass@host/x?a=b#f", "https://***@host/x?a=b#f"),
    ("http://token@host:8080/", "http://***@host:8080/"),
    ("http://a@b@host/p", "http://***@host/p"),
    ("http://u:p@[::1]:80/", "http://***@[::1]:80/"),
    ("http://host/path@x", "http://host/path@x"),  # an @ in the path is no userinfo
    ("https://host/", "https://host/"),
    ("builtin://mlp?in=8", "builtin://mlp?in=8"),
])
def test_redact_url(url, shown):
    assert redact_url(url) == shown
    assert has_redacted_userinfo(shown) == ("***@" in shown)


def test_redact_text_covers_every_url_in_a_message():
    text = "GET http://u:p@h/x failed; then https://a:b@c:1/ and ftp://q@w/ too, mail me@x.org"
    assert redact_text(text) == ("GET http://***@h/x failed; then https://***@c:1/ and "
                                 "ftp://***@w/ too, mail me@x.org")


def test_source_errors_do_not_echo_credentials():
    with pytest.raises(InvalidRequest) as caught:
        parse_source("http://user:hunter2@", [])
    assert "hunter2" not in str(caught.value.to_dict())


def test_a_stored_url_with_credentials_is_shown_redacted(tmp_path):
    """Rows written before redaction existed keep their URL, but no record shows it."""
    db = Database(tmp_path / "state.sqlite3")
    db.migrate()
    try:
        registry = ModelRegistry(db)
        registry.create("old", source_url="https://alice:hunter2@files.example/w.safetensors",
                        model_type=None, metadata={})
        assert registry.record("old")["source_url"] == "https://***@files.example/w.safetensors"
    finally:
        db.close()
