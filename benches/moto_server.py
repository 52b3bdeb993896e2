"""moto's S3 API server for the benches that run on object storage (loopback only)."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable


def moto_in_process() -> tuple[str, Callable[[], None], Callable[[], float]]:
    """moto's S3 server in this process: (endpoint, stop, its CPU seconds: not measurable)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return f"http://{host}:{port}", server.stop, lambda: float("nan")


def moto_process() -> tuple[str, Callable[[], None], Callable[[], float]]:
    """moto's S3 server in a process of its own: (endpoint, stop, its CPU seconds so far)."""
    import psutil

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    watched = psutil.Process(proc.pid)

    def cpu() -> float:
        times = watched.cpu_times()
        return times.user + times.system

    def stop() -> None:
        proc.terminate()
        proc.wait(10)

    return url, stop, cpu
