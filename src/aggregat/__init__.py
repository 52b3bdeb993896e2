"""aggregat: forecast an energy aggregator's consumption from Météo-France weather forecasts."""

from aggregat.version import __version__

__all__ = ["__version__"]
