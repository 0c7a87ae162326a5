"""A redis-server of our own on 127.0.0.1 for tests and benchmarks (Debian's `redis-server`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_binary() -> str | None:
    return os.environ.get("NEO_REDIS_SERVER") or shutil.which("redis-server")


class RedisServer:
    """A redis-server of our own on 127.0.0.1, no persistence (a restart loses everything,
    the worst case), that a test can stop and start again on the same port."""

    def __init__(self, directory: Path, binary: str, persistent: bool = False):
        """`persistent`: AOF on, fsync every second, the settings neo's README asks for;
        a restart then stops the server gracefully (it writes the AOF out) and keeps the data."""
        self.directory, self.binary, self.persistent = directory, binary, persistent
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.persistent else "no",
                "--appendfsync",
                "everysec",
                "--maxmemory-policy",
                "noeviction",
                "--dir",
                str(self.directory),
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise AssertionError("redis-server did not start") from None
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.proc is not None:
            if self.persistent:
                self.proc.terminate()  # SHUTDOWN: the AOF is written out
            else:
                self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port)
