"""One exception hierarchy for everything a user can fix.

Every message names the file / partition / setting at fault and what to do; the CLI prints it on
one line and exits with ``exit_code``, never with a traceback.
"""

from __future__ import annotations


class AggregatError(Exception):
    """Base of all errors a user can act on.

    ``param``: the function parameter(s) the message names (``if_older``, ``sites``); the CLI
    shows them as its flags (``--if-older``), the library never names a flag.
    """

    exit_code = 2

    def __init__(self, *args: object, param: str | tuple[str, ...] = ()) -> None:
        super().__init__(*args)
        self.params = (param,) if isinstance(param, str) else tuple(param)


class ConfigError(AggregatError):
    """A setting is missing, malformed or contradicts another one."""


class InputError(AggregatError):
    """An input file (sites, CSV, GRIB) is malformed."""


class FetchError(AggregatError):
    """A download failed after all retries."""


class GribError(InputError):
    """A GRIB file is truncated, corrupt or not what the catalogue expects."""


class CorruptFileError(GribError):
    """A file's content is proven wrong (framing, size or hash against its manifest, decoding,
    grid header, physical bounds): only these files are quarantined, never for our own bugs or
    a store/network failure."""


class BankError(AggregatError):
    """A data bank dataset or partition is missing or unreadable."""


class EnergyDBError(AggregatError):
    """The energy database is unreachable or its schema does not match the configuration."""


class ModelError(AggregatError):
    """Training or prediction cannot proceed (no data, no model in the registry, ...)."""


class LockedError(AggregatError):
    """Another run of the same environment holds the lock."""

    exit_code = 75  # EX_TEMPFAIL: try again later


class PartialRunError(AggregatError):
    """The run completed, but some items failed (they are named in the message)."""

    exit_code = 3


class ClusterError(AggregatError):
    """The Dask cluster lost work: a task whose workers kept dying (KilledWorker), a scheduler
    that went away, or no task ending within ``scheduler_stall_s``. Not the input's fault: the
    rest of the run completed, a rerun does the rest."""

    exit_code = 3
