"""Who may do what: every command × every role, as a table. A refusal never reaches the Hub.

Roles: a plain member, an operator, an approver (not an operator), an admin, and "outsider": the admin
acting on a Space outside SPACEOPS_NAMESPACES (nobody may touch those).
"""

from __future__ import annotations

import itertools
import json
import time

import pytest

from tests.faults.conftest import tally

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
