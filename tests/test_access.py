"""Who may do what, where: channel scopes, private Spaces, the workspace boundary, guests and readers.
The decision is a pure function (checked exhaustively here); the scenarios run through signed HTTP."""

from __future__ import annotations

import itertools
import json


from bot.access.rules import LEVELS, Scope, Situation, decide, may_alert
from tests.test_alerts import Clock, tick

ADMIN = {"SPACEOPS_ADMINS": "UADM"}
SCOPED, READONLY, OTHER = "CSCOPED", "CREAD", "COTHER"


def writes(hub):
    return [(r.method, r.path) for r in hub.requests if r.method != "GET"]


def scope(bot, channel: str, pattern: str, level: str = "operate") -> str:
    return bot.command(f"scope <#{channel}|x> {pattern} {level}", user="UADM")["text"]


# ---------------------------------------------------------------- the pure decision, exhaustively

SCOPE_CASES = {"unscoped": (), "acme read": (Scope("acme", "read"),), "acme operate": (Scope("acme", "operate"),),
               "beta operate": (Scope("beta", "operate"),)}


def expected(need, role, scopes, private, shows, channel, same) -> bool:
    """The rule, written as a table of refusals rather than as the code's sequence."""
    if not same or LEVELS[role] < LEVELS[need]:
        return False
    covered = next((s for s in scopes if s.namespace == "acme"), None)
    if scopes and need != "none" and (covered is None or LEVELS[covered.level] < LEVELS[need]):
        return False
    visible = not private or channel.startswith("D") or covered is not None
    return not (shows and not visible)


CASES = list(itertools.product(("none", "read", "operate"), ("none", "read", "operate"), SCOPE_CASES, (False, True),
                               (False, True), ("C1", "D1"), (True, False)))


def test_decision_matrix_is_exhaustive_and_never_leaks():
    from tests.faults.conftest import tally

    leaks = 0
    for need, role, scope_name, private, shows, channel, same in CASES:
        scopes = SCOPE_CASES[scope_name]
        verdict = decide(Situation(need, role, channel, scopes, "acme", private, shows, same, "Acme"))
        assert verdict.allowed is expected(need, role, scopes, private, shows, channel, same), \
            (need, role, scope_name, private, shows, channel, same, verdict)
        assert verdict.allowed or verdict.reason
        if verdict.allowed and shows and private and channel == "C1" and not any(s.namespace == "acme" for s in scopes):
            leaks += 1
        if not same:
            assert "only takes commands from members of Acme" in verdict.reason
    assert leaks == 0 and len(CASES) == 576
    tally("access rule: need×role×scope×private×DM×team", tried=len(CASES))


def test_alerts_go_only_where_scope_and_privacy_allow():
    acme = (Scope("acme", "read"),)
    assert may_alert("C1", (), "acme", private=False)
    assert not may_alert("C1", (), "acme", private=True)
    assert may_alert("D1", (), "acme", private=True)
    assert may_alert("C1", acme, "acme", private=True)
    assert not may_alert("C1", acme, "beta", private=False)


# ---------------------------------------------------------------- /space scope


def test_admins_set_show_and_remove_scopes_and_they_are_audited(make_bot, hub):
    bot = make_bot(**ADMIN)
    seen = bot.command(f"scope <#{SCOPED}|ops> acme/* read", user="UMEM")
    assert "needs the admin role" in seen["text"]
    assert "scoped <#CSCOPED> to `acme/*` (read only)" in scope(bot, SCOPED, "acme/*", "read")
    assert "`beta/*`" in scope(bot, SCOPED, "beta/*")
    shown = bot.command(f"scope <#{SCOPED}|ops>", user="UMEM")["text"]
    assert "`acme/*`: read only" in shown and "`beta/*`: read and operate" in shown
    assert "removed `beta/*`" in bot.command(f"unscope <#{SCOPED}|ops> beta/*", user="UADM")["text"]
    assert "has no scope" in bot.command("scope")["text"]  # C1 itself
    actions = [(e.user, e.action, e.result) for e in bot.ctx.store.audit_entries()]
    assert ("UADM", "scope", "ok") in actions and ("UADM", "unscope", "ok") in actions
    assert ("UMEM", "scope.set", "refused: Setting a channel's scope needs the admin role, which you don't have. "
            "Admins: <@UADM>.") in actions
    assert hub.requests == []


def test_a_scoped_channel_names_only_its_namespaces_at_its_level(make_bot, hub):
    hub.add_space("acme/chat")
    hub.add_space("beta/api")
    bot = make_bot(**ADMIN)
    scope(bot, READONLY, "acme/*", "read")
    scope(bot, SCOPED, "acme/*", "operate")
    assert "is *running*" in bot.command("status acme/chat", channel=READONLY)["text"]
    seen = bot.command("restart acme/chat", channel=READONLY)
    assert "read-only for `acme/*`" in seen["text"]
    seen = bot.command("status beta/api", channel=SCOPED)
    assert "may only name Spaces of `acme/*` (operate)" in seen["text"]
    assert writes(hub) == []
    assert "restarted" in bot.command("restart acme/chat", channel=SCOPED)["text"]
    assert "restarted" in bot.command("restart beta/api", channel="C1")["text"]  # unscoped: as before
    assert writes(hub) == [("POST", "/api/spaces/acme/chat/restart"), ("POST", "/api/spaces/beta/api/restart")]
    # An admin's own role does not widen a channel's scope.
    assert "read-only" in bot.command("pause acme/chat", user="UADM", channel=READONLY)["text"]


def test_alert_buttons_follow_the_channel_scope(make_bot, hub, slack):
    hub.add_space("acme/chat", stage="PAUSED", hardware="cpu-basic")
    bot = make_bot(**ADMIN)
    scope(bot, READONLY, "acme/*", "read")
    answer = bot.click("alert:resume", "acme/chat", user="UMEM", channel=READONLY)
    seen = slack.wait(lambda: slack.responses(answer.response_id))
    assert "read-only" in seen[0]["text"] and writes(hub) == []


# ---------------------------------------------------------------- private Spaces


def seed_private(hub):
    hub.add_space("acme/secret", stage="RUNTIME_ERROR", hardware="t4-small", private=True,
                  error="KeyError: DB_PASSWORD=hunter2", variables={"DB_HOST": "10.0.0.7"})
    hub.add_space("acme/chat", variables={"MODEL": "gpt2"})


def test_private_details_only_in_scoped_channels_or_dms(make_bot, hub, slack):
    seed_private(hub)
    bot = make_bot(**ADMIN)
    scope(bot, SCOPED, "acme/*", "read")
    unscoped = [bot.command(text) for text in ("var ls acme/secret", "status acme/secret", "secret ls acme/secret",
                                               "audit acme/secret")]
    assert "is private" in unscoped[0]["text"] and "10.0.0.7" not in json.dumps(unscoped)
    assert "*crashed*" in unscoped[1]["text"] and "hidden here" in unscoped[1]["text"]
    assert "hunter2" not in json.dumps(unscoped) and "DB_HOST" not in json.dumps(unscoped)
    assert "is private" in unscoped[2]["text"] and "is private" in unscoped[3]["text"]
    assert "10.0.0.7" in bot.command("var ls acme/secret", channel=SCOPED)["text"]
    assert "hunter2" in bot.command("status acme/secret", channel=SCOPED)["text"]
    assert "10.0.0.7" in bot.command("var ls acme/secret", channel="D0DM")["text"]
    assert "gpt2" in bot.command("var ls acme/chat")["text"]  # public: as before
    assert writes(hub) == []


def test_a_watch_that_would_post_private_alerts_into_an_unscoped_channel_is_refused(make_bot, hub, slack):
    seed_private(hub)
    bot = make_bot(**ADMIN)
    seen = bot.command("watch acme/secret")
    assert "is private" in seen["text"] and "Nothing was watched" in seen["text"]
    seen = bot.command(f"watch acme/secret <#{OTHER}|other>", channel=SCOPED)
    assert "is private" in seen["text"]
    assert bot.ctx.watcher.store.load().watches == []
    scope(bot, SCOPED, "acme/*", "read")
    assert "watch" in bot.command("watch acme/secret", channel=SCOPED)["text"].lower()
    assert len(bot.ctx.watcher.store.load().watches) == 1


def test_alerts_of_private_spaces_and_their_logs_only_where_scoped(make_bot, hub, slack):
    from tests.faults.conftest import tally

    hub.add_space("acme/secret", hardware="t4-small", private=True)
    hub.add_space("acme/chat", hardware="t4-small")
    hub.logs["acme/secret"] = ["loading", "token=hunter2 rejected"]
    hub.logs["acme/chat"] = ["loading", "CUDA out of memory"]
    bot = make_bot(**ADMIN)
    scope(bot, SCOPED, "acme/*", "read")
    bot.command("watch acme/*")                      # unscoped C1: public Spaces only
    bot.command("watch acme/*", channel=SCOPED)     # scoped: everything, with logs
    clock = Clock()
    tick(bot, clock)
    hub.set_stage("acme/secret", "RUNTIME_ERROR", error="crash: hunter2")
    hub.set_stage("acme/chat", "RUNTIME_ERROR", error="CUDA out of memory")
    tick(bot, clock)
    in_c1 = json.dumps([p for p in slack.posts("C1")])
    in_scoped = json.dumps([p for p in slack.posts(SCOPED)])
    assert "acme/chat" in in_c1 and "CUDA out of memory" in in_c1  # public: logs on by default
    assert "acme/secret" not in in_c1 and "hunter2" not in in_c1
    assert "acme/secret" in in_scoped and "hunter2" in in_scoped
    tally("private alerts into an unscoped channel", tried=1, lost=int("hunter2" in in_c1))


def test_a_slow_moment_of_the_fast_redis_client_drops_no_alert_on_the_leader(make_bot, hub, slack):
    hub.add_space("acme/secret", hardware="t4-small", private=True)
    bot = make_bot(**ADMIN)
    scope(bot, SCOPED, "acme/*", "read")
    bot.command("watch acme/*", channel=SCOPED)
    clock = Clock()
    tick(bot, clock)
    # The 200 ms, no-retry client is for Slack's ack path; here every one of its calls fails, as in a slow
    # moment of Redis. The leader's work waits for Redis like the rest of it does.
    fast = bot.ctx.store.fast
    assert fast is not bot.ctx.store.redis
    fast.connection_pool.connection_kwargs["port"] = 1
    fast.connection_pool.reset()                                # new connections to a closed port
    hub.set_stage("acme/secret", "RUNTIME_ERROR", error="crash")
    tick(bot, clock)
    assert [p for p in slack.posts(SCOPED) if "acme/secret" in p["text"]]


# ---------------------------------------------------------------- workspace, guests, readers


def test_users_of_another_workspace_get_a_sentence_and_nothing_runs(make_bot, hub, slack):
    hub.add_space("acme/chat")
    slack.users["UEXT"] = {"team_id": "T9"}
    bot = make_bot(**ADMIN)
    for text in ("restart acme/chat", "status acme/chat", "help"):
        seen = bot.command(text, user="UEXT")
        assert "Space Ops only takes commands from members of Acme" in seen["text"], text
    assert hub.requests == []
    answer = bot.click("alert:restart", "acme/chat", user="UEXT")
    assert "members of Acme" in slack.wait(lambda: slack.responses(answer.response_id))[0]["text"]
    assert hub.requests == []
    allowed = make_bot(SPACEOPS_ALLOWED_TEAMS="T9", **ADMIN)
    assert "restarted" in allowed.command("restart acme/chat", user="UEXT")["text"]


def test_guests_are_read_only_unless_listed(make_bot, hub, slack):
    hub.add_space("acme/chat")
    slack.users["UGUEST"] = {"is_restricted": True}
    bot = make_bot(**ADMIN)
    assert "is *running*" in bot.command("status acme/chat", user="UGUEST")["text"]
    seen = bot.command("restart acme/chat", user="UGUEST")
    assert "Guests are read-only unless an admin lists them" in seen["text"]
    assert writes(hub) == []
    listed = make_bot(SPACEOPS_OPERATORS="UGUEST", **ADMIN)
    assert "restarted" in listed.command("restart acme/chat", user="UGUEST")["text"]


def test_readers_setting_limits_who_may_read(make_bot, hub, slack):
    hub.add_space("acme/chat")
    bot = make_bot(SPACEOPS_READERS="UREAD", SPACEOPS_OPERATORS="UOP", **ADMIN)
    assert "reader role" in bot.command("status acme/chat", user="UMEM")["text"]
    assert "reader role" in bot.command("restart acme/chat", user="UMEM")["text"]
    assert "/space status" in bot.command("help", user="UMEM")["text"]
    assert "is *running*" in bot.command("status acme/chat", user="UREAD")["text"]
    assert "is *running*" in bot.command("status acme/chat", user="UOP")["text"]  # operators read
    assert [r.path for r in hub.requests] == ["/api/spaces/acme/chat/runtime"] * 2


# ---------------------------------------------------------------- the Hub's casing


def test_watches_store_the_hubs_casing_and_match_batched_reads(make_bot, hub, slack):
    hub.add_space("acme/chat", hardware="t4-small")
    hub.add_space("acme/other", hardware="t4-small")
    bot = make_bot()
    assert "`acme/chat`" in bot.command("watch Acme/Chat")["text"]
    assert "`acme/*`" in bot.command("watch ACME/*", channel="C2")["text"]
    assert sorted(w.target for w in bot.ctx.watcher.store.load().watches) == ["acme/*", "acme/chat"]
    clock = Clock()
    tick(bot, clock)
    hub.set_stage("acme/chat", "RUNTIME_ERROR", error="boom")
    tick(bot, clock)
    assert len(slack.posts("C1")) == 1 and len(slack.posts("C2")) == 1
    assert "Stopped watching" in bot.command("unwatch ACME/chat")["text"] or \
        not [w for w in bot.ctx.watcher.store.load().watches if w.channel == "C1"]


def test_the_secret_form_follows_the_same_rules(make_bot, hub, slack):
    hub.add_space("acme/chat")
    slack.users["UEXT"] = {"team_id": "T9"}
    bot = make_bot(**ADMIN)
    scope(bot, READONLY, "acme/*", "read")
    assert "members of Acme" in bot.command("secret set acme/chat API_KEY", user="UEXT")["text"]
    assert "read-only" in bot.command("secret set acme/chat API_KEY", channel=READONLY)["text"]
    assert slack.of("views.open") == []
    # A forged submission from the read-only channel is refused too.
    meta = json.dumps({"space": "acme/chat", "key": "API_KEY", "channel": READONLY,
                       "response_url": f"{slack.base}/respond/forged"})
    bot.submit_view("secret_set", {"value": ("value", "v"), "description": ("description", "")}, meta)
    assert "read-only" in slack.wait(lambda: slack.responses("forged"))[0]["text"]
    assert writes(hub) == []
