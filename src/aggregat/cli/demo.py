"""``aggregat demo``: the whole chain on the embedded default, offline."""

from __future__ import annotations


def demo() -> None:
    """Run the demo."""
