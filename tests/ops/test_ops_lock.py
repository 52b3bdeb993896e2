"""Run lock: a second real process is refused; SIGKILL of the holder releases it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid

import pytest

from aggregat.errors import LockedError
from aggregat.ops.lock import RunLock

HOLDER = """
import sys, time
from aggregat.ops.lock import RunLock
lock = RunLock(sys.argv[1], "dev", command="run daily").acquire()
print("locked", flush=True)
time.sleep(60)
"""


def _start_holder(root) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(root)], stdout=subprocess.PIPE,
                            text=True)
    line = proc.stdout.readline()
    assert line.strip() == "locked", line
    return proc


def test_second_process_is_refused_and_sigkill_releases(tmp_path):
    proc = _start_holder(tmp_path)
    try:
        mine = RunLock(str(tmp_path), "dev")
        with pytest.raises(LockedError) as info:
            mine.acquire()
        message = str(info.value)
        assert "env dev" in message and f"pid {proc.pid}" in message and "run daily" in message
        assert info.value.exit_code == 75
        assert mine.holder()["pid"] == proc.pid
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert mine.holder() is None
        with mine:
            assert mine.held
            other = RunLock(str(tmp_path), "dev")
            with pytest.raises(LockedError):
                other.acquire()  # same process, different open: still exclusive
        assert not mine.held and RunLock(str(tmp_path)).holder() is None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_exit_code_75_when_locked(tmp_path):
    """A command that takes the lock (bank copy into the env) exits 75 with a clear message."""
    dst_root = tmp_path / "prod"
    config = tmp_path / "aggregat.toml"
    config.write_text(f'[env.dev]\nroot = "{tmp_path / "dev"}"\n[env.prod]\nroot = "{dst_root}"\n')
    proc = _start_holder(dst_root)
    try:
        out = subprocess.run(
            [sys.executable, "-m", "aggregat.cli.main", "bank", "copy", "--from", "dev",
             "--to", "prod", "--config", str(config)],
            capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
        assert out.returncode == 75, out.stderr
        assert "another run of env prod is in progress" in out.stderr
        assert "Traceback" not in out.stderr
    finally:
        proc.kill()
        proc.wait()


def test_remote_lock_heartbeat_and_expiry():
    root = f"memory://lock-{uuid.uuid4().hex}"
    first = RunLock(root, "prod", ttl_s=30).acquire()
    with pytest.raises(LockedError, match="env prod"):
        RunLock(root, "prod").acquire()
    assert RunLock(root).holder()["run_id"] == first.run_id
    first.release()
    assert RunLock(root).holder() is None
    # A lock object whose heartbeat expired (its run died) is taken over.
    dead = RunLock(root, "prod", ttl_s=0.01).acquire()
    dead._stop.set()  # simulate the process dying: no more heartbeats, no release
    dead.held = False
    import time

    time.sleep(0.05)
    taker = RunLock(root, "prod").acquire()
    assert RunLock(root).holder()["run_id"] == taker.run_id
    taker.release()


FORKING_HOLDER = """
import os, sys, time
from aggregat.ops.lock import RunLock
lock = RunLock(sys.argv[1], "dev", command="run daily").acquire()
ready_r, ready_w = os.pipe()
child = os.fork()
if child == 0:           # a pool worker forked by the run: outlives its killed parent
    os.write(ready_w, b"x")  # running: its at-fork handlers are done (a busy machine may wait)
    time.sleep(60)
    os._exit(0)
os.read(ready_r, 1)
print(child, flush=True)
time.sleep(60)
"""


def test_lock_is_not_kept_alive_by_forked_children(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", FORKING_HOLDER, str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    try:
        with pytest.raises(LockedError):
            RunLock(str(tmp_path), "dev").acquire()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        os.kill(child, 0)  # the forked child is still alive ...
        with RunLock(str(tmp_path), "dev"):  # ... and does not hold the lock
            pass
    finally:
        for pid in (proc.pid, child):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()


def test_unwritable_root_is_a_clear_error(tmp_path):
    from aggregat.errors import ConfigError

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot take the run lock"):
        RunLock(str(blocker / "root"), "dev").acquire()


@pytest.mark.parametrize("remote", [False, True])
def test_exclusive_sections_never_overlap_and_wait_then_give_up(tmp_path, remote):
    import threading
    import time

    from aggregat.ops.lock import exclusive

    root = f"memory://excl-{uuid.uuid4().hex}" if remote else str(tmp_path)
    inside, overlaps, done = [0], [0], []

    def section(k: int) -> None:
        with exclusive(root, ".x/state.lock", wait_s=30):
            inside[0] += 1
            overlaps[0] += inside[0] > 1
            time.sleep(0.05)
            inside[0] -= 1
            done.append(k)

    threads = [threading.Thread(target=section, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps[0] == 0 and sorted(done) == [0, 1, 2, 3]
    # Held elsewhere for longer than the wait: a LockedError naming what, not a hang.
    with exclusive(root, ".x/state.lock"):
        failed = []

        def late() -> None:
            try:
                with exclusive(root, ".x/state.lock", wait_s=0.3, what="the alert state"):
                    pass
            except LockedError as exc:
                failed.append(str(exc))

        t = threading.Thread(target=late)
        t.start()
        t.join()
    assert failed and "the alert state" in failed[0] and "try again" in failed[0]
    with exclusive(root, ".x/state.lock", wait_s=0.3):  # released: taken at once
        pass
