"""The HTTP surface: signatures, health, body limits, retries, and the command-line entry points."""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from slack_sdk.signature import SignatureVerifier

from tests.harness import SIGNING_SECRET

ROOT = Path(__file__).resolve().parent.parent


def test_bad_signature_is_401_and_nothing_runs(bot, hub, slack):
    hub.add_space("acme/chat")
    for kwargs in ({"secret": "wrong-secret"}, {"sign": False}, {"timestamp": int(time.time()) - 301}):
        answer = bot.send_command("restart acme/chat", **kwargs)
        assert answer.status == 401, kwargs
    time.sleep(0.2)
    assert hub.requests == [] and slack.responses() == []


def test_healthz(bot, redis_server):
    answer = bot.get("/healthz")
    assert answer.status == 200 and {"ok": True, "redis": "up"}.items() <= answer.json.items()


def test_healthz_503_when_redis_is_gone(make_bot, tmp_path):
    from tests.conftest import RedisServer

    server = RedisServer(tmp_path)
    bot = make_bot(redis_url=server.url)
    server.stop()
    answer = bot.get("/healthz")
    assert answer.status == 503 and answer.json["redis"] == "unreachable"


def test_unknown_paths_and_oversized_bodies(bot):
    assert bot.get("/nope").status == 404
    assert bot.get("/slack/events").status == 405
    big = urlencode({"command": "/space", "text": "x" * 300_000}).encode()
    assert bot.post(big, "application/x-www-form-urlencoded").status == 413


def test_ack_is_immediate_and_work_happens_after(bot, hub, slack):
    """The HTTP answer carries no reply: the Hub call happens after it, and the reply comes by response_url."""
    hub.add_space("acme/chat")
    hub.inject("GET", "/api/spaces/acme/chat/runtime", status=200, delay=1.0,
               body={"stage": "RUNNING", "hardware": {"current": "cpu-basic", "requested": "cpu-basic"}})
    answer = bot.send_command("status acme/chat")
    assert answer.status == 200 and answer.body == ""
    assert slack.responses(answer.response_id) == []  # the slow Hub call is still running
    assert slack.wait(lambda: slack.responses(answer.response_id), timeout=10)


def test_a_redelivered_command_runs_once(bot, hub, slack):
    hub.add_space("acme/chat")
    form = {"team_id": "T1", "channel_id": "C1", "user_id": "U1", "command": "/space", "text": "restart acme/chat",
            "response_url": f"{slack.base}/respond/dup", "trigger_id": "trig.same"}
    body = urlencode(form).encode()
    first = bot.post(body, "application/x-www-form-urlencoded")
    second = bot.post(body, "application/x-www-form-urlencoded", headers={"X-Slack-Retry-Num": "1"})
    assert first.status == second.status == 200
    slack.wait(lambda: slack.posts("C1"))
    time.sleep(0.3)
    assert len(hub.calls("POST", "/api/spaces/acme/chat/restart")) == 1
    assert len(slack.posts("C1")) == 1     # the announcement, posted once by the bot


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "HF_", "REDIS_", "SPACEOPS_"))}
    env.update(extra)
    return env


@pytest.mark.slow
def test_run_without_slack_tokens_says_what_is_missing():
    result = subprocess.run([sys.executable, "-m", "bot", "run"], cwd=ROOT, env=_env(), capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2
    assert "SLACK_BOT_TOKEN" in result.stderr and "`make demo`" in result.stderr
    # every missing setting at once, not one per attempt
    assert "HF_TOKEN" in result.stderr and "SLACK_SIGNING_SECRET or SLACK_APP_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_console_without_a_hub_token_points_to_the_demo_and_leaves_nothing_behind(tmp_path):
    """`make console` on a fresh clone: no HF_TOKEN. It says what is missing and where to try the bot instead,
    before it starts a local Redis (which would leave ./var/redis behind)."""
    result = subprocess.run([sys.executable, "-m", "bot", "console"], cwd=tmp_path, input="/space help\n",
                            env={**_env(), "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "HF_TOKEN" in result.stderr and "`make demo`" in result.stderr
    assert "Hub cannot be reached" not in result.stdout + result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []      # no var/ left behind


@pytest.mark.slow
def test_serve_without_signing_secret_refuses_to_start():
    result = subprocess.run([sys.executable, "-m", "bot", "serve"], cwd=ROOT,
                            env=_env(SLACK_BOT_TOKEN="xoxb-1", REDIS_URL="redis://127.0.0.1:1/0"),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "SLACK_SIGNING_SECRET" in result.stderr


@pytest.mark.slow
def test_console_answers_status_against_the_hub_emulator(hub, redis_server):
    hub.add_space("ns/x", hardware="t4-small")
    result = subprocess.run([sys.executable, "-m", "bot", "console"], cwd=ROOT, input="/space status ns/x\n",
                            env=_env(HF_ENDPOINT=hub.base, HF_TOKEN="hf_test_token", REDIS_URL=redis_server.url),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "ns/x is running (`RUNNING`)" in result.stdout
    assert "`t4-small` ($0.40/h)" in result.stdout
    assert hub.calls("GET", "/api/spaces/ns/x/runtime")


@pytest.mark.slow
def test_serve_starts_and_answers_signed_requests(hub, slack, redis_server):
    """`python -m bot serve` as a real process: health, a signed command, and a 401 for a bad signature."""
    from slack_sdk.signature import SignatureVerifier

    from tests.conftest import free_port

    hub.add_space("acme/chat")
    port = free_port()
    env = _env(SLACK_BOT_TOKEN="xoxb-test", SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_API_URL=f"{slack.base}/api/",
               HF_ENDPOINT=hub.base, HF_TOKEN="hf_test_token", REDIS_URL=redis_server.url)
    proc = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--port", str(port), "--no-scheduler"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        import urllib.error
        import urllib.request

        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        body = urlencode({"team_id": "T1", "channel_id": "C1", "user_id": "U1", "command": "/space",
                          "text": "status acme/chat", "response_url": f"{slack.base}/respond/proc",
                          "trigger_id": "trig.proc"}).encode()
        ts = str(int(time.time()))
        for secret, expected in ((SIGNING_SECRET, 200), ("bad", 401)):
            sig = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
            request = urllib.request.Request(f"http://127.0.0.1:{port}/slack/events", data=body, headers={
                "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig,
                "Content-Type": "application/x-www-form-urlencoded"})
            try:
                status = urllib.request.urlopen(request, timeout=5).status
            except urllib.error.HTTPError as err:
                status = err.code
            assert status == expected
        assert "running" in slack.wait(lambda: slack.responses("proc"), timeout=10)[0]["text"]
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.mark.slow
def test_serve_with_slack_unreachable_says_so(redis_server):
    result = subprocess.run([sys.executable, "-m", "bot", "serve", "--no-scheduler"], cwd=ROOT,
                            env=_env(SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s", REDIS_URL=redis_server.url,
                                     SLACK_API_URL="http://127.0.0.1:9/api/"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Slack cannot be reached" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_ack_says_how_long_the_bot_took_and_metrics_count_it(bot, hub, slack):
    """`Server-Timing: app;dur=<ms>` on each answer (bench/ack.py tells the bot's share of an ack from the
    machine's with it), and the time per path in /metrics (`spaceops_http_request_seconds`)."""
    hub.add_space("acme/chat")
    body = urlencode({"team_id": "T1", "channel_id": "C1", "user_id": "U1", "command": "/space",
                      "text": "status acme/chat", "response_url": f"{slack.base}/respond/timing",
                      "trigger_id": "trig.timing"}).encode()
    ts = str(int(time.time()))
    conn = http.client.HTTPConnection(urlsplit(bot.url).hostname, urlsplit(bot.url).port, timeout=10)
    conn.request("POST", "/slack/events", body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=ts, body=body)})
    answer = conn.getresponse()
    answer.read()
    conn.close()
    assert answer.status == 200
    timing = re.fullmatch(r"app;dur=(\d+\.\d\d)", answer.getheader("Server-Timing") or "")
    assert timing and float(timing.group(1)) >= 0, answer.getheaders()
    text = bot.get("/metrics").body
    counted = re.search(r'spaceops_http_request_seconds_count\{path="/slack/events"\} (\d+)', text)
    assert counted and float(counted.group(1)) >= 1, text[-2000:]
    assert slack.wait(lambda: slack.responses("timing"), timeout=10)


def test_a_repeated_status_gets_the_same_empty_ack_and_one_answer(bot, hub, slack):
    """A `/space` command's delivery id is claimed on the work pool, not before the ack (issue #22): both
    deliveries are acked alike, the Hub is read once, the user reads one answer."""
    hub.add_space("acme/chat")
    form = {"team_id": "T1", "channel_id": "C1", "user_id": "U1", "command": "/space", "text": "status acme/chat",
            "response_url": f"{slack.base}/respond/twice", "trigger_id": "trig.twice"}
    body = urlencode(form).encode()
    answers = [bot.post(body, "application/x-www-form-urlencoded", headers={"X-Slack-Retry-Num": str(n)})
               for n in range(3)]
    assert [(a.status, a.body) for a in answers] == [(200, "")] * 3
    assert slack.wait(lambda: slack.responses("twice"), timeout=10)
    time.sleep(0.3)
    assert len(slack.responses("twice")) == 1
    reads = [r for r in hub.requests if "/api/spaces/acme/chat" in r.path]
    assert len({r.path for r in reads}) == len(reads)  # no Hub read twice


def test_a_repeated_secret_set_opens_one_form(bot, hub, slack):
    hub.add_space("acme/chat")
    form = {"team_id": "T1", "channel_id": "C1", "user_id": "U1", "command": "/space",
            "text": "secret set acme/chat OPENAI_KEY", "response_url": f"{slack.base}/respond/form",
            "trigger_id": "trig.form"}
    body = urlencode(form).encode()
    answers = [bot.post(body, "application/x-www-form-urlencoded") for _ in range(2)]
    assert [(a.status, a.body) for a in answers] == [(200, "")] * 2
    assert slack.wait(lambda: slack.of("views.open"), timeout=10)
    time.sleep(0.3)
    assert len(slack.of("views.open")) == 1
