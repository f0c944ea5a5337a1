"""`make run` without REDIS_URL: a local redis-server whose data lives under ./var and survives restarts."""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import time
from pathlib import Path

from bot.core.errors import ConfigError

DATA_DIR = Path("var/redis")
PORT = 6389


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_local_redis(port: int = PORT) -> str:
    """Start (or reuse) a persistent redis-server on 127.0.0.1:port and return its URL."""
    url = f"redis://127.0.0.1:{port}/0"
    if _port_open(port):
        return url
    binary = shutil.which("redis-server")
    if not binary:
        raise ConfigError("REDIS_URL is not set and redis-server is not installed. Install it "
                          "(Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis) "
                          "or set REDIS_URL=redis://host:6379/0.")
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(DATA_DIR.resolve()),
         "--appendonly", "yes", "--appendfsync", "everysec", "--save", "60 1",
         "--logfile", str((DATA_DIR / "redis.log").resolve())],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    atexit.register(proc.terminate)
    for _ in range(100):
        if _port_open(port):
            return url
        time.sleep(0.05)
    raise ConfigError(f"redis-server did not start on port {port}; see {DATA_DIR}/redis.log.")
