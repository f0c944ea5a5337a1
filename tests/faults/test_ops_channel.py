"""SPACEOPS_OPS_CHANNEL: the bot tells its operators about its own trouble, once when it starts and once when
it ends (ticks with an injected clock; the Hub and Slack emulators fail on purpose)."""

from __future__ import annotations

from tests.faults.conftest import tally
from tests.test_alerts import Clock

MIN = 60.0
OPS = "COPS"


def ops_posts(slack) -> list[str]:
    return [p["text"] for p in slack.posts(OPS)]


def test_hub_unreadable_for_three_intervals_is_told_once_then_its_end(make_bot, hub, slack, redis_client):
    hub.add_space("acme/chat")
    bot = make_bot(SPACEOPS_OPS_CHANNEL=OPS, SPACEOPS_POLL_SECONDS="60")
    assert "Watching" in bot.command("watch acme/chat")["text"]
    clock = Clock()
    bot.ctx.watcher.tick(clock.step())  # a completed cycle
    assert ops_posts(slack) == []
    hub.inject("GET", "/api/spaces/acme/chat/runtime", status=503, times=100)
    for _ in range(6):
        bot.ctx.watcher.tick(clock.step())
    said = ops_posts(slack)
    assert len(said) == 1 and "cannot read the Hub" in said[0] and "HTTP 503" in said[0], said
    hub.clear_faults()
    bot.ctx.watcher.tick(clock.step())
    bot.ctx.watcher.tick(clock.step())
    said = ops_posts(slack)
    assert len(said) == 2 and "reads the Hub again" in said[1], said
    tally("ops channel: Hub unreadable, told once + recovery")


def test_dead_letters_and_a_stale_outbox_are_told_once(make_bot, hub, slack, redis_client):
    import time

    bot = make_bot(SPACEOPS_OPS_CHANNEL=OPS)
    clock = Clock()
    redis_client.xadd("spaceops:{outbox}:dead", {"id": "d0"})
    redis_client.xadd("spaceops:{outbox}:stream", {"id": "d1", "channel": "CX", "op": "bogus", "payload": "{}"},
                      id=f"{int((time.time() - 600) * 1000)}-0")
    report = bot.ctx.watcher.periodic[-1]
    report(clock.step())
    report(clock.step())
    said = ops_posts(slack)
    assert len(said) == 2 and any("dead letters" in s for s in said) and any("waiting to be delivered" in s
                                                                                for s in said), said
    redis_client.delete("spaceops:{outbox}:dead", "spaceops:{outbox}:stream")
    report(clock.step())
    assert len(ops_posts(slack)) == 4


def test_a_revoked_slack_token_is_logged_and_told(make_bot, hub, slack, caplog):
    bot = make_bot(SPACEOPS_OPS_CHANNEL=OPS)
    report = bot.ctx.watcher.periodic[-1]
    slack.fail("auth.test", 200, body={"ok": False, "error": "token_revoked"})
    report(Clock().step())
    assert any("refuses the bot's token (token_revoked)" in r.getMessage() for r in caplog.records)


def test_no_ops_channel_no_self_report(make_bot):
    bot = make_bot()
    assert not any(type(job).__name__ == "SelfReport" for job in bot.ctx.watcher.periodic)
