"""Session fixtures: a real redis-server on a free port, the Hub and Slack emulators, and a whole bot."""

from __future__ import annotations

import shutil

import pytest
from bot.core.settings import Settings
from tests.emulators.hub import TOKEN, HubEmulator, serve
from tests.emulators.redisserver import RedisServer, free_port  # noqa: F401 — re-exported for tests
from tests.emulators.slack import SlackEmulator
from tests.harness import SIGNING_SECRET, Bot


# ------------------------------------------------------------------ how the suite runs (make test)
#
# `make test` runs the suite on pytest-xdist workers (`-n auto --dist loadfile`, pyproject's addopts). Every
# session fixture below (redis-server, the emulators) is per worker: each worker has its own server on a free
# port and its own emulators, so workers share nothing but the machine. A test file runs on one worker, so a
# module fixture (a served bot, a Redis Cluster and a Sentinel set) starts once, and a file's figures (the
# clock-skew grid) stay together. Not loadgroup: pytest-xdist 3.8 cannot group under pytest 9 (it renames
# `item._nodeid`, which pytest 9 no longer reads).


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: three workers per core (eight made the real-process schedule takeover test miss its wait twice). The suite mostly waits (on sockets, on processes it started, on
    timers): a run of `make test` on 2 cores keeps them about 55% busy with 4 workers, so 8 workers overlap
    the waits. Measured on the 2-core machine (2026-12-02, load 3-7 from other work): 4 workers 258 s,
    6 workers 216 s, 8 workers 147 s (docs/benchmarks.md)."""
    import os

    return max(2, 3 * (os.cpu_count() or 1))


# The longest files, longest first: seconds each took alone on a worker of `make test` (2026-12-02, 2 cores,
# 4 workers). Only the order of the files comes from here (pyproject passes --no-loadscope-reorder, so xdist
# hands files out in the order below): the longest start first and the short ones fill in at the end,
# instead of xdist's default (files with the most tests first), which left a 50 s file to start last.
# A stale figure costs a few seconds of wall time, never a test; a new long file belongs in the list.
LONG_FILES = {
    "tests/faults/test_authz_matrix.py": 72, "tests/faults/test_schedule_faults.py": 64,
    "tests/faults/test_redis_topologies.py": 57, "tests/faults/test_poll_shards.py": 49,
    "tests/faults/test_process_kill.py": 35, "tests/test_bench.py": 31, "tests/faults/test_poll_100k.py": 45,
    "tests/faults/test_alert_pipeline.py": 26, "tests/faults/test_commands_under_faults.py": 27,
    "tests/faults/test_hub_faults.py": 25, "tests/faults/test_slack_faults.py": 21,
    "tests/faults/test_clock_skew.py": 19, "tests/faults/test_health_faults.py": 19,
    "tests/test_ways_in.py": 18, "tests/test_clock.py": 18, "tests/test_alerts.py": 15,
    "tests/faults/test_poller_faults.py": 15, "tests/test_ledger.py": 14, "tests/faults/test_secrets_and_markup.py": 13,
    "tests/test_grammar.py": 13, "tests/faults/test_one_way_out.py": 13, "tests/faults/test_redis_faults.py": 12,
    "tests/faults/test_abuse.py": 11, "tests/faults/test_fuzz.py": 11,
}


def pytest_collection_modifyitems(config, items):
    """The longest files first (LONG_FILES), and inside a file its slow tests first (stable: the rest keep
    their order), so the workers start on the long waits and finish together instead of one worker running
    a long file at the end."""
    items.sort(key=lambda item: (-LONG_FILES.get(item.nodeid.split("::")[0], 0),
                                 item.get_closest_marker("slow") is None))


def pytest_sessionfinish(session):
    """On an xdist worker: hand this worker's fault tally and figures to the controller."""
    out = getattr(session.config, "workeroutput", None)
    if out is not None:
        from tests.faults.tally import worker_output

        out.update(worker_output())


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """On the xdist controller: add up what each worker tried (pytest-xdist's hook; absent without it)."""
    from tests.faults.tally import add_worker_output

    add_worker_output(getattr(node, "workeroutput", None) or {})


def pytest_terminal_summary(terminalreporter):
    from tests.faults.tally import table

    for line in table():
        terminalreporter.write_line(line)


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


