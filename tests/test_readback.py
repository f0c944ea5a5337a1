"""After a change, the bot says what the Hub now reports (hardware, price, sleep time), and where that is not
what the approval said; an approved hardware move is followed like a restart. Signed Slack requests and clicks."""

from __future__ import annotations

import re
import time

from tests.test_approvals import ROLES, ask, click, thread

MIN = 60.0


class Clock:
    def __init__(self):
        self.now = time.time()

    def step(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def test_an_approved_move_reports_what_the_hub_says_and_is_followed_until_it_runs(make_bot, hub, slack):
    hub.add_space("acme/chat", hardware="cpu-basic")           # cpu-basic: sleeps after 2 d
    bot = make_bot(**ROLES)
    clock = Clock()
    bot.ctx.watcher.tick(clock.now)                             # this replica leads (hot reads)
    pending = ask(bot, slack, "hw acme/chat a10g-small", user="U2")
    card = str(slack.messages[(pending.channel, pending.ts)]["blocks"])
    assert "never sleeps" in card and "$24.00/day" in card      # what the approval said
    answer = click(bot, slack, pending, "UAPP")
    # The Hub kept the 2-day sleep time: the approver and the requester are told, not left to find out.
    readback = ("The Hub now reports `a10g-small` ($1.00/h · $24.00/day) requested, on `cpu-basic` (free) until "
                "it moves; sleeps after 2 d idle. :warning: Not what the approval said: sleeps after 2 d idle, not "
                "never sleeps.")
    assert readback in answer, answer
    [note] = [t for t in thread(slack, pending) if "your request" in t]
    assert readback in note, note

    def note_now() -> str:
        [latest] = [m for m in slack.messages.values() if m["thread_ts"] == pending.ts and "your request" in m["text"]]
        return latest["text"]

    bot.ctx.watcher.hot_tick(clock.step(5))
    assert "moving to `a10g-small`" in note_now(), note_now()
    hub.apply_requested_hardware("acme/chat")
    bot.ctx.watcher.hot_tick(clock.step(5))
    assert re.search(r"now running on `a10g-small` after \d+", note_now()), note_now()


def test_the_hardware_and_sleep_commands_say_what_the_hub_reports(make_bot, hub):
    bot = make_bot(SPACEOPS_APPROVAL_FREE_BELOW="1000")         # no approver needed here
    hub.add_space("acme/chat", hardware="t4-small", sleep=7200)
    seen = bot.command("/space sleep acme/chat 1h")
    assert "The Hub now reports `t4-small` ($0.40/h · $9.60/day); sleeps after 1 h idle." in seen["text"], seen
    assert "Not what" not in seen["text"]
    seen = bot.command("/space hw acme/chat t4-medium")
    assert "The Hub now reports `t4-medium` ($0.60/h · $14.40/day) requested, on `t4-small`" in seen["text"], seen


def test_a_restart_says_what_it_runs_on(bot, hub):
    hub.add_space("acme/chat", hardware="t4-small", sleep=3600)
    seen = bot.command("/space restart acme/chat")
    assert seen["text"].startswith("<@U1> restarted `acme/chat`: now building. The Hub now reports `t4-small` "
                                   "($0.40/h · $9.60/day); sleeps after 1 h idle."), seen["text"]
