"""aggregat: forecast an energy aggregator's consumption from Météo-France weather forecasts."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("aggregat")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
