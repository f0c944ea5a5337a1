"""Periodic work as named jobs: one failing job stops no other, slow ones run off the tick, and a namespace
schedule cut short by a leader handover acts once on each Space."""

from __future__ import annotations

import logging
import threading

from bot.core import metrics
from bot.core.jobs import Jobs
from tests.test_approvals import click
from tests.test_schedules import ROLES, approval_of, next_fire, only, said, schedule


def runs(job: str, outcome: str) -> float:
    return metrics.JOB_RUNS.labels(job, outcome)._value.get()


def test_a_job_raising_every_tick_is_logged_once_counted_and_the_others_run(caplog):
    jobs = Jobs()
    ran: list[str] = []
    broken = {"on": True}

    def approvals(now):
        ran.append("before")

    def flaky(now):
        if broken["on"]:
            raise ValueError("could not convert string to float: 'garbage'")

    def report(now):
        ran.append("after")

    jobs.add("t-before", approvals)
    jobs.add("t-flaky", flaky)
    jobs.add("t-after", report)
    failed_before = runs("t-flaky", "failed")
    with caplog.at_level(logging.DEBUG, logger="bot.core.jobs"):
        for tick in range(5):
            jobs.run_tick(float(tick), leading=lambda: True)
    assert ran == ["before", "after"] * 5
    assert runs("t-flaky", "failed") - failed_before == 5
    assert metrics.JOB_FAILING.labels("t-flaky")._value.get() == 1
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING and "t-flaky" in r.getMessage()]
    assert len(loud) == 1 and loud[0].exc_info, [r.getMessage() for r in loud]
    broken["on"] = False
    jobs.run_tick(5.0, leading=lambda: True)
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING and "t-flaky" in r.getMessage()]
    assert len(loud) == 2 and "works again after 5 failed runs" in loud[1].getMessage()
    assert metrics.JOB_FAILING.labels("t-flaky")._value.get() == 0
    assert b'spaceops_job_runs_total{job="t-flaky",outcome="failed"}' in metrics.render()[0]


def test_a_slow_job_runs_off_the_tick_one_run_at_a_time():
    jobs = Jobs()
    release = threading.Event()
    slow_runs: list[float] = []
    quick_runs: list[float] = []

    def slow(now, leading, deadline):
        slow_runs.append(now)
        release.wait(10)

    jobs.add("t-slow", slow, slow=True, takes_lease=True)
    jobs.add("t-quick", quick_runs.append)
    busy_before = runs("t-slow", "busy")
    jobs.run_tick(1.0, leading=lambda: True)   # returns while the slow run waits
    jobs.run_tick(2.0, leading=lambda: True)   # the last slow run still going: skipped, not doubled
    assert quick_runs == [1.0, 2.0] and slow_runs == [1.0]
    assert runs("t-slow", "busy") - busy_before == 1
    release.set()
    assert jobs.settle(5)
    jobs.run_tick(3.0, leading=lambda: True)
    assert jobs.settle(5) and slow_runs == [1.0, 3.0]


def test_no_job_runs_once_the_lease_is_gone():
    jobs = Jobs()
    ran: list[str] = []
    leading = iter([True, False])
    jobs.add("t-one", lambda now: ran.append("one"))
    jobs.add("t-two", lambda now: ran.append("two"))
    jobs.run_tick(1.0, leading=lambda: next(leading))
    assert ran == ["one"]


def test_every_job_of_the_wiring_has_a_name_and_the_slow_ones_run_off_the_tick(bot):
    jobs = bot.ctx.watcher.periodic
    assert {"schedules", "approvals", "catalogue", "retention", "fleet", "budgets"} <= set(jobs.names)
    assert {name for name in jobs.names if jobs.get(name).slow} >= {"schedules", "budgets", "fleet"}


def test_a_namespace_restart_schedule_runs_once_per_space_across_a_handover(make_bot, hub, slack):
    """Leader A stalls on a slow Hub between two Spaces of `acme/*`; B takes the lease and the occurrence
    over. A must not go on restarting the Spaces B restarted (before: b and c twice)."""
    for name in ("acme/a", "acme/b", "acme/c"):
        hub.add_space(name)
    a, b = make_bot(**ROLES), make_bot(**ROLES)
    schedule(a, "acme/* restart daily 19:00 --tz UTC")  # a restart may cost: approved once, at creation
    assert "Approved" in click(a, slack, approval_of(slack, "restart `acme/*`"), "UAPP")
    fire = next_fire(a, only(a).id)
    a.ctx.watcher.tick(fire - 10)
    assert a.ctx.watcher.leading
    hub.inject("GET", "/api/spaces/acme/b/runtime", status=0, delay=1.5)  # slow, then answered as usual
    stalled = threading.Thread(target=a.ctx.watcher.tick, args=(fire + 5,))
    stalled.start()
    assert slack.wait(lambda: hub.calls("GET", "/api/spaces/acme/b/runtime"), timeout=10)
    b.ctx.watcher.tick(fire + 200)  # A's lease ran out meanwhile: B leads and takes the occurrence over
    stalled.join(20)
    assert not stalled.is_alive()
    restarts = [len(hub.calls("POST", f"/api/spaces/acme/{n}/restart")) for n in "abc"]
    assert restarts == [1, 1, 1], restarts
    assert b.ctx.watcher.leading and not a.ctx.watcher.lease.holds(fire + 200)
    b.ctx.watcher.tick(fire + 260)
    assert [len(hub.calls("POST", f"/api/spaces/acme/{n}/restart")) for n in "abc"] == [1, 1, 1]
    assert len(said(slack, text="restarted")) <= 2  # A's part was cut short and not reported as done


def test_a_namespace_schedule_stops_at_the_hub_budget_and_retries_the_rest(bot, hub, slack):
    for name in ("acme/a", "acme/b", "acme/c"):
        hub.add_space(name, hardware="t4-small")
    schedule(bot, "acme/* pause daily 19:00 --tz UTC")
    fire = next_fire(bot, only(bot).id)
    budget = bot.ctx.watcher.poller.budget
    budget.remaining, budget.reset_at = budget.reserve + 2, fire + 60  # room for one Space, two requests
    bot.ctx.watcher.tick(fire + 5)
    paused = [len(hub.calls("POST", f"/api/spaces/acme/{n}/pause")) for n in "abc"]
    assert paused == [1, 0, 0], paused
    [line] = said(slack, text="could not act")
    assert "rate budget" in line and "`acme/b`" in line and "Trying once more in 1 min" in line
    budget.remaining = None  # the window reset
    bot.ctx.watcher.tick(fire + 65)
    assert [len(hub.calls("POST", f"/api/spaces/acme/{n}/pause")) for n in "abc"] == [1, 1, 1]
