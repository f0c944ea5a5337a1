"""Fault-suite fixtures: the real bot as a `python -m bot serve` process, and a tally of what was tried.

Every case adds to the tally (fault or input class → cases tried, requests lost, actions duplicated,
crashes); the session prints it as a table at the end, the figures the issue's closing note asks for.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.emulators.hub import TOKEN
# The tally and the figures live in tests/faults/tally.py; the root conftest prints them (also under xdist).
from tests.faults.tally import figure, tally  # noqa: F401 — re-exported for the fault tests
from tests.harness import SIGNING_SECRET, Bot

ROOT = Path(__file__).resolve().parents[2]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "HF_", "REDIS_", "SPACEOPS_"))}
    env.update(extra)
    return env


class ServeProcess(Bot):
    """`python -m bot serve` in its own process, driven with the same signed requests as the in-process Bot."""

    def __init__(self, hub, slack, redis_url: str, log_path: Path, scheduler: bool = False, **env: str):
        self.hub, self.slack, self.slack_url = hub, slack, slack.base
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        variables = {"SLACK_BOT_TOKEN": slack.token, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                     "SLACK_API_URL": f"{slack.base}/api/", "HF_ENDPOINT": hub.base, "HF_TOKEN": TOKEN,
                     "REDIS_URL": redis_url, "SPACEOPS_HUB_TIMEOUT": "1"}
        variables.update(env)
        self._log = open(log_path, "w")
        args = [sys.executable, "-m", "bot", "serve", "--port", str(self.port)]
        args += [] if scheduler else ["--no-scheduler"]
        self.proc = subprocess.Popen(args, cwd=ROOT, env=clean_env(**variables), stdout=self._log,
                                     stderr=subprocess.STDOUT)
        self._wait_listening()

    def _wait_listening(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bot exited with {self.proc.returncode}:\n{self.output()}")
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1)
                return
            except urllib.error.HTTPError:
                return  # 503: listening, Redis down; the test wants that
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"bot did not listen within {timeout}s:\n{self.output()}")

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no atexit, like a node that dies."""
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def close(self) -> None:
        if self.alive:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


@pytest.fixture
def serve_bot(hub, slack, redis_server, redis_client, tmp_path):
    """Factory: `serve_bot(SPACEOPS_ADMINS="UA")` → a running `python -m bot serve` process."""
    procs: list[ServeProcess] = []

    def start(redis_url: str | None = None, scheduler: bool = False, **env: str) -> ServeProcess:
        proc = ServeProcess(hub, slack, redis_url or redis_server.url, tmp_path / f"bot{len(procs)}.log",
                            scheduler=scheduler, **env)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.close()


class OwnSlack:
    """A Slack emulator on a port of its own that can go down (connection refused) and come back."""

    def __init__(self):
        from tests.emulators.slack import SlackEmulator

        self.emulator = SlackEmulator()
        self.port = free_port()
        self.base = self.emulator.base = f"http://127.0.0.1:{self.port}"
        self._stop = None
        self.up()

    def up(self) -> None:
        from tests.emulators.hub import serve

        if self._stop is None:
            self._stop, _ = serve(self.emulator, port=self.port)

    def down(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None

    def up_after(self, seconds: float) -> None:
        import threading

        timer = threading.Timer(seconds, self.up)
        timer.daemon = True
        timer.start()


@pytest.fixture
def own_slack():
    slack = OwnSlack()
    yield slack
    slack.down()
    refused = slack.emulator.take_refused()
    if refused:  # as the `slack` fixture: what Slack would refuse fails the test
        pytest.fail("Slack would refuse what the bot sent:\n" + "\n".join(
            f"  {method}: {error} {' '.join(messages[:3])}" for method, error, messages in refused), pytrace=False)


@pytest.fixture
def bot_on(hub, redis_server, redis_client):
    """Factory: a whole in-process bot talking to a given Slack emulator (e.g. `own_slack`)."""
    from bot.core.store import connect
    from tests.conftest import make_settings

    bots: list[Bot] = []

    def make(slack, **env: str) -> Bot:
        settings = make_settings(hub, slack.emulator, redis_server.url, **env)
        bot = Bot(settings, connect(redis_server.url), hub, slack.emulator, slack.base)
        bots.append(bot)
        return bot

    yield make
    for bot in bots:
        bot.close()
