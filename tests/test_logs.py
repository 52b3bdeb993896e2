"""Log records are masked whole: message, arguments, traceback, JSON (before its escapes)."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from aggregat.config import register_secret
from aggregat.logs import mask_streams, setup_logging

SECRET = "p@ss/w:o#r%d'\"é€"


@pytest.fixture(autouse=True)
def _restore_logging():
    """setup_logging changes process-wide loggers: put them back for the next tests."""
    logger, root = logging.getLogger("aggregat"), logging.getLogger()
    saved = (logger.handlers[:], logger.propagate, logger.level,
             [(h, h.formatter) for h in root.handlers])
    yield
    logger.handlers[:], logger.propagate, logger.level = saved[0], saved[1], saved[2]
    for handler, formatter in saved[3]:
        handler.setFormatter(formatter)


@pytest.mark.parametrize("json_format", [False, True])
def test_traceback_and_json_logs_are_masked(monkeypatch, json_format):
    register_secret(SECRET)
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    setup_logging(json_format=json_format)
    log = logging.getLogger("aggregat.test")
    try:
        raise RuntimeError(f"login {SECRET} refused")
    except RuntimeError:
        log.exception("step failed with %s", SECRET)
    out = err.getvalue()
    assert "RuntimeError: login *** refused" in (json.loads(out)["exc"] if json_format else out)
    for form in (SECRET, json.dumps(SECRET)[1:-1], "w:o#r"):
        assert form not in out


def test_masked_streams_hide_what_is_printed(monkeypatch):
    register_secret(SECRET)
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    mask_streams()
    print(f"url postgresql://u:{SECRET}@h/db")
    assert out.getvalue() == "url postgresql://u:***@h/db\n"
