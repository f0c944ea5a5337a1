"""The Hub fails under the real `python -m bot serve`: every command answers a sentence, nothing is repeated.

Each case injects one fault on the one Hub request that matters for a command (the change itself, or the
read for read commands) and checks what the user saw within a few seconds, that the Hub got that request
exactly once (none of these changes is idempotent enough to retry: a restart restarts twice), and that
the process is still up without a traceback.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import free_port
from tests.faults.conftest import ServeProcess, tally

SPACE = "acme/chat"
BASE = f"/api/spaces/{SPACE}"
RUNTIME = {"stage": "WARP_DRIVE", "hardware": {"current": "t4-small", "requested": "t4-small"}, "gcTimeout": 3600}

# command text → (HTTP method, path of the request the fault hits, returns a runtime?)
COMMANDS = {
    "status": ("status acme/chat", "GET", f"{BASE}/runtime", True),
    "restart": ("restart acme/chat", "POST", f"{BASE}/restart", True),
    "resume": ("resume acme/chat", "POST", f"{BASE}/restart", True),
    "pause": ("pause acme/chat", "POST", f"{BASE}/pause", True),
    "hw (cheaper)": ("hw acme/chat cpu-upgrade", "POST", f"{BASE}/hardware", True),
    "sleep": ("sleep acme/chat 30m", "POST", f"{BASE}/sleeptime", True),
    "var ls": ("var ls acme/chat", "GET", f"{BASE}/variables", False),
    "var set": ("var set acme/chat MODEL=gpt2", "POST", f"{BASE}/variables", False),
    "var rm": ("var rm acme/chat OLD", "DELETE", f"{BASE}/variables", False),
    "secret ls": ("secret ls acme/chat", "GET", f"{BASE}/secrets", False),
    "secret rm": ("secret rm acme/chat TOKEN", "DELETE", f"{BASE}/secrets", False),
    "duplicate": ("duplicate acme/chat acme/copy", "POST", f"{BASE}/duplicate", False),
}
RATE = {"RateLimit": '"api";r=0;t=42', "RateLimit-Policy": '"fixed window";"api";q=1000;w=300'}
# fault → (inject kwargs, what the user must read)
FAULTS = {
    "500": ({"status": 500, "body": {"error": "Internal Error"}}, "The Hub had an error (500)"),
    "503": ({"status": 503, "body": "Service Unavailable"}, "The Hub had an error (503)"),
    "429 + RateLimit": ({"status": 429, "body": {"error": "Rate limit exceeded"}, "headers": RATE},
                        "Try again in 42 s"),
    "hang > timeout": ({"status": 200, "body": RUNTIME, "delay": 3.0}, "did not answer in time"),
    "malformed JSON": ({"status": 200, "body": b"{\"stage\": RUNN", "headers": {"Content-Type": "application/json"}},
                       "answered with something unexpected"),
    "unknown stage": ({"status": 200, "body": RUNTIME}, "warp drive"),
}
# Where the client does not read the body, a 200 is a success whatever it contains.
OVERRIDES = {("sleep", "unknown stage"): "set the sleep time", ("secret rm", "malformed JSON"): "removed secret"}
CASES = [(c, f) for c in COMMANDS for f in FAULTS if f != "unknown stage" or COMMANDS[c][3]]


@pytest.fixture(scope="module")
def served(hub_server, slack_server, redis_server, tmp_path_factory):
    """One real bot process for the whole module (the per-test `hub`/`slack` fixtures reset the emulators)."""
    proc = ServeProcess(hub_server, slack_server, redis_server.url, tmp_path_factory.mktemp("serve") / "bot.log",
                        SPACEOPS_HUB_TIMEOUT="1")
    yield proc
    proc.close()


def seed(hub):
    hub.add_space(SPACE, hardware="t4-small", sleep=3600, variables={"OLD": "1"}, secrets={"TOKEN": "x"})


def sentence_within(proc, text: str, seconds: float = 5.0) -> dict:
    start = time.monotonic()
    seen = proc.command(text, timeout=seconds)
    assert time.monotonic() - start < seconds
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("command, fault", CASES, ids=[f"{c}-{f}" for c, f in CASES])
def test_hub_fault_gets_a_sentence_and_no_repeat(served, hub, slack, redis_client, command, fault):
    seed(hub)
    text, method, path, _ = COMMANDS[command]
    inject, expected = FAULTS[fault]
    expected = OVERRIDES.get((command, fault), expected)
    hub.inject(method, path, **inject)
    seen = sentence_within(served, text)
    assert expected in seen["text"], seen["text"]
    assert "Something went wrong on our side" not in seen["text"]
    hit = [r for r in hub.calls(method) if r.path == path]
    assert len(hit) == 1, f"{method} {path} sent {len(hit)} times"
    assert served.alive and "Traceback" not in served.output()
    tally(f"Hub {fault}", lost=0, duplicated=len(hit) - 1)


def test_flavors_fall_back_to_the_shipped_table_on_any_hub_fault(served, hub, slack, redis_client):
    for fault, (inject, _) in FAULTS.items():
        if fault == "unknown stage":
            continue
        hub.inject("GET", "/api/spaces/hardware", **inject)
        seen = sentence_within(served, "flavors")
        assert "t4-medium" in seen["text"] and "Hardware flavors" in seen["text"]
        tally(f"Hub {fault}")
    assert served.alive and "Traceback" not in served.output()


@pytest.mark.slow
def test_hub_connection_refused(serve_bot, hub, slack):
    proc = serve_bot(HF_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    for command, (text, *_rest) in COMMANDS.items():
        seen = sentence_within(proc, text)
        assert "The Hub cannot be reached right now" in seen["text"], (command, seen["text"])
        tally("Hub connection refused")
    assert proc.alive and "Traceback" not in proc.output()


@pytest.mark.slow
def test_a_change_is_sent_once_when_the_hub_is_slow_then_recovers(served, hub, slack, redis_client):
    """After a timeout the user is told to check, not to blindly retry; the next command works."""
    seed(hub)
    hub.inject("POST", f"{BASE}/restart", status=200, body=RUNTIME, delay=2.5)
    assert "check `status`" in sentence_within(served, "restart acme/chat")["text"]
    time.sleep(1.7)  # the emulator finishes the slow answer nobody waits for any more
    assert "is *running*" in sentence_within(served, "status acme/chat")["text"]
    assert len(hub.calls("POST", f"{BASE}/restart")) == 1
