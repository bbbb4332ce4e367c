"""A real ``redis-server`` for the tests: started on a free loopback port, stopped by pid.

No mocks and no fakeredis: what the Redis-backed parts promise (atomic budgets across processes,
fenced checkpoints, leases that expire) is only proven against the real server. Where no
``redis-server`` is installed the tests that need one are skipped with a clear reason, except
under ``CI=true``, where ``.ci/run`` installs it and a missing server is a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import pytest

REDIS_SERVER = shutil.which("redis-server")


def require_redis_server() -> str:
    """The path of ``redis-server``; skips the test without one (fails under CI)."""
    if REDIS_SERVER is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + ": .ci/run should have installed it")
        pytest.skip(message)
    return REDIS_SERVER


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1.

    ``aof=True`` turns on the append-only file with ``appendfsync always`` (durability tests);
    ``restart()`` stops it and starts it again on the same port and data directory.
    """

    def __init__(self, *, aof: bool = False, directory: str | os.PathLike[str] | None = None):
        self.binary = require_redis_server()
        self.aof = aof
        self._tmp = None if directory is not None else tempfile.TemporaryDirectory()
        self.directory = Path(directory if directory is not None else self._tmp.name)  # type: ignore[union-attr]
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.aof
            else ["--appendonly", "no"]
        )
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--dir",
                str(self.directory),
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
                *persistence,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.01)
        raise RuntimeError("redis-server did not answer within 10 s")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop it (SIGTERM: a clean shutdown that syncs the AOF; SIGKILL: a crash)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def restart(self, sig: signal.Signals = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop(signal.SIGKILL)
        if self._tmp is not None:
            self._tmp.cleanup()
