"""Logging: rich on a terminal, JSON lines on request; secrets masked in every record."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from aggregat.config import mask


class _MaskFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask(record.getMessage())
        record.args = None
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("step", "partition", "file", "duration_s", "rows"):
            if hasattr(record, key):
                payload[key] = getattr(record, key)
        return json.dumps(payload, default=str)


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
    handler.addFilter(_MaskFilter())
    logger.addHandler(handler)
    logger.propagate = False
