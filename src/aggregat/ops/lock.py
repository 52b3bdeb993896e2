"""One run per environment at a time: a lock in the environment's storage.

- Local root: ``{root}/.aggregat-run.lock`` held with ``flock``. The OS releases it when the
  process dies (even on SIGKILL), so a crashed run never blocks the next one. The file also holds
  the owner (pid, host, command, since) for the message a second run prints.
- Remote root (``s3://``, ``gs://``, ``memory://``...): an object ``{root}/.aggregat-run.lock.json``
  with owner, pid, host, a heartbeat refreshed by a background thread and an expiry. A lock whose
  heartbeat is older than ``ttl_s`` belongs to a dead run and is taken over. Object stores offer
  no portable compare-and-swap, so the owner re-reads the object after writing it and gives up if
  someone else's token is there (good enough for schedulers that never start two runs at once).

A second run gets :class:`~aggregat.errors.LockedError` (exit code 75)::

    with RunLock.for_environment(env, command="run daily") as lock:
        ledger = Ledger(bank, job="daily", run_id=lock.run_id)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import threading
import time
import uuid
import weakref
from datetime import UTC, datetime
from typing import IO, Any

from aggregat.errors import ConfigError, LockedError
from aggregat.storage import Store

LOCK_NAME = ".aggregat-run.lock"
REMOTE_LOCK_NAME = ".aggregat-run.lock.json"
DEFAULT_TTL_S = 300.0


# Locks held by this process. A forked child (the executor's process pool forks) inherits the
# flock'ed file description; if it kept it, a SIGKILLed parent's lock would live on in its
# orphaned workers. The child closes its copy (never LOCK_UN: that would unlock the parent too).
_HELD: weakref.WeakSet[RunLock] = weakref.WeakSet()


def _forget_in_child() -> None:
    for lock in list(_HELD):
        if lock._fh is not None:
            with contextlib.suppress(OSError):
                lock._fh.close()  # closes the child's descriptor only; the parent keeps the lock
            lock._fh = None
        if lock._stop is not None:
            lock._stop.set()
        lock.held = False
    _HELD.clear()


os.register_at_fork(after_in_child=_forget_in_child)


def _now() -> datetime:
    return datetime.now(UTC)


def _command_line() -> str:
    return " ".join(["aggregat", *sys.argv[1:]])[:200]


class RunLock:
    """The run lock of one environment root (local folder or fsspec URL)."""

    def __init__(self, root: str, env_name: str = "", *, command: str | None = None,
                 ttl_s: float = DEFAULT_TTL_S, heartbeat_s: float | None = None) -> None:
        self.store = Store(root)
        self.env_name = env_name or root
        self.command = command or _command_line()
        self.ttl_s = ttl_s
        self.heartbeat_s = heartbeat_s or max(1.0, ttl_s / 5)
        self.run_id = uuid.uuid4().hex[:12]
        self._fh: IO[str] | None = None
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None
        self.held = False

    @classmethod
    def for_environment(cls, env, **kwargs: Any) -> RunLock:
        """The lock of an :class:`~aggregat.config.Environment` (in its ``root``)."""
        return cls(env.root, env.name, **kwargs)

    def __repr__(self) -> str:
        return f"RunLock({self.store.url!r}, held={self.held})"

    def _info(self) -> dict[str, Any]:
        now = _now()
        return {"env": self.env_name, "run_id": self.run_id, "pid": os.getpid(),
                "host": socket.gethostname(), "command": self.command,
                "since": getattr(self, "_since", now).isoformat(), "heartbeat": now.isoformat(),
                "expires": datetime.fromtimestamp(now.timestamp() + self.ttl_s, UTC).isoformat()}

    def _refused(self, holder: dict[str, Any] | None) -> LockedError:
        holder = holder or {}
        since = holder.get("since", "an unknown time")
        where = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"
        what = f" ({holder['command']})" if holder.get("command") else ""
        return LockedError(
            f"another run of env {self.env_name} is in progress since {since}, {where}{what}; "
            "wait for it to finish (the lock is released when that process exits)")

    # -- acquire / release -----------------------------------------------------------------
    def acquire(self) -> RunLock:
        """Take the lock or raise LockedError; returns self."""
        if self.held:
            return self
        self._since = _now()
        try:
            if self.store.is_local:
                self._acquire_local()
            else:
                self._acquire_remote()
        except OSError as exc:
            raise ConfigError(f"cannot take the run lock of env {self.env_name} under "
                              f"{self.store.url} ({exc}); check that root exists and is "
                              "writable (`aggregat env check`)") from None
        self.held = True
        _HELD.add(self)
        return self

    def release(self) -> None:
        """Give the lock back (idempotent)."""
        if not self.held:
            return
        self.held = False
        _HELD.discard(self)
        if self.store.is_local:
            assert self._fh is not None
            with contextlib.suppress(OSError):
                self._fh.seek(0)
                self._fh.truncate()
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
            return
        if self._stop is not None:
            self._stop.set()
            if self._thread is not None:
                self._thread.join(timeout=5)
        holder = self._read_remote()
        if holder and holder.get("run_id") == self.run_id:
            self.store.remove(REMOTE_LOCK_NAME)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- local: flock ----------------------------------------------------------------------
    def _path(self) -> str:
        self.store.makedirs("")
        return str(self.store.local_path(LOCK_NAME))

    def _acquire_local(self) -> None:
        fh = open(self._path(), "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = _parse(fh.read())
            fh.close()
            raise self._refused(holder) from None
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(self._info()))
        fh.flush()
        self._fh = fh

    # -- remote: object with heartbeat -----------------------------------------------------
    def _read_remote(self) -> dict[str, Any] | None:
        return _read_object(self.store, REMOTE_LOCK_NAME)

    def _alive(self, holder: dict[str, Any]) -> bool:
        try:
            expires = datetime.fromisoformat(holder["expires"])
        except (KeyError, TypeError, ValueError):
            return False
        return expires > _now()

    def _acquire_remote(self) -> None:
        holder = self._read_remote()
        if holder and self._alive(holder):
            raise self._refused(holder)
        self.store.write_bytes(REMOTE_LOCK_NAME, json.dumps(self._info()).encode())
        time.sleep(0.05)  # let a racing writer's PUT land before checking who won
        holder = self._read_remote()
        if not holder or holder.get("run_id") != self.run_id:
            raise self._refused(holder)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._heartbeat, name="aggregat-lock-heartbeat",
                                        daemon=True)
        self._thread.start()

    def _heartbeat(self) -> None:
        assert self._stop is not None
        while not self._stop.wait(self.heartbeat_s):
            with contextlib.suppress(Exception):  # a missed beat only shortens the margin
                self.store.write_bytes(REMOTE_LOCK_NAME, json.dumps(self._info()).encode())

    # -- inspection ------------------------------------------------------------------------
    def holder(self) -> dict[str, Any] | None:
        """Owner info of a live lock held by any process (this one included), else None."""
        if self.held:
            return self._info()
        if not self.store.is_local:
            holder = self._read_remote()
            return holder if holder and self._alive(holder) else None
        path = self.store.local_path(LOCK_NAME)
        if not path.exists():
            return None
        with open(path, encoding="utf-8") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _parse(fh.read()) or {}
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            return None


def _read_object(store: Store, name: str) -> dict[str, Any] | None:
    """The JSON object of a remote lock, None when absent or unreadable."""
    try:
        return _parse(store.read_bytes(name).decode("utf-8", "replace"))
    except FileNotFoundError:
        return None


def _parse(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if text.strip() else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@contextlib.contextmanager
def exclusive(root: str, name: str, *, wait_s: float = 120.0, ttl_s: float = 300.0,
              what: str = "a section"):
    """Hold lock ``name`` under ``root`` for a short critical section (a read-modify-write of a
    small state object), waiting up to ``wait_s`` for another holder, then LockedError.

    Local root: ``flock`` on the file ``name`` (released by the OS if the process dies). Remote
    root: an object ``name`` with a token and an expiry ``ttl_s`` ahead, written then re-read
    as the run lock's (object stores have no portable compare-and-swap); an expired one
    belongs to a dead process and is taken over.
    """
    store = Store(root)
    deadline = time.monotonic() + wait_s
    if store.is_local:
        path = store.local_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+", encoding="utf-8") as fh:
            while True:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise LockedError(f"{what} of {store.url} is held by another process "
                                          f"for more than {wait_s:.0f} s; try again") from None
                    time.sleep(0.02)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return
    token = uuid.uuid4().hex
    while True:
        held = _read_object(store, name)
        if held and held.get("token") != token and float(held.get("expires", 0)) > time.time():
            if time.monotonic() > deadline:
                raise LockedError(f"{what} of {store.url} is held by another process for more "
                                  f"than {wait_s:.0f} s; try again")
            time.sleep(0.2)
            continue
        store.write_bytes(name, json.dumps({"token": token, "pid": os.getpid(),
                                            "expires": time.time() + ttl_s}).encode())
        time.sleep(0.05)  # let a racing writer's PUT land before checking who won
        held = _read_object(store, name)
        if held and held.get("token") == token:
            break
    try:
        yield
    finally:
        held = _read_object(store, name)
        if held and held.get("token") == token:
            store.remove(name)
