"""A job on the leader's tick that raises on every tick: the other jobs still run, `/metrics` counts it,
the logs say it once (and once more when it recovers)."""

from __future__ import annotations

import logging
import re
import time

from tests.faults.conftest import tally
from tests.test_alerts import Clock

OPS = "COPS"
CATALOGUE = "spaceops:catalogue"


def failed_runs(bot, job: str) -> float:
    text = bot.get("/metrics").body
    found = re.search(rf'spaceops_job_runs_total{{job="{job}",outcome="failed"}} ([0-9.]+)', text)
    return float(found.group(1)) if found else 0.0


def test_a_mangled_catalogue_timestamp_fails_its_job_every_tick_and_stops_no_other(make_bot, hub, slack,
                                                                                  redis_client, caplog):
    hub.add_space("acme/chat")
    bot = make_bot(SPACEOPS_OPS_CHANNEL=OPS, SPACEOPS_POLL_SECONDS="60")
    assert "Watching" in bot.command("watch acme/chat")["text"]
    clock = Clock()
    bot.ctx.watcher.tick(clock.step())
    # The catalogue job runs before retention, the fleet tick and the ops-channel report.
    redis_client.hset(CATALOGUE, mapping={"at": "yesterday-ish", "json": "{}"})
    redis_client.xadd("spaceops:{outbox}:dead", {"id": "d0"})  # something the ops report must tell
    before = failed_runs(bot, "catalogue")
    with caplog.at_level(logging.INFO):
        for _ in range(5):
            bot.ctx.watcher.tick(clock.step())
    assert failed_runs(bot, "catalogue") - before == 5
    assert 'spaceops_job_failing{job="catalogue"} 1.0' in bot.get("/metrics").body
    said = [p["text"] for p in slack.posts(OPS)]
    assert len(said) == 1 and "dead letters" in said[0], said  # the report after it ran, once
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING and "job catalogue" in r.getMessage()]
    assert len(loud) == 1 and "retried every tick" in loud[0].getMessage(), [r.getMessage() for r in loud]
    redis_client.hset(CATALOGUE, "at", repr(time.time()))
    bot.ctx.watcher.tick(clock.step())
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING and "job catalogue" in r.getMessage()]
    assert len(loud) == 2 and "works again" in loud[1].getMessage()
    assert 'spaceops_job_failing{job="catalogue"} 0.0' in bot.get("/metrics").body
    tally("a job raising on every tick (other jobs ran)", tried=5)
