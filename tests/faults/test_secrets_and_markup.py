"""Secrets leave no trace (DEBUG logs of every library, Slack calls, Redis, audit), and outside text
(Space ids, variable values, Hub error messages) renders as text in every reply.
"""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from tests.faults.conftest import tally

SPACE = "acme/chat"
LIBRARY_LOGGERS = ("", "slack_bolt", "slack_sdk", "urllib3", "httpx2", "httpx", "httpcore", "huggingface_hub",
                   "waitress", "redis", "bot", "handlers")


class Everything(logging.Handler):
    """Every record from every logger, formatted with its arguments and any traceback."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record):
        self.lines.append(self.format(record) + " " + repr(record.args))


@pytest.fixture
def debug_logs(caplog):
    """Root and every library logger at DEBUG, with a handler of our own next to caplog's."""
    handler = Everything()
    root = logging.getLogger()
    saved = {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS}
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    root.addHandler(handler)
    caplog.set_level(logging.DEBUG)
    yield handler, caplog
    root.removeHandler(handler)
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def redis_dump(client) -> str:
    """Every key, and every value of every type, as one string."""
    parts = []
    for name in client.keys("*"):
        kind = client.type(name)
        parts.append(name)
        if kind == "string":
            parts.append(client.get(name) or "")
        elif kind == "hash":
            parts.append(json.dumps(client.hgetall(name)))
        elif kind == "list":
            parts.append(json.dumps(client.lrange(name, 0, -1)))
        elif kind == "set":
            parts.append(json.dumps(sorted(client.smembers(name))))
        elif kind == "zset":
            parts.append(json.dumps(client.zrange(name, 0, -1, withscores=True)))
        elif kind == "stream":
            parts.append(json.dumps(client.xrange(name)))
    return "\n".join(parts)


@pytest.mark.slow
def test_a_secret_set_through_the_modal_leaves_no_trace(make_bot, hub, slack, redis_client, debug_logs):
    handler, caplog = debug_logs
    bot = make_bot(SPACEOPS_ADMINS="U7")
    # A bot built after the loggers went to DEBUG, so Bolt's own logger is at DEBUG too.
    hub.add_space(SPACE)
    secret = f"sk-live-{uuid.uuid4().hex}"
    answer = bot.send_command(f"secret set {SPACE} OPENAI_KEY", user="U7")
    view = slack.wait(lambda: slack.of("views.open"))[0].body["view"]
    submitted = bot.submit_view("secret_set", {"value": ("value", secret), "description": ("description", "prod")},
                                view["private_metadata"], user="U7")
    assert submitted.status == 200
    assert "set secret" in slack.wait(lambda: slack.posts("C1"))[0]["text"]  # announced by the bot (followed)
    assert hub.calls("POST", f"/api/spaces/{SPACE}/secrets")[0].body["value"] == secret  # it did reach the Hub
    bot.command("audit", user="U7")
    bot.command(f"secret ls {SPACE}", user="U7")
    # The same value in submissions that go wrong: a stale form (unknown callback: Bolt warns "Unhandled
    # request" with the body), a broken form, a forbidden user, and a Hub that fails.
    values = {"value": ("value", secret), "description": ("description", "")}
    bot.submit_view("secret_set_v0", values, view["private_metadata"], user="U7")
    bot.submit_view("secret_set", values, "{broken", user="U7")
    bot.submit_view("secret_set", values, view["private_metadata"], user="UOTHER")
    hub.inject("POST", f"/api/spaces/{SPACE}/secrets", status=500, body={"error": "boom"})
    bot.submit_view("secret_set", values, view["private_metadata"], user="U7")
    slack.wait(lambda: len(slack.responses(answer.response_id)) >= 2)  # the forbidden user and the Hub failure

    assert any(r.levelno == logging.DEBUG for r in caplog.records)  # DEBUG logging really was on
    assert any("slack_bolt" in line for line in handler.lines)
    leaks = [line for line in handler.lines if secret in line]
    leaks += [r.getMessage() for r in caplog.records if secret in r.getMessage()]
    assert leaks == [], leaks[:3]
    assert secret not in json.dumps([c.body for c in slack.calls])
    assert secret not in redis_dump(redis_client)
    assert secret not in json.dumps([e.__dict__ for e in bot.ctx.store.audit_entries(count=1000)])
    tally("secret value traces (logs, Slack, Redis, audit)", tried=5 * 4)


# ---------------------------------------------------------------- markup injection

NASTY = ("<!channel>", "<@U123>", "<http://evil|click>", "*bold*", "<!here>", "<#C999|general>", "&lt;!channel&gt;")


def no_live_markup(text: str) -> None:
    for live in ("<!channel>", "<@U123>", "<http://evil", "<!here>", "<#C999"):
        assert live not in text, (live, text)


def everything_seen(slack) -> str:
    return json.dumps([c.body for c in slack.calls])


@pytest.mark.parametrize("nasty", NASTY)
def test_markup_in_hub_error_messages_renders_as_text(bot, hub, slack, nasty):
    hub.add_space(SPACE, stage="RUNTIME_ERROR", error=f"crash {nasty} boom")
    hub.inject("POST", f"/api/spaces/{SPACE}/restart", status=403, body={"error": f"denied {nasty}"},
               headers={"X-Error-Message": f"denied {nasty}"})
    hub.inject("POST", f"/api/spaces/{SPACE}/pause", status=400, body={"error": f"bad {nasty}"},
               headers={"X-Error-Message": f"bad {nasty}"})
    for text in (f"status {SPACE}", f"restart {SPACE}", f"pause {SPACE}"):
        seen = bot.command(text)
        no_live_markup(json.dumps(seen))
    no_live_markup(everything_seen(slack))
    tally("markup injection", tried=3)


@pytest.mark.parametrize("nasty", NASTY)
def test_markup_in_variable_values_and_keys_renders_as_text(bot, hub, slack, nasty):
    hub.add_space(SPACE, variables={"GREETING": f"hi {nasty}"})
    hub.spaces[SPACE]["variables"]["X"] = {"value": "1", "description": f"desc {nasty}"}
    no_live_markup(json.dumps(bot.command(f"var ls {SPACE}")))
    no_live_markup(json.dumps(bot.command(f"var set {SPACE} NEW={nasty}")))
    from bot.commands.grammar import unwrap_slack

    # Stored as typed: Slack escapes <>& in command text and wraps mentions and links, both undone.
    assert hub.calls("POST", f"/api/spaces/{SPACE}/variables")[-1].body["value"] in (
        unwrap_slack(nasty), nasty.replace("&lt;", "<").replace("&gt;", ">"))
    no_live_markup(json.dumps(bot.command("audit")))
    no_live_markup(everything_seen(slack))
    tally("markup injection", tried=3)


SPACE_TEXTS = ["<!channel>", "acme/<!channel>", "<@U123>/x", "<http://evil|click>", "*bold*/x", "acme/*bold*",
               "<http://evil|acme/chat>", "acme/chat<!here>", "<#C999|general>", "`acme/chat`", "acme/chat`<!channel>`"]


@pytest.mark.parametrize("space", SPACE_TEXTS)
def test_markup_in_space_ids_renders_as_text(bot, hub, slack, space):
    for text in (f"status {space}", f"restart {space}", f"var set {space} K=v", f"duplicate acme/chat {space}",
                 f"watch {space}", f"audit {space}", f"hw {space} t4-medium", f"sleep {space} 1h"):
        seen = bot.command(text)
        no_live_markup(json.dumps(seen))
    assert [r for r in hub.requests if r.method != "GET"] == []
    no_live_markup(everything_seen(slack))
    tally("markup injection", tried=8)


@pytest.mark.slow
def test_a_secret_sent_over_socket_mode_leaves_no_trace_in_debug_logs(hub, slack, redis_server, redis_client,
                                                                        tmp_path):
    """The real `python -m bot socket --log-level DEBUG` against a Socket Mode emulator (a WebSocket server)."""
    import signal
    import subprocess
    import sys

    from tests.emulators.hub import TOKEN
    from tests.emulators.socketmode import SocketModeEmulator
    from tests.faults.conftest import ROOT, clean_env

    hub.add_space(SPACE)
    socket_mode = SocketModeEmulator()
    slack.socket_url = socket_mode.url
    secret = f"sk-live-{uuid.uuid4().hex}"
    log_path = tmp_path / "socket.log"
    env = clean_env(SLACK_BOT_TOKEN=slack.token, SLACK_APP_TOKEN="xapp-1-test", SLACK_API_URL=f"{slack.base}/api/",
                    HF_ENDPOINT=hub.base, HF_TOKEN=TOKEN, REDIS_URL=redis_server.url, SPACEOPS_ADMINS="U7")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bot", "--log-level", "DEBUG", "socket", "--no-scheduler"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            assert socket_mode.wait(lambda: socket_mode.connections, timeout=20), log_path.read_text()
            socket_mode.send("slash_commands", {
                "team_id": "T1", "channel_id": "C1", "user_id": "U7", "command": "/space",
                "text": f"secret set {SPACE} OPENAI_KEY", "response_url": f"{slack.base}/respond/sm1",
                "trigger_id": "trig.sm1"}, accepts_response_payload=True)
            view = slack.wait(lambda: slack.of("views.open"), timeout=10)[0].body["view"]
            state = {"values": {"value": {"value": {"type": "plain_text_input", "value": secret}},
                                "description": {"description": {"type": "plain_text_input", "value": "prod"}}}}
            envelope = socket_mode.send("interactive", {
                "type": "view_submission", "team": {"id": "T1", "domain": "acme"},
                "user": {"id": "U7", "username": "u7", "team_id": "T1"}, "api_app_id": "A1",
                "trigger_id": "trig.sm2", "view": {"id": "V1", "type": "modal", "callback_id": "secret_set",
                                                   "private_metadata": view["private_metadata"], "state": state,
                                                   "hash": "h", "title": {"type": "plain_text", "text": "t"},
                                                   "blocks": []}}, accepts_response_payload=True)
            assert socket_mode.wait(lambda: envelope in socket_mode.acks)
            posted = slack.wait(lambda: hub.calls("POST", f"/api/spaces/{SPACE}/secrets"), timeout=10)
            assert posted and posted[0].body["value"] == secret  # it did reach the Hub
            # announced in the channel by the bot (a followed change), or through response_url where it may not post
            assert slack.wait(lambda: [m for m in slack.responses("sm1") + slack.posts()
                                       if "set secret" in (m.get("text") or "")], timeout=10)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
            slack.socket_url = None
            socket_mode.close()
    output = log_path.read_text()
    assert "DEBUG" in output and "view_submission" in output  # the envelope was logged, scrubbed
    assert secret not in output
    assert secret not in redis_dump(redis_client)
    tally("secret at DEBUG over Socket Mode")
