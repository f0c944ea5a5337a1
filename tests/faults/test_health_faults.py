"""Dead or degraded: `/livez`, `/readyz` and `/healthz` through a Hub outage, Redis gone, and a Socket Mode
session that stops answering pings."""

from __future__ import annotations

import json
import time

import pytest

from tests.faults.conftest import tally
from tests.test_alerts import Clock

OPS = "COPS"
SPACE = "acme/chat"


def test_the_hub_failing_for_ten_intervals_degrades_health_and_never_fails_liveness(make_bot, hub, slack):
    hub.add_space(SPACE)
    bot = make_bot(SPACEOPS_OPS_CHANNEL=OPS, SPACEOPS_POLL_SECONDS="60")
    assert "Watching" in bot.command(f"watch {SPACE}")["text"]
    clock = Clock()
    bot.ctx.watcher.tick(clock.step())
    health = bot.ctx.watcher  # ticks on the injected clock; /healthz reads Redis on the real one
    assert bot.get("/healthz").json["degraded"] == {}
    hub.inject("GET", f"/api/spaces/{SPACE}/runtime", status=503, times=1000)
    seen = []
    for _ in range(10):
        health.tick(clock.step())
        live, ready = bot.get("/livez"), bot.get("/readyz")
        assert (live.status, ready.status) == (200, 200), (live.body, ready.body)
        answer = bot.get("/healthz")
        assert answer.status == 200
        seen.append(answer.json)
    assert all("hub" in body["degraded"] for body in seen), [body["degraded"] for body in seen]
    assert "HTTP 503" in seen[-1]["degraded"]["hub"] and not seen[-1]["ok"]
    told = [p["text"] for p in slack.posts(OPS)]
    assert len(told) == 1 and "cannot read the Hub" in told[0], told
    hub.clear_faults()
    health.tick(clock.step())
    health.tick(clock.step())
    assert "hub" not in bot.get("/healthz").json["degraded"]
    told = [p["text"] for p in slack.posts(OPS)]
    assert len(told) == 2 and "reads the Hub again" in told[1]
    tally("Hub failing for 10 intervals (/livez 200, /healthz degraded, ops told once)", tried=10)


def test_redis_gone_fails_liveness_but_not_readiness(make_bot, tmp_path):
    from tests.emulators.redisserver import RedisServer

    (tmp_path / "redis").mkdir()
    own = RedisServer(tmp_path / "redis")
    try:
        bot = make_bot(redis_url=own.url)
        assert bot.get("/livez").status == 200
        own.stop()
        live, ready, health = bot.get("/livez"), bot.get("/readyz"), bot.get("/healthz")
        assert live.status == 503 and live.json["redis"] == "unreachable"
        assert health.status == 503
        assert ready.status == 200  # a command still gets its sentence; liveness restarts after 2 min of this
    finally:
        own.stop()


@pytest.mark.slow
def test_a_socket_mode_session_that_stops_answering_pings_is_replaced(hub, slack, redis_server, tmp_path):
    """The real `python -m bot socket --health-port P` against the Socket Mode emulator, which stops answering
    pings without closing the socket: health says so meanwhile, and the bot reconnects within 30 s."""
    import signal
    import subprocess
    import sys

    from tests.conftest import free_port
    from tests.emulators.hub import TOKEN
    from tests.emulators.socketmode import SocketModeEmulator
    from tests.faults.conftest import ROOT, clean_env
    from tests.faults.test_shutdown_and_health import get

    socket_mode = SocketModeEmulator()
    slack.socket_url = socket_mode.url
    port = free_port()
    log_path = tmp_path / "socket.log"
    env = clean_env(SLACK_BOT_TOKEN=slack.token, SLACK_APP_TOKEN="xapp-1-test", SLACK_API_URL=f"{slack.base}/api/",
                    HF_ENDPOINT=hub.base, HF_TOKEN=TOKEN, REDIS_URL=redis_server.url)
    base = f"http://127.0.0.1:{port}"

    def health() -> dict:
        return json.loads(get(base + "/healthz")[1])

    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bot", "socket", "--no-scheduler", "--health-port",
                                 str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            assert socket_mode.wait(lambda: socket_mode.sessions == 1, timeout=20), log_path.read_text()
            assert _until(lambda: health().get("seconds_since_pong") is not None, 15), log_path.read_text()
            body = health()
            assert body["socket_connected"] and body["seconds_since_pong"] < 10 and "socket" not in body["degraded"]
            assert get(base + "/readyz")[0] == 200
            deaf_at = time.monotonic()
            socket_mode.stop_answering_pings()
            # Meanwhile: connected, but no pong for over two pings: degraded and not ready; alive throughout.
            assert _until(lambda: "socket" in health()["degraded"], 20), \
                log_path.read_text()
            status, ready = get(base + "/readyz")
            assert status == 503 and "pings" in json.loads(ready)["problem"]
            assert get(base + "/livez")[0] == 200
            assert socket_mode.wait(lambda: socket_mode.sessions >= 2, timeout=30), log_path.read_text()
            reconnected = time.monotonic() - deaf_at
            assert reconnected < 30, reconnected
            assert _until(lambda: "socket" not in health()["degraded"], 10)
            body = health()
            assert body["socket_connected"] and get(base + "/readyz")[0] == 200
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
            slack.socket_url = None
            socket_mode.close()
    from tests.faults.conftest import figure

    figure(f"Socket Mode session deaf to pings: replaced after {reconnected:.1f} s")
    tally("Socket Mode pings unanswered (reconnected < 30 s, health said so)")


def _until(check, timeout: float) -> bool:
    """Ask `check()` every 0.2 s until it is true or `timeout` seconds passed (the library's own timers run)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if check():
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False
