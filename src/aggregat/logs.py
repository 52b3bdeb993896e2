"""Logging: rich on a terminal, JSON lines on request; secrets masked in every record.

Masking happens where text leaves the process: every handler's formatter masks the whole
formatted record (message, arguments, traceback, JSON), and :func:`mask_streams` wraps stdout and
stderr so that whatever else is printed is masked too.
"""

from __future__ import annotations

import io
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from aggregat.config import mask


class _MaskingFormatter(logging.Formatter):
    """Any formatter's output, masked (the traceback text included)."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return mask(self.inner.format(record))


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        for key in ("step", "partition", "file", "duration_s", "rows"):
            if hasattr(record, key):
                payload[key] = getattr(record, key)
        # Masked by _MaskingFormatter around it (secrets' JSON-escaped forms are registered).
        return json.dumps(payload, default=str)


class _MaskedStream(io.TextIOBase):
    """A text stream that masks everything written to it before passing it on."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def write(self, text: str) -> int:
        if not isinstance(text, str):  # click probes for binary streams with b""
            raise TypeError("write() argument must be str")
        self.inner.write(mask(text))
        return len(text)

    def flush(self) -> None:
        self.inner.flush()

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()

    def writable(self) -> bool:
        return True

    def __getattr__(self, name: str) -> Any:  # encoding, errors, buffer, ...
        return getattr(self.inner, name)


def mask_streams() -> None:
    """Mask everything this process prints on stdout and stderr (idempotent)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, _MaskedStream):
            setattr(sys, name, _MaskedStream(stream))


def setup_logging(level: int = logging.INFO, json_format: bool = False) -> None:
    """Configure the ``aggregat`` logger once (idempotent)."""
    logger = logging.getLogger("aggregat")
    logger.setLevel(level)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    if json_format or not sys.stderr.isatty():
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_JsonFormatter() if json_format else
                             logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        from rich.logging import RichHandler

        handler = RichHandler(show_path=False, markup=False, rich_tracebacks=False)
    logger.addHandler(handler)
    logger.propagate = False
    for each in (*logger.handlers, *logging.getLogger().handlers):
        if not isinstance(each.formatter, _MaskingFormatter):
            each.setFormatter(_MaskingFormatter(each.formatter or logging.Formatter()))
