"""Who may do what: every command × every role, as a table. A refusal never reaches the Hub.

Roles: a plain member, an operator, an approver (not an operator), an admin, and "outsider": the admin
acting on a Space outside SPACEOPS_NAMESPACES (nobody may touch those).
"""

from __future__ import annotations

import itertools
import json
import time

import pytest

from tests.faults.conftest import figure, tally

ENV = {"SPACEOPS_ADMINS": "UADM", "SPACEOPS_OPERATORS": "UOP", "SPACEOPS_APPROVERS": "UAPP",
       "SPACEOPS_NAMESPACES": "acme"}
USERS = {"member": "UMEM", "operator": "UOP", "approver": "UAPP", "admin": "UADM", "outsider": "UADM"}
ROLES = tuple(USERS)
EVERYONE = dict.fromkeys(ROLES, True)
OPERATORS = {"member": False, "operator": True, "approver": False, "admin": True, "outsider": False}
IN_NAMESPACE = {**EVERYONE, "outsider": False}
REFUSALS = ("needs the operator role", "is not set up to touch", "needs the approver role",
            "can't approve your own", "Only the requester or an admin")

# command (SPACE stands for acme/chat, or evil/app for the outsider) → (who may, Hub write it makes)
MATRIX = {
    "help": (EVERYONE, None),
    "flavors": (EVERYONE, None),
    "status SPACE": (IN_NAMESPACE, None),
    "var ls SPACE": (IN_NAMESPACE, None),
    "secret ls SPACE": (IN_NAMESPACE, None),
    "audit SPACE": (IN_NAMESPACE, None),
    "audit": (EVERYONE, None),
    "approvals": (EVERYONE, None),
    "watches": (EVERYONE, None),
    "logs SPACE": (IN_NAMESPACE, None),
    "volumes SPACE": (IN_NAMESPACE, None),
    "dev SPACE off": (OPERATORS, ("POST", "dev-mode")),
    "restart SPACE": (OPERATORS, ("POST", "restart")),
    "restart SPACE --factory": (OPERATORS, ("POST", "restart")),
    "resume SPACE": (OPERATORS, ("POST", "restart")),
    "pause SPACE": (OPERATORS, ("POST", "pause")),
    "hw SPACE cpu-basic": (OPERATORS, ("POST", "hardware")),
    "hw SPACE a100-large": (OPERATORS, None),  # an upgrade: a request for approval, no Hub write
    "sleep SPACE 30m": (OPERATORS, ("POST", "sleeptime")),  # shorter: no approval
    "sleep SPACE never": (OPERATORS, None),  # longer on paid hardware: a request for approval
    "var set SPACE K=v": (OPERATORS, ("POST", "variables")),
    "var rm SPACE MODEL": (OPERATORS, ("DELETE", "variables")),
    "secret set SPACE API_KEY": (OPERATORS, None),  # opens the modal; its submission is checked below
    "secret rm SPACE TOKEN": (OPERATORS, ("DELETE", "secrets")),
    "duplicate SPACE acme/copy": ({**OPERATORS, "outsider": False}, ("POST", "duplicate")),
    "duplicate SPACE acme/big --hw a100-large": ({**OPERATORS, "outsider": False}, None),
    "duplicate acme/chat evil/copy": ({r: False for r in ROLES}, None),  # a copy outside the namespaces
    "watch SPACE": (OPERATORS, None),
    "unwatch SPACE": (OPERATORS, None),
    "mute SPACE 1h": (OPERATORS, None),
    "unmute SPACE": (OPERATORS, None),
}
CASES = [(command, role) for command in MATRIX for role in ROLES]


def seed(hub) -> None:
    for name in ("acme/chat", "evil/app"):
        hub.add_space(name, hardware="t4-small", sleep=3600, variables={"MODEL": "x"}, secrets={"TOKEN": "x"})


def hub_writes(hub) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in hub.requests if r.method != "GET"]


@pytest.fixture
def matrix_bot(make_bot):
    return make_bot(**ENV)


@pytest.mark.slow
@pytest.mark.parametrize("command, role", CASES, ids=[f"{c} × {r}" for c, r in CASES])
def test_command_by_role(matrix_bot, hub, slack, command, role):
    seed(hub)
    space = "evil/app" if role == "outsider" else "acme/chat"
    text = command.replace("SPACE", space)
    allowed, write = MATRIX[command][0][role], MATRIX[command][1]
    seen = matrix_bot.command(text, user=USERS[role])
    refused = any(words in seen["text"] for words in REFUSALS)
    assert refused is not allowed, (text, role, seen["text"])
    if command.startswith("secret set"):
        assert bool(slack.of("views.open")) is allowed
    if command.startswith(("hw SPACE a100", "duplicate SPACE acme/big")):
        approvals = [p for p in slack.posts() if "approval:approve" in json.dumps(p.get("blocks"))]
        assert len(approvals) == int(allowed)
    time.sleep(0.05)
    writes = hub_writes(hub)
    if allowed and write:
        assert writes == [(write[0], f"/api/spaces/{space}/{write[1]}")], writes
    else:
        assert writes == [], (text, role, writes)
    tally("authorization matrix (command × role)")


@pytest.mark.parametrize("role", ROLES)
def test_secret_submission_by_role(matrix_bot, hub, slack, role):
    """The modal's submission is checked again: a forged view_submission can't skip the command's check."""
    seed(hub)
    space = "evil/app" if role == "outsider" else "acme/chat"
    meta = json.dumps({"space": space, "key": "API_KEY", "channel": "C1",
                       "response_url": f"{slack.base}/respond/sub-{role}"})
    answer = matrix_bot.submit_view("secret_set", {"value": ("value", "v"), "description": ("description", "")},
                                    meta, user=USERS[role])
    assert answer.status == 200
    # A refusal answers privately; an allowed change is announced in C1 by the bot itself (followed).
    text = slack.wait(lambda: slack.responses(f"sub-{role}") or slack.posts("C1"))[0]["text"]
    allowed = OPERATORS[role]
    assert any(words in text for words in REFUSALS) is not allowed, text
    assert hub_writes(hub) == ([("POST", f"/api/spaces/{space}/secrets")] if allowed else [])
    tally("authorization matrix (command × role)")


DECIDERS = {"member": False, "operator": False, "approver": True, "admin": True}  # operator is the requester


@pytest.mark.parametrize("role", DECIDERS)
@pytest.mark.parametrize("action", ["approve", "deny"])
def test_approval_click_by_role(matrix_bot, hub, slack, role, action):
    from tests.test_approvals import ask, click

    seed(hub)
    pending = ask(matrix_bot, slack, "hw acme/chat a100-large", user="UOP")
    text = click(matrix_bot, slack, pending, USERS[role], action=action)
    allowed = DECIDERS[role]
    assert any(words in text for words in REFUSALS) is not allowed, text
    expected = [("POST", "/api/spaces/acme/chat/hardware")] if allowed and action == "approve" else []
    assert hub_writes(hub) == expected
    tally("authorization matrix (command × role)")


CANCELLERS = {"member": False, "operator": True, "approver": False, "admin": True}  # operator is the requester


@pytest.mark.parametrize("role", CANCELLERS)
def test_approvals_cancel_by_role(matrix_bot, hub, slack, role):
    from tests.test_approvals import ask

    seed(hub)
    pending = ask(matrix_bot, slack, "hw acme/chat a100-large", user="UOP")
    text = matrix_bot.command(f"approvals cancel {pending.id}", user=USERS[role])["text"]
    allowed = CANCELLERS[role]
    assert any(words in text for words in REFUSALS) is not allowed, text
    listed = matrix_bot.command("approvals", user="UADM")["text"]
    assert (pending.id in listed) is not allowed
    assert hub_writes(hub) == []
    tally("authorization matrix (command × role)")


# ---------------------------------------------------------------- command × role × channel scope × privacy × workspace

GRID_ENV = {"SPACEOPS_ADMINS": "UADM,UADMX", "SPACEOPS_OPERATORS": "UOP,UOPX", "SPACEOPS_APPROVERS": "UAPP"}
GRID_ROLES = {"member": ("UMEM", "read"), "operator": ("UOP", "operate"), "admin": ("UADM", "operate"),
              "guest": ("UGST", "read")}
# channel → the scope an admin gives it (None: unscoped, SPACEOPS_NAMESPACES applies)
GRID_CHANNELS = {"unscoped": ("C1", None), "acme read": ("CREAD", "read"), "acme operate": ("COPS", "operate"),
                 "beta operate": ("CBETA", "beta")}
# command → (role level it needs, scope level it needs, write it makes, shows private details)
GRID_COMMANDS = {
    "status SPACE": ("read", "read", None, False),
    "var ls SPACE": ("read", "read", None, True),
    "restart SPACE": ("operate", "operate", ("POST", "restart"), False),
    "var set SPACE K=v": ("operate", "operate", ("POST", "variables"), False),
    "hw SPACE a100-large": ("operate", "operate", None, False),  # a request for approval
    "watch SPACE": ("operate", "read", None, True),
}
GRID_REFUSALS = ("needs the operator role", "only takes commands from members", "read-only for",
                 "may only name Spaces of", "is private:", "reader role")
SECRETS = ("ERRSECRET", "VARSECRET")
LEVEL = {"none": 0, "read": 1, "operate": 2}


def grid_expected(command: str, level: str, channel_scope: str | None, private: bool, same: bool) -> bool:
    """The rule as a table: role ∩ channel scope, private details only where the namespace is in scope."""
    need, scope_need, _, shows = GRID_COMMANDS[command]
    if not same or LEVEL[level] < LEVEL[need]:
        return False
    covered = channel_scope in ("read", "operate")
    if channel_scope is not None and (not covered or LEVEL[channel_scope] < LEVEL[scope_need]):
        return False
    return not (shows and private and not covered)


@pytest.mark.slow
def test_grid_command_role_scope_privacy_workspace(make_bot, hub, slack, redis_client):
    """Every command × role × channel scope × public/private Space × same/other workspace, through signed HTTP:
    refusals reach the Hub with no write, allowed changes with exactly theirs, and no private detail ever
    shows in a channel not scoped to its namespace."""
    for name in ("acme/pub", "acme/priv"):
        hub.add_space(name, stage="RUNTIME_ERROR", hardware="t4-small", sleep=3600, private=name.endswith("priv"),
                      error=f"ERRSECRET {name}", variables={"DB": f"VARSECRET {name}"})
    slack.users.update({"UGST": {"is_restricted": True}, "UGSTX": {"is_restricted": True, "team_id": "T9"},
                        **{f"{u}X": {"team_id": "T9"} for u in ("UMEM", "UOP", "UADM")}})
    bot = make_bot(**GRID_ENV)
    for channel, level in GRID_CHANNELS.values():
        if level:
            bot.command(f"scope <#{channel}|x> {'beta' if level == 'beta' else 'acme'}/* "
                        f"{'operate' if level == 'beta' else level}", user="UADM")
    cases = leaks = 0
    for command, role, channel_name, private, same in itertools.product(
            GRID_COMMANDS, GRID_ROLES, GRID_CHANNELS, (False, True), (True, False)):
        user, level = GRID_ROLES[role]
        user = user if same else user + "X"
        channel, channel_scope = GRID_CHANNELS[channel_name]
        space = "acme/priv" if private else "acme/pub"
        hub.requests.clear()
        seen = bot.command(command.replace("SPACE", space), user=user, channel=channel)
        text = json.dumps(seen)
        allowed = grid_expected(command, level, None if channel_scope is None else
                                ("none" if channel_scope == "beta" else channel_scope), private, same)
        case = (command, role, channel_name, "private" if private else "public", "same" if same else "other")
        refused = any(words in seen["text"] for words in GRID_REFUSALS)
        assert refused is not allowed, (case, seen["text"])
        write = GRID_COMMANDS[command][2]
        expected_writes = [(write[0], f"/api/spaces/{space}/{write[1]}")] if allowed and write else []
        assert hub_writes(hub) == expected_writes, (case, hub_writes(hub))
        if not same:
            assert hub.requests == [], case  # outsiders: nothing reaches the Hub at all
        if private and channel_scope not in ("read", "operate") and any(s in text for s in SECRETS):
            leaks += 1
        if command == "watch SPACE" and allowed:
            bot.ctx.watcher.store.remove(channel, space)
        cases += 1
        tally("authz grid: command×role×scope×private×team")
    assert leaks == 0
    tally("private details in an unscoped channel", tried=cases, lost=leaks)
    print(f"authorization grid: {cases} cases, {leaks} leaks")
    assert cases == len(GRID_COMMANDS) * len(GRID_ROLES) * len(GRID_CHANNELS) * 2 * 2


# ---------------------------------------------------------------- surface × action × role × scope × privacy × workspace

SURFACE_TABLE: dict[tuple[str, str], list[int]] = {}  # (surface, action) → [cases, private details shown, bad changes]



def print_grid(first: str, table: dict, heads: tuple[str, str]) -> list[int]:
    """Print a grid's (surface, action) → (cases, bad, bad) table with its totals, and hand each line to the
    fault table's figures; the totals."""
    wide = [len(h) + 1 for h in heads]
    lines = [f"{first:<28} {'action':<8} {'cases':>6} {heads[0]:>{wide[0]}} {heads[1]:>{wide[1]}}"]
    for (surface, action), (cases, one, two) in table.items():
        lines.append(f"{surface:<28} {action:<8} {cases:>6} {one:>{wide[0]}} {two:>{wide[1]}}")
    total = [sum(v[i] for v in table.values()) for i in range(3)]
    lines.append(f"{'all':<28} {'':<8} {total[0]:>6} {total[1]:>{wide[0]}} {total[2]:>{wide[1]}}")
    print("\n" + "\n".join(lines))
    for line in lines:
        figure(line)
    return total

def _row(surface: str, action: str, leaked: bool, bad_change: bool) -> None:
    row = SURFACE_TABLE.setdefault((surface, action), [0, 0, 0])
    row[0] += 1
    row[1] += int(leaked)
    row[2] += int(bad_change)


def _said(slack, since: int) -> str:
    with slack.lock:
        return json.dumps([c.body for c in slack.calls[since:] if c.method not in ("users.info", "auth.test")],
                          ensure_ascii=False)


def _wait_said(slack, since: int, timeout: float = 6.0) -> str:
    slack.wait(lambda: [c for c in slack.calls[since:] if c.method.startswith("respond/")
                        or c.method in ("chat.postMessage", "views.publish")], timeout)
    time.sleep(0.05)
    return _said(slack, since)


def _click(bot, slack, action_id: str, value: str, user: str, team: str, channel: str = "", ts: str = "1.0",
           home: bool = False) -> None:
    from tests.harness import _ids

    rid = f"r{next(_ids)}"
    payload = {"type": "block_actions", "team": {"id": "T1"}, "user": {"id": user, "team_id": team},
               "api_app_id": "A1", "token": "legacy", "trigger_id": f"trig.{rid}",
               "response_url": f"{slack.base}/respond/{rid}",
               "actions": [{"type": "button", "action_id": action_id, "block_id": "b", "value": value,
                            "action_ts": "1"}]}
    if home:
        payload["container"] = {"type": "view", "view_id": f"V{user}"}
        payload["view"] = {"id": f"V{user}", "type": "home", "blocks": []}
    else:
        payload["container"] = {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False}
        payload["channel"] = {"id": channel}
        payload["message"] = {"type": "message", "ts": ts, "text": "", "blocks": []}
    assert bot.interact(payload).status == 200


@pytest.mark.slow
def test_grid_surface_action_role_scope_privacy_workspace(make_bot, hub, slack, redis_client):
    """Every surface (slash command, alert button, approval message, App Home view and buttons, reminder
    button, follow-through announcement, digest, budget alert and its button) × action × role × channel
    scope × public/private × workspace, through signed HTTP: each follows the one rule (bot/access gate)."""
    from bot.alerts.followthrough import FOLLOWS
    from bot.alerts.words import ALERT_ACTIONS
    from bot.fleet.budgets import BUDGET_OP
    from bot.fleet.words import BUDGET_ACTIONS, HOME_ACTIONS
    from bot.schedules.store import Timed
    from bot.schedules.words import EXTEND_ACTION
    from tests.test_alerts import Clock
    from tests.test_approvals import ask

    spaces = ("acme/pub", "acme/priv")
    for name in spaces:
        hub.add_space(name, stage="RUNTIME_ERROR", hardware="t4-small", sleep=3600, private=name.endswith("priv"),
                      error=f"ERRSECRET {name}", variables={"DB": f"VARSECRET {name}"})
        hub.logs[name] = [f"LOGSECRET {name}"]
    slack.users.update({"UGST": {"is_restricted": True}, "UGSTX": {"is_restricted": True, "team_id": "T9"},
                        **{f"{u}X": {"team_id": "T9"} for u in ("UMEM", "UOP", "UADM")}})
    bot = make_bot(**GRID_ENV)
    for channel, level in GRID_CHANNELS.values():
        if level:
            bot.command(f"scope <#{channel}|x> {'beta' if level == 'beta' else 'acme'}/* "
                        f"{'operate' if level == 'beta' else level}", user="UADM")
    clock = Clock()
    bot.ctx.watcher.follow.clock = lambda: clock.now
    bot.ctx.watcher.tick(clock.step(0))

    def who(role, same):
        user, level = GRID_ROLES[role]
        return (user if same else user + "X"), level, ("T1" if same else "T9")

    def scope_of(channel_name):
        level = GRID_CHANNELS[channel_name][1]
        return None if level is None else ("none" if level == "beta" else level)

    def secret_of(space):
        return f"ERRSECRET {space}", f"VARSECRET {space}", f"LOGSECRET {space}"

    def writes():
        return [(r.method, r.path) for r in hub.requests if r.method != "GET"]

    everything = list(itertools.product(GRID_ROLES, GRID_CHANNELS, (False, True), (True, False)))

    # -- slash command: read, reveal (variables), change
    for command, action in (("status SPACE", "read"), ("var ls SPACE", "reveal"), ("restart SPACE", "change")):
        for role, channel_name, private, same in everything:
            user, level, _ = who(role, same)
            channel, _ = GRID_CHANNELS[channel_name]
            space = spaces[private]
            hub.requests.clear()
            seen = bot.command(command.replace("SPACE", space), user=user, channel=channel)
            allowed = grid_expected(command, level, scope_of(channel_name), private, same)
            refused = any(words in seen["text"] for words in GRID_REFUSALS)
            assert refused is not allowed, (command, role, channel_name, private, same, seen["text"])
            leaked = private and scope_of(channel_name) not in ("read", "operate") and \
                any(s in json.dumps(seen) for s in secret_of(space))
            _row("slash command", action, leaked, bool(writes()) and not allowed)
            hub.set_stage(space, "RUNTIME_ERROR", error=f"ERRSECRET {space}")

    # -- alert button (Restart) and budget alert button (Pause): changes, in the alert's channel
    for surface, action_id, write in (("alert button", ALERT_ACTIONS["restart"], "restart"),
                                      ("budget alert", BUDGET_ACTIONS["pause"], "pause")):
        for role, channel_name, private, same in everything:
            user, level, team = who(role, same)
            channel, _ = GRID_CHANNELS[channel_name]
            space = spaces[private]
            hub.requests.clear()
            since = len(slack.calls)
            _click(bot, slack, action_id, space, user, team, channel)
            said = _wait_said(slack, since)
            allowed = grid_expected("restart SPACE", level, scope_of(channel_name), private, same)
            refused = any(words in said for words in GRID_REFUSALS)
            assert refused is not allowed, (surface, role, channel_name, private, same, said[:300])
            made = [w for w in writes() if w[1].endswith(write)]
            leaked = private and scope_of(channel_name) not in ("read", "operate") and \
                any(s in said for s in secret_of(space))
            _row(surface, "change", leaked, bool(made) and not allowed)
            hub.set_stage(space, "RUNTIME_ERROR", error=f"ERRSECRET {space}")

    # -- reminder button (Extend 1 h on a cheaper window: no approval), in the reminder's channel
    timed = {}
    for space in spaces:
        assert "until" in bot.command(f"hw {space} cpu-basic --for 20m", user="UADM", channel="C1")["text"]
        timed[space] = next(r for r in bot.ctx.schedules.store.all() if isinstance(r, Timed) and r.space == space)
    for role, channel_name, private, same in everything:
        user, level, team = who(role, same)
        channel, _ = GRID_CHANNELS[channel_name]
        space = spaces[private]
        before = bot.ctx.schedules.store.get(timed[space].id).ends_at
        since = len(slack.calls)
        _click(bot, slack, EXTEND_ACTION, timed[space].id, user, team, channel)
        said = _wait_said(slack, since)
        allowed = grid_expected("restart SPACE", level, scope_of(channel_name), private, same)
        refused = any(words in said for words in GRID_REFUSALS)
        assert refused is not allowed, ("reminder", role, channel_name, private, same, said[:300])
        changed = bot.ctx.schedules.store.get(timed[space].id).ends_at != before
        _row("reminder button", "change", False, changed and not allowed)

    # -- approval message (Approve), in the request's channel (asked where the requester may change it)
    for role, channel_name, private, same in itertools.product(GRID_ROLES, ("unscoped", "acme operate"),
                                                               (False, True), (True, False)):
        user, level, team = who(role, same)
        channel, _ = GRID_CHANNELS[channel_name]
        space = spaces[private]
        pending = ask(bot, slack, f"hw {space} a100-large", user="UOP", channel=channel)
        hub.requests.clear()
        since = len(slack.calls)
        _click(bot, slack, "approval:approve", pending.id, user, team, pending.channel, pending.ts)
        said = _wait_said(slack, since)
        allowed = same and role == "admin"  # the only approver here other than the requester
        made = [w for w in writes() if w[1].endswith("hardware")]
        assert bool(made) is allowed, ("approval", role, channel_name, private, same, said[:300])
        _row("approval message", "decide", False, bool(made) and not allowed)
        if not allowed:
            bot.command(f"approvals cancel {pending.id}", user="UADM", channel=channel)
        else:
            hub.set_stage(space, "RUNTIME_ERROR", error=f"ERRSECRET {space}", hardware="t4-small")
            hub.spaces[space]["requested"] = "t4-small"  # back where it was, for the next case

    # -- App Home: the view (what each viewer reads) and its buttons (Restart)
    from tests.test_fleet import open_home

    assert "Watching" in bot.command("watch acme/*", user="UADM", channel="COPS")["text"]
    bot.ctx.watcher.tick(clock.step(60))
    for role, same in itertools.product(GRID_ROLES, (True, False)):
        user, level, team = who(role, same)
        view = json.dumps(open_home(bot, slack, user))
        for private in (False, True):
            space = spaces[private]
            shown = space in view
            assert shown is same, ("home", role, same, space)
            # The Home is the viewer's own (DM-like) place: details only for viewers who may read.
            leaked = not same and any(s in view for s in secret_of(space))
            _row("App Home", "view", leaked, False)
            hub.requests.clear()
            since = len(slack.calls)
            _click(bot, slack, HOME_ACTIONS["restart"], space, user, team, home=True)
            slack.wait(lambda: [c for c in slack.calls[since:] if c.method == "chat.postMessage"
                                and c.body.get("channel") == user], 6)
            allowed = same and level == "operate"
            made = [w for w in writes() if w[1].endswith("restart")]
            assert bool(made) is allowed, ("home button", role, same, space, _said(slack, since)[:300])
            _row("App Home", "button", False, bool(made) and not allowed)
            hub.set_stage(space, "RUNTIME_ERROR", error=f"ERRSECRET {space}")

    # -- follow-through announcement: a change made where it may be, then a crash; what the channel reads
    for channel_name, private in itertools.product(("unscoped", "acme operate"), (False, True)):
        channel, _ = GRID_CHANNELS[channel_name]
        space = spaces[private]
        hub.set_stage(space, "RUNNING")
        bot.ctx.watcher.tick(clock.step(60))
        redis_client.delete(FOLLOWS)  # the grid's earlier restarts are followed too: only this one now
        seen = bot.command(f"restart {space}", user="UADM", channel=channel)
        assert seen["via"] == "chat.postMessage", seen
        deadline = time.monotonic() + 5
        while bot.ctx.watcher.follow.get(space) is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        ts = bot.ctx.watcher.follow.get(space).ts
        hub.set_stage(space, "BUILDING")
        bot.ctx.watcher.hot_tick(clock.step(5))
        hub.set_stage(space, "RUNTIME_ERROR", error=f"ERRSECRET {space}")
        bot.ctx.watcher.hot_tick(clock.step(35))
        [message] = slack.wait(lambda: [m for (c, t), m in slack.messages.items() if (c, t) == (channel, ts)
                                        and "crashed" in m["text"]])
        text = json.dumps(message, ensure_ascii=False)
        revealed = any(s in text for s in secret_of(space))
        may = not private or channel_name == "acme operate"
        assert revealed is may, (channel_name, space, text[:300])
        _row("follow-through announcement", "reveal", revealed and not may, False)

    # -- digest and budget alert: what a channel is shown of the Spaces it covers
    for channel_name in ("unscoped", "acme read", "acme operate"):
        channel, _ = GRID_CHANNELS[channel_name]
        if channel != "COPS":
            assert "Watching" in bot.command("watch acme/*", user="UADM", channel=channel)["text"]
    bot.ctx.watcher.tick(clock.step(60))
    config = {"period": "daily", "time": "09:00", "tz": "UTC"}
    for channel_name in ("unscoped", "acme read", "acme operate"):
        channel, _ = GRID_CHANNELS[channel_name]
        since = len(slack.calls)
        bot.ctx.fleet.post_digest(channel, config, clock.now, clock.now + 60)
        digest = _said(slack, since)
        payload = json.dumps({"namespace": "acme", "threshold": "80", "amount": 10.0, "spent": 9.0,
                              "projected": 12.0, "top": [["acme/priv", 5.0], ["acme/pub", 4.0]], "first": None})
        since = len(slack.calls)
        with bot.ctx.watcher.deliveries.delivering(f"budget:acme:grid:{channel}"):  # as the outbox delivers it
            bot.ctx.watcher.outbox.handlers[BUDGET_OP](channel, payload)
        budget = _said(slack, since)
        for private in (False, True):
            space = spaces[private]
            may = not private or channel_name != "unscoped"
            shown = f"ERRSECRET {space}" in digest
            assert shown is may, ("digest", channel_name, space, digest[:300])
            _row("digest", "reveal", shown and not may, False)
            named = space in budget
            assert named is may, ("budget alert", channel_name, space, budget[:300])
            _row("budget alert", "reveal", named and not may, False)

    total = print_grid("surface", SURFACE_TABLE, ("private shown", "changes by who may not"))
    tally("authz grid: surface×action×role×scope×private×team", tried=total[0], lost=total[1] + total[2])
    assert total[1] == 0 and total[2] == 0


# ---------------------------------------------------------------- link preview and workflow step × role × scope × privacy × workspace

@pytest.mark.slow
def test_grid_link_preview_and_workflow_step(make_bot, hub, slack, redis_client):
    """A pasted link (link_shared → chat.unfurl) and a Workflow Builder step (function_executed → Restart)
    × role × channel scope × public/private × workspace: a preview shows exactly where `status` may show
    private details (elsewhere no card at all); a step acts exactly where the command would, and fails
    with its sentence elsewhere."""
    from tests.harness import _ids

    spaces = ("acme/pub", "acme/priv")
    for name in spaces:
        hub.add_space(name, stage="RUNTIME_ERROR", hardware="t4-small", private=name.endswith("priv"),
                      error=f"ERRSECRET {name}")
    slack.users.update({"UGST": {"is_restricted": True}, "UGSTX": {"is_restricted": True, "team_id": "T9"},
                        **{f"{u}X": {"team_id": "T9"} for u in ("UMEM", "UOP", "UADM")}})
    bot = make_bot(**GRID_ENV)
    for channel, level in GRID_CHANNELS.values():
        if level:
            bot.command(f"scope <#{channel}|x> {'beta' if level == 'beta' else 'acme'}/* "
                        f"{'operate' if level == 'beta' else level}", user="UADM")

    def event(inner: dict, team: str) -> None:
        body = {"token": "legacy", "team_id": team, "api_app_id": "A1", "type": "event_callback",
                "event_id": f"Ev{next(_ids)}", "event_time": int(time.time()), "event": inner}
        assert bot.post(json.dumps(body).encode(), "application/json").status == 200

    table = {"link preview": [0, 0, 0], "workflow step": [0, 0, 0]}  # cases, private shown, bad changes
    for role, channel_name, private, same in itertools.product(GRID_ROLES, GRID_CHANNELS, (False, True),
                                                               (True, False)):
        user, level = GRID_ROLES[role]
        user, team = (user, "T1") if same else (user + "X", "T9")
        channel, scope = GRID_CHANNELS[channel_name]
        scope = None if scope is None else ("none" if scope == "beta" else scope)
        space = spaces[private]
        covered = scope in ("read", "operate")
        # -- link preview: what `status` may show here, private details included ("var ls" has that rule)
        url = f"https://huggingface.co/spaces/{space}"
        ts = f"{next(_ids)}.7"
        slack.share(channel, ts, [url])
        hub.requests.clear()
        event({"type": "link_shared", "channel": channel, "user": user, "message_ts": ts,
               "links": [{"url": url, "domain": "huggingface.co"}]}, team)
        assert bot.ctx.pool.wait_idle(6)
        card = slack.unfurled.get((channel, ts))
        may = grid_expected("var ls SPACE", level, scope, private, same)
        assert bool(card) is may, ("preview", role, channel_name, private, same, card)
        leaked = bool(card) and private and not covered
        table["link preview"][0] += 1
        table["link preview"][1] += int(leaked)
        table["link preview"][2] += int(any(r.method != "GET" for r in hub.requests))
        # -- workflow step (Restart), run by this user in this channel
        execution = f"Fx{next(_ids)}"
        slack.execute(execution)
        hub.requests.clear()
        event({"type": "function_executed", "function": {"callback_id": "space_restart"},
               "function_execution_id": execution, "event_ts": "1",
               "inputs": {"space": space, "user": user, "channel": channel}}, team)
        done = slack.wait(lambda: slack.executions[execution]["state"] != "running" and slack.executions[execution])
        may = grid_expected("restart SPACE", level, scope, private, same)
        assert done and (done["state"] == "completed") is may, ("step", role, channel_name, private, same, done)
        if not may:
            assert any(words in done["error"] for words in GRID_REFUSALS), done
        made = [r for r in hub.requests if r.method != "GET"]
        table["workflow step"][0] += 1
        table["workflow step"][1] += int(not covered and private and "ERRSECRET" in json.dumps(done))
        table["workflow step"][2] += int(bool(made) and not may)
        hub.set_stage(space, "RUNTIME_ERROR", error=f"ERRSECRET {space}")
    for surface, (cases, leaks, bad) in table.items():
        figure(f"{surface:<28} {'':<8} {cases:>6} {leaks:>14} {bad:>23}")
        assert leaks == 0 and bad == 0, (surface, leaks, bad)
    tally("authz grid: preview/step×role×scope×private×team", tried=sum(v[0] for v in table.values()),
          lost=sum(v[1] + v[2] for v in table.values()))


# ---------------------------------------------------------------- Hub role × mode × surface × action (SPACEOPS_ROLES_FROM)

# The oracle, written from the words, not from bot/access/hubroles.py: what each Hub standing in
# `acme` may do there (read, operate, approve, admin); an unlinked member reads public Spaces only.
HUB_MAY = {"read": {"read"}, "contributor": {"read"}, "write": {"read", "operate"},
           "admin": {"read", "operate", "approve", "admin"}, "no_access": set(), "sso pending": set(),
           "unlinked": set()}
# Slack side: "listed" members are in SPACEOPS_OPERATORS, _APPROVERS and _ADMINS; "member" in none.
SLACK_MAY = {"listed": {"read", "operate", "approve", "admin"}, "member": {"read"}}
HUB_LINKS = {"read": {"acme": "read"}, "contributor": {"acme": "contributor"}, "write": {"acme": "write"},
             "admin": {"acme": "admin"}, "no_access": {"acme": "no_access"}, "sso pending": {"acme": "write"},
             "unlinked": None}


def hub_oracle(mode: str, slack_kind: str, hub_role: str, action: str, private: bool) -> bool:
    slack_ok = action in SLACK_MAY[slack_kind]
    hub_ok = action in HUB_MAY[hub_role] or (hub_role == "unlinked" and action == "read" and not private)
    return {"slack": slack_ok, "hub": hub_ok, "both": slack_ok and hub_ok}[mode]


def test_grid_hub_role_by_mode_over_surfaces(make_bot, hub, slack, redis_client):
    """Hub role (read / contributor / write / admin / no_access / unlinked / SSO pending) × Slack lists
    (listed / not) × mode (slack, hub, both) × surface (slash command, alert button, App Home button,
    workflow step, link preview, approval message, admin command) × action, through signed HTTP: every
    grant matches the oracle above, and a refusal reaches the Hub with no write."""
    from bot.alerts.words import ALERT_ACTIONS
    from bot.fleet.words import HOME_ACTIONS
    from bot.signin.links import HubLink, Links
    from tests.harness import _ids
    from tests.test_approvals import ask

    spaces = {False: "acme/pub", True: "acme/priv"}
    for name in spaces.values():
        hub.add_space(name, hardware="t4-small", sleep=3600, private=name.endswith("priv"))
    users = {(kind, role): f"UH{i}{j}" for i, kind in enumerate(SLACK_MAY) for j, role in enumerate(HUB_MAY)}
    listed = ",".join(u for (kind, _), u in users.items() if kind == "listed") + ",URQ"
    table: dict[tuple[str, str], list[int]] = {}  # (surface, action) → [cases, wrong grants, wrong refusals]
    counted = 0

    def event(bot, inner: dict) -> None:
        body = {"token": "legacy", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
                "event_id": f"Ev{next(_ids)}", "event_time": int(time.time()), "event": inner}
        assert bot.post(json.dumps(body).encode(), "application/json").status == 200

    def restarted(space: str) -> bool:
        return ("POST", f"/api/spaces/{space}/restart") in hub_writes(hub)

    for mode in ("slack", "hub", "both"):
        bot = make_bot(SPACEOPS_ROLES_FROM=mode, SPACEOPS_OPERATORS=listed, SPACEOPS_APPROVERS=listed,
                       SPACEOPS_ADMINS=listed,  # hub and both need the sign-in tokens' key to start
                       SPACEOPS_SECRET_KEY="hBVJr8Jd1qzYcl5kU3c6XbA4rZLfPpwdX0hm2eTKMtQ=")
        links = Links(bot.ctx.store.redis)
        now = bot.ctx.store.clock()
        for (kind, role), user in users.items():
            if HUB_LINKS[role] is not None:
                links.put(HubLink(user, user.lower(), HUB_LINKS[role], linked_at=now, roles_at=now,
                                  restricted=("acme",) if role == "sso pending" else ()))
        links.put(HubLink("URQ", "requester", {"acme": "write"}, linked_at=now, roles_at=now))

        for (kind, role), user in users.items():
            def row(surface, action, private, granted):
                nonlocal counted
                expected = hub_oracle(mode, kind, role, action, private)
                cell = table.setdefault((surface, action), [0, 0, 0])
                cell[0] += 1
                cell[1] += int(granted and not expected)
                cell[2] += int(expected and not granted)
                counted += 1
                assert granted is expected, (mode, kind, role, surface, action, private)

            for private, space in spaces.items():
                # -- slash command: read (status) and operate (restart)
                hub.requests.clear()
                seen = bot.command(f"status {space}", user=user)
                row("slash command", "read", private, "*Hardware:*" in seen["text"])
                hub.requests.clear()
                bot.command(f"restart {space}", user=user)
                row("slash command", "operate", private, restarted(space))
                hub.set_stage(space, "RUNNING")
                # -- alert button (Restart) in the alert's channel
                hub.requests.clear()
                since = len(slack.calls)
                _click(bot, slack, ALERT_ACTIONS["restart"], space, user, "T1", "C1")
                _wait_said(slack, since)
                row("alert button", "operate", private, restarted(space))
                hub.set_stage(space, "RUNNING")
            space = spaces[False]
            # -- App Home button (Restart)
            hub.requests.clear()
            since = len(slack.calls)
            _click(bot, slack, HOME_ACTIONS["restart"], space, user, "T1", home=True)
            slack.wait(lambda: [c for c in slack.calls[since:] if c.method == "chat.postMessage"
                                and c.body.get("channel") == user], 6)
            row("App Home button", "operate", False, restarted(space))
            hub.set_stage(space, "RUNNING")
            # -- workflow step (Restart)
            execution = f"Fx{next(_ids)}"
            slack.execute(execution)
            hub.requests.clear()
            event(bot, {"type": "function_executed", "function": {"callback_id": "space_restart"},
                        "function_execution_id": execution, "event_ts": "1",
                        "inputs": {"space": space, "user": user, "channel": "C1"}})
            done = slack.wait(lambda: slack.executions[execution]["state"] != "running" and slack.executions[execution])
            row("workflow step", "operate", False, done["state"] == "completed" and restarted(space))
            hub.set_stage(space, "RUNNING")
            # -- link preview of a public Space
            url = f"https://huggingface.co/spaces/{space}"
            ts = f"{next(_ids)}.7"
            slack.share("C1", ts, [url])
            event(bot, {"type": "link_shared", "channel": "C1", "user": user, "message_ts": ts,
                        "links": [{"url": url, "domain": "huggingface.co"}]})
            assert bot.ctx.pool.wait_idle(6)
            row("link preview", "read", False, bool(slack.unfurled.get(("C1", ts))))
            # -- admin command: a channel's scope on acme/*
            bot.ctx.access.scopes.remove("CADM", "acme")
            bot.command("scope <#CADM|adm> acme/* read", user=user)
            row("admin command", "admin", False, bool(bot.ctx.access.scopes.get("CADM")))
            # -- approval message (Approve) of another member's paid upgrade
            pending = ask(bot, slack, f"hw {space} a100-large", user="URQ")
            hub.requests.clear()
            since = len(slack.calls)
            _click(bot, slack, "approval:approve", pending.id, user, "T1", pending.channel, pending.ts)
            _wait_said(slack, since)
            approved = ("POST", f"/api/spaces/{space}/hardware") in hub_writes(hub)
            row("approval message", "approve", False, approved)
            if approved:
                hub.spaces[space]["requested"] = "t4-small"
                hub.set_stage(space, "RUNNING", hardware="t4-small")
            else:
                bot.command(f"approvals cancel {pending.id}", user="URQ")
        bot.close()

    total = print_grid("hub-role grid: surface", table, ("wrong grants", "wrong refusals"))
    tally("authz grid: hub role×slack lists×mode×surface", tried=total[0], lost=total[1])
    assert total[1] == 0 and total[2] == 0
    assert counted == len(HUB_MAY) * len(SLACK_MAY) * 3 * (3 * 2 + 5)  # 3 surfaces × public/private, 5 more

# ---------------------------------------------------------------- logs, dev mode, volumes × role × scope × privacy × workspace

# command → the grid command whose rule it follows (logs and the mount list are private details, like
# `var ls`; dev mode and mount changes are changes, like `restart`), and the Hub write it makes when allowed.
TOOLS_GRID = {
    "logs SPACE": ("var ls SPACE", None),
    "logs SPACE --build": ("var ls SPACE", None),
    "volumes SPACE": ("var ls SPACE", None),
    "dev SPACE off": ("restart SPACE", ("POST", "dev-mode")),
    "volume add SPACE bucket acme/b /data": ("restart SPACE", ("PUT", "volumes")),
    "volume rm SPACE /keep": ("restart SPACE", ("PUT", "volumes")),
}
TOOLS_SECRETS = ("LOGSECRET", "BUILDSECRET", "mountsecret")


def test_grid_tools_role_scope_privacy_workspace(make_bot, hub, slack, redis_client):
    """/space logs, dev and volumes × role × channel scope × public/private × workspace: a private Space's logs
    and mounts show only where its details may (the refusal says so, nothing of them leaks); dev mode and
    mount changes happen exactly where a change may, and nothing reaches the Hub from another workspace."""
    mount = [{"type": "dataset", "source": "acme/mountsecret", "mountPath": "/keep", "readOnly": True}]
    for name in ("acme/pub", "acme/priv"):
        hub.add_space(name, hardware="t4-small", sleep=3600, private=name.endswith("priv"))
        hub.logs[name] = [f"LOGSECRET {name}"]
        hub.build_logs[name] = [f"BUILDSECRET {name}"]
    slack.users.update({"UGST": {"is_restricted": True}, "UGSTX": {"is_restricted": True, "team_id": "T9"},
                        **{f"{u}X": {"team_id": "T9"} for u in ("UMEM", "UOP", "UADM")}})
    bot = make_bot(**GRID_ENV)
    for channel, level in GRID_CHANNELS.values():
        if level:
            bot.command(f"scope <#{channel}|x> {'beta' if level == 'beta' else 'acme'}/* "
                        f"{'operate' if level == 'beta' else level}", user="UADM")
    table = {command: [0, 0, 0] for command in TOOLS_GRID}  # cases, private shown, bad changes
    for command, role, channel_name, private, same in itertools.product(
            TOOLS_GRID, GRID_ROLES, GRID_CHANNELS, (False, True), (True, False)):
        user, level = GRID_ROLES[role]
        user = user if same else user + "X"
        channel, channel_scope = GRID_CHANNELS[channel_name]
        scope = None if channel_scope is None else ("none" if channel_scope == "beta" else channel_scope)
        space = "acme/priv" if private else "acme/pub"
        hub.spaces[space]["volumes"] = [dict(v) for v in mount]
        hub.requests.clear()
        seen = bot.command(command.replace("SPACE", space), user=user, channel=channel)
        text = json.dumps(seen)
        rule, write = TOOLS_GRID[command]
        allowed = grid_expected(rule, level, scope, private, same)
        case = (command, role, channel_name, "private" if private else "public", "same" if same else "other")
        refused = any(words in seen["text"] for words in GRID_REFUSALS)
        assert refused is not allowed, (case, seen["text"])
        expected_writes = [(write[0], f"/api/spaces/{space}/{write[1]}")] if allowed and write else []
        assert hub_writes(hub) == expected_writes, (case, hub_writes(hub))
        if not same:
            assert hub.requests == [], case
        if allowed and command.startswith("logs"):
            assert ("BUILDSECRET" if "--build" in command else "LOGSECRET") in text, (case, text[:300])
        covered = scope in ("read", "operate")
        table[command][0] += 1
        table[command][1] += int(private and not covered and any(s in text for s in TOOLS_SECRETS))
        table[command][2] += int(bool(hub_writes(hub)) and not allowed)
        tally("authz grid: logs/dev/volumes×role×scope×private×team")
    for command, (cases, leaks, bad) in table.items():
        figure(f"{command:<38} {cases:>6} {leaks:>14} {bad:>23}")
        assert leaks == 0 and bad == 0, (command, leaks, bad)
    assert sum(v[0] for v in table.values()) == len(TOOLS_GRID) * len(GRID_ROLES) * len(GRID_CHANNELS) * 2 * 2
