"""Redis away and back: reads that need no state still work, changes refuse with a sentence and touch
nothing on the Hub, `/healthz` says 503, and everything recovers by itself. A Redis killed and restarted
with persistence loses no pending approval and no watch.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import RedisServer
from tests.faults.conftest import tally

SPACE = "acme/chat"
ROLES = {"SPACEOPS_APPROVERS": "UAPP", "SPACEOPS_ADMINS": "UADM"}
DOWN = ("cannot reach its database", "(database unreachable)")


def says_down(text: str) -> bool:
    return any(words in text for words in DOWN)
READS = {"help": "Space Ops", "status acme/chat": "is *running*", "flavors": "Hardware flavors",
         "var ls acme/chat": "MODEL", "secret ls acme/chat": "TOKEN", "help hw": "hw SPACE FLAVOR"}
CHANGES = ["restart acme/chat", "restart acme/chat --factory", "resume acme/chat", "pause acme/chat",
           "hw acme/chat cpu-basic", "hw acme/chat a100-large", "sleep acme/chat 2h", "sleep acme/chat never",
           "var set acme/chat K=v", "var rm acme/chat MODEL", "secret rm acme/chat TOKEN",
           "duplicate acme/chat acme/copy", "duplicate acme/chat acme/copy2 --hw a100-large", "watch acme/chat",
           "unwatch acme/chat", "mute acme/chat 1h", "unmute acme/chat", "approvals cancel abcdEFGH1234"]
STATE_READS = ["audit", "audit acme/chat", "approvals", "watches", "watches all"]


def hub_writes(hub) -> list:
    return [(r.method, r.path) for r in hub.requests if r.method != "GET"]


def kill9(server: RedisServer) -> None:
    """The Redis process dies without a chance to save (persistence must already hold everything)."""
    server.proc.kill()
    server.proc.wait(5)
    server.proc = None


@pytest.mark.slow
def test_redis_unreachable_then_back_in_the_real_process(serve_bot, hub, slack, tmp_path):
    from tests.test_approvals import ask

    hub.add_space(SPACE, hardware="t4-small", sleep=3600, variables={"MODEL": "gpt2"}, secrets={"TOKEN": "x"})
    server = RedisServer(tmp_path, persistent=True)
    try:
        proc = serve_bot(redis_url=server.url, scheduler=True, SPACEOPS_POLL_SECONDS="1", **ROLES)
        pending = ask(proc, slack, "hw acme/chat a100-large", user="U1")
        hub.requests.clear()
        server.stop()

        assert proc.get("/healthz").status == 503
        for text, expected in READS.items():
            seen = proc.command(text)
            assert expected in seen["text"], (text, seen["text"])
            tally("Redis down: stateless read")
        for text in CHANGES + STATE_READS:
            seen = proc.command(text)
            assert says_down(seen["text"]), (text, seen["text"])
            tally("Redis down: change or stateful read refused")
        answer = proc.click("approval:approve", pending.id, user="UAPP", channel=pending.channel,
                            message_ts=pending.ts)
        assert says_down(slack.wait(lambda: slack.responses(answer.response_id), timeout=10)[0]["text"])
        meta = json.dumps({"space": SPACE, "key": "API_KEY", "channel": "C1",
                           "response_url": f"{slack.base}/respond/secret-down"})
        assert proc.submit_view("secret_set", {"value": ("value", "s3cr3t"), "description": ("description", "")},
                                meta).status == 200
        assert says_down(slack.wait(lambda: slack.responses("secret-down"), timeout=10)[0]["text"])
        tally("Redis down: change or stateful read refused", tried=2)
        assert hub_writes(hub) == []
        assert proc.alive

        server.start()  # same port, same data; the bot is not restarted
        assert slack.wait(lambda: proc.get("/healthz").status == 200, timeout=10)
        assert "restarted" in proc.command("restart acme/chat")["text"]
        answer = proc.click("approval:approve", pending.id, user="UAPP", channel=pending.channel,
                            message_ts=pending.ts)
        assert "Approved" in slack.wait(lambda: slack.responses(answer.response_id), timeout=10)[0]["text"]
        assert len(hub.calls("POST", f"/api/spaces/{SPACE}/hardware")) == 1
        assert len(hub.calls("POST", f"/api/spaces/{SPACE}/restart")) == 1
        assert proc.alive and "Traceback" not in proc.output(), proc.output()[-3000:]
        tally("Redis down: recovery without restart", tried=3)
    finally:
        server.stop()


def test_redis_killed_and_restarted_with_persistence_loses_nothing(make_bot, hub, slack, tmp_path):
    from tests.test_approvals import ask, click

    server = RedisServer(tmp_path, persistent=True)
    try:
        for name in ("acme/chat", "acme/api", "acme/gpu"):
            hub.add_space(name, hardware="cpu-basic")
        bot = make_bot(redis_url=server.url, **ROLES)
        watcher = bot.ctx.watcher
        chat = ask(bot, slack, "hw acme/chat a100-large", user="U1")
        api = ask(bot, slack, "hw acme/api t4-medium", user="U2")
        assert "Watching" in bot.command("watch acme/* <#C2|ops>")["text"]
        now = time.time()
        watcher.tick(now)

        kill9(server)
        server.start()

        listed = bot.command("approvals")["text"]
        assert chat.id in listed and api.id in listed
        assert "acme/*" in bot.command("watches all")["text"]
        assert "Approved" in click(bot, slack, chat, "UAPP")
        assert "Denied" in click(bot, slack, api, "UAPP", action="deny")
        assert len(hub.calls("POST", "/api/spaces/acme/chat/hardware")) == 1
        assert hub.calls("POST", "/api/spaces/acme/api/hardware") == []
        hub.set_stage("acme/gpu", "RUNTIME_ERROR")
        watcher.tick(now + 60)
        watcher.tick(now + 120)
        crashed = [p for p in slack.posts("C2") if "crashed" in p["text"]]
        assert len(crashed) == 1 and "acme/gpu" in crashed[0]["text"]
        tally("Redis SIGKILL + restart (persistent)", tried=4)
    finally:
        server.stop()


@pytest.mark.slow
def test_redis_lost_between_the_hub_call_and_the_record(make_bot, hub, slack, tmp_path):
    """Redis dies while the Hub applies an approval: the approver is told it was applied; when Redis is
    back, the claim is settled from the Hub (approved) and nothing is applied twice."""
    from tests.test_approvals import ask, buttons, thread

    server = RedisServer(tmp_path, persistent=True)
    try:
        hub.add_space(SPACE, hardware="cpu-basic")
        bot = make_bot(redis_url=server.url, SPACEOPS_HUB_TIMEOUT="1", **ROLES)
        pending = ask(bot, slack, user="U1")
        hub.latency = 0.6
        answer = bot.click("approval:approve", pending.id, user="UAPP", channel=pending.channel,
                           message_ts=pending.ts)
        assert slack.wait(lambda: hub.calls("POST", f"/api/spaces/{SPACE}/hardware"), timeout=5)
        server.stop()
        reply = slack.wait(lambda: slack.responses(answer.response_id), timeout=10)[0]["text"]
        hub.latency = 0.0
        assert "the Hub accepted it" in reply and "Don't approve again" in reply
        server.start()
        watcher = bot.ctx.watcher
        watcher.tick(time.time() + 30)            # past the claim's lease (3 × 1 s + 5 s)
        msg = slack.messages[(pending.channel, pending.ts)]
        assert "Approved" in json.dumps(msg["blocks"]) and buttons(msg) == []
        assert len(thread(slack, pending)) == 1
        assert len(hub.calls("POST", f"/api/spaces/{SPACE}/hardware")) == 1
        tally("Redis lost mid-approval", tried=1)
    finally:
        server.stop()
