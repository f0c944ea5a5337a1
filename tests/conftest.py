"""Session fixtures: a real redis-server on a free port, the Hub and Slack emulators, and a whole bot."""

from __future__ import annotations

import shutil

import pytest
from bot.core.settings import Settings
from tests.emulators.hub import TOKEN, HubEmulator, serve
from tests.emulators.redisserver import RedisServer, free_port  # noqa: F401 — re-exported for tests
from tests.emulators.slack import SlackEmulator
from tests.harness import SIGNING_SECRET, Bot


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    if not shutil.which("redis-server"):
        pytest.exit("redis-server is not installed (Debian: apt-get install redis-server)", returncode=3)
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server):
    from bot.core.store import connect

    client = connect(redis_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture(scope="session")
def hub_server():
    emulator = HubEmulator()
    stop, emulator.base = serve(emulator)
    yield emulator
    stop()


@pytest.fixture
def hub(hub_server):
    """The session's Hub emulator, emptied: no Spaces, requests, faults or limits."""
    hub_server.reset()
    return hub_server


@pytest.fixture(scope="session")
def slack_server():
    emulator = SlackEmulator()
    stop, emulator.base = serve(emulator)
    yield emulator
    stop()


@pytest.fixture
def slack(slack_server):
    """The session's Slack emulator, emptied: no calls, messages, faults or groups. A test fails when the
    bot sent Slack anything it would refuse (or blocks without a fallback text) and the test did not take it."""
    slack_server.reset()
    yield slack_server
    refused = slack_server.take_refused()
    if refused:
        pytest.fail("Slack would refuse what the bot sent:\n" + "\n".join(
            f"  {method}: {error} {' '.join(messages[:3])}" for method, error, messages in refused), pytrace=False)


def make_settings(hub, slack, redis_url: str, **overrides) -> Settings:
    env = {"SLACK_BOT_TOKEN": slack.token, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
           "SLACK_API_URL": f"{slack.base}/api/", "HF_TOKEN": TOKEN, "HF_ENDPOINT": hub.base,
           "REDIS_URL": redis_url, "SPACEOPS_HUB_TIMEOUT": "2"}
    env.update({k: v for k, v in overrides.items() if v is not None})
    return Settings.from_env(env)


@pytest.fixture
def make_bot(hub, slack, redis_server, redis_client):
    """Factory: `make_bot(SPACEOPS_ADMINS="UA")` → a running Bot; all are closed after the test."""
    bots = []

    def make(redis_url: str | None = None, client=None, **env) -> Bot:
        settings = make_settings(hub, slack, redis_url or redis_server.url, **env)
        from bot.core.store import connect

        bot = Bot(settings, client or connect(settings.redis_url), hub, slack, slack.base)
        bots.append(bot)
        return bot

    yield make
    for bot in bots:
        bot.close()


@pytest.fixture
def bot(make_bot):
    return make_bot()


