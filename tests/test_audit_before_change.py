"""Audit before change: every change writes its "attempt" entry before the Hub hears of it, and its outcome
after. The Hub emulator looks at the audit trail at the moment each write request arrives: had the bot died
right then, `/space audit` would still show the change as started."""

from __future__ import annotations

import ast
import inspect
import re
import time
from pathlib import Path

import huggingface_hub
import pytest

from bot.core.store import Store
from bot.schedules.store import Schedule, Timed
from tests.test_approvals import ask, click
from tests.test_schedules import next_fire, only, schedule

ROLES = {"SPACEOPS_APPROVERS": "UAPP", "SPACEOPS_ADMINS": "UADM"}
ROOT = Path(__file__).resolve().parents[1]
# The one module that may call HfApi's write methods: the audited way out to the Hub.
THE_WAY_OUT = ROOT / "bot" / "core" / "changes.py"


class Witness:
    """For each Hub write, what `/space audit SPACE` would have shown at the moment the Hub received it."""

    def __init__(self, hub, store: Store):
        self.seen: list[tuple[str, str, list]] = []

        def look(request) -> None:
            match = re.match(r"^/api/spaces/([^/]+/[^/]+)/", request.path) or re.match(
                r"^/api/spaces/([^/]+/[^/]+)$", request.path)
            if request.method == "GET" or not request.path.startswith("/api/"):
                return
            space = match.group(1) if match else ""
            self.seen.append((request.method, request.path, store.audit_entries(space or None, count=100)))

        hub.on_request = look

    def at(self, method: str, path: str) -> list[list]:
        return [entries for m, p, entries in self.seen if (m, p) == (method, path)]

    def started(self, method: str, path: str) -> list[tuple[str, str, str]]:
        """(user, action, space) of the changes the audit showed as started, outcome unknown, at that write."""
        [entries] = self.at(method, path)[-1:] or [[]]
        return [(e.user, e.action, e.space) for e in entries if e.result == "started, outcome unknown"]


@pytest.fixture
def witness(hub, redis_client):
    yield Witness(hub, Store(redis_client))
    hub.on_request = None


# ---------------------------------------------------------------- case 18.5: the paths that audited after


@pytest.mark.parametrize("action, path, stage", [
    ("pause", "/api/spaces/acme/demo/pause", "RUNNING"),
    ("resume", "/api/spaces/acme/demo/restart", "PAUSED"),
    ("restart", "/api/spaces/acme/demo/restart", "RUNNING"),
])
def test_a_scheduled_action_is_audited_before_the_hub_hears_of_it(bot, hub, slack, witness, action, path, stage):
    hub.add_space("acme/demo", hardware="cpu-basic", stage=stage)
    schedule(bot, f"acme/demo {action} daily 19:00 --tz UTC")
    s = only(bot, Schedule)
    bot.ctx.watcher.tick(next_fire(bot, s.id) + 5)
    assert len(hub.calls("POST", path)) == 1
    assert witness.started("POST", path) == [("U1", f"schedule.{action}", "acme/demo")]
    # Afterwards the outcome replaces the attempt in what people see.
    entries = [(e.action, e.result) for e in bot.ctx.store.audit_entries("acme/demo")]
    assert (f"schedule.{action}", "ok") in entries and (f"schedule.{action}", "started, outcome unknown") not in entries


def test_scheduled_hardware_and_sleep_are_audited_before(make_bot, hub, slack, witness):
    hub.add_space("acme/demo", hardware="t4-medium", sleep=3600)
    bot = make_bot(**ROLES)
    schedule(bot, "acme/demo hw t4-small daily 19:00 --tz UTC")
    schedule(bot, "acme/demo sleep 15m daily 20:00 --tz UTC")
    hw, sleep = sorted(bot.ctx.schedules.store.all(), key=lambda r: r.action)
    bot.ctx.watcher.tick(next_fire(bot, hw.id) + 5)
    bot.ctx.watcher.tick(next_fire(bot, sleep.id) + 5)
    assert witness.started("POST", "/api/spaces/acme/demo/hardware") == [("U1", "schedule.hw", "acme/demo")]
    assert witness.started("POST", "/api/spaces/acme/demo/sleeptime") == [("U1", "schedule.sleep", "acme/demo")]


def test_a_failed_scheduled_action_shows_its_attempt_and_its_error(bot, hub, slack, witness):
    hub.add_space("acme/demo", hardware="cpu-basic")
    schedule(bot, "acme/demo pause daily 19:00 --tz UTC")
    s = only(bot, Schedule)
    hub.inject("POST", "/pause", status=503)
    bot.ctx.watcher.tick(next_fire(bot, s.id) + 5)
    assert witness.started("POST", "/api/spaces/acme/demo/pause") == [("U1", "schedule.pause", "acme/demo")]
    [outcome] = [e for e in bot.ctx.store.audit_entries("acme/demo") if e.action == "schedule.pause"]
    assert outcome.result.startswith("error:") and "503" in outcome.result


def test_a_revert_is_audited_before_the_hub_hears_of_it(make_bot, hub, slack, witness):
    hub.add_space("acme/chat", hardware="a100-large", sleep=3600)
    bot = make_bot(**ROLES)
    assert "until" in bot.command("/space hw acme/chat t4-small --for 20m")["text"]
    t = only(bot, Timed)
    assert witness.started("POST", "/api/spaces/acme/chat/hardware") == [("U1", "hw", "acme/chat")]
    hub.apply_requested_hardware("acme/chat")
    bot.ctx.watcher.tick(t.ends_at + 5)
    flavors = [c.body["flavor"] for c in hub.calls("POST", "/api/spaces/acme/chat/hardware")]
    assert flavors == ["t4-small", "a100-large"]
    assert witness.started("POST", "/api/spaces/acme/chat/hardware") == [("U1", "hw-for.revert", "acme/chat")]


def test_the_revert_now_button_is_audited_before(make_bot, hub, slack, witness):
    from bot.schedules.words import REVERT_ACTION

    hub.add_space("acme/chat", hardware="a100-large", sleep=3600)
    bot = make_bot(**ROLES)
    bot.command("/space hw acme/chat t4-small --for 2h")
    t = only(bot, Timed)
    hub.apply_requested_hardware("acme/chat")
    answer = bot.click(REVERT_ACTION, t.id, user="U1")
    assert slack.wait(lambda: slack.responses(answer.response_id))
    assert witness.started("POST", "/api/spaces/acme/chat/hardware") == [("U1", "hw-for.revert", "acme/chat")]


@pytest.mark.parametrize("text, space, path, action, by", [
    ("hw acme/chat a100-large", {"hardware": "cpu-basic"}, "/api/spaces/acme/chat/hardware", "hw", "UAPP"),
    ("resume acme/chat", {"stage": "PAUSED", "hardware": None, "requested": "a100-large", "sleep": 3600},
     "/api/spaces/acme/chat/restart", "resume", "UAPP"),
    ("sleep acme/chat never", {"hardware": "a100-large", "sleep": 3600}, "/api/spaces/acme/chat/sleeptime",
     "sleep", "UAPP"),
    # A timed upgrade is the requester's, approved by someone else (both are in its entries).
    ("hw acme/chat a100-large --for 4h", {"hardware": "t4-small", "sleep": 3600}, "/api/spaces/acme/chat/hardware",
     "hw", "U1"),
])
def test_an_approved_change_is_audited_before_the_hub_hears_of_it(make_bot, hub, slack, witness, text, space, path,
                                                                  action, by):
    hub.add_space("acme/chat", **space)
    bot = make_bot(**ROLES)
    pending = ask(bot, slack, text, user="U1")
    assert witness.seen == []
    assert "Approved" in click(bot, slack, pending, "UAPP")
    assert len(hub.calls("POST", path)) == 1
    assert witness.started("POST", path) == [(by, action, "acme/chat")]
    entries = [(e.action, e.result) for e in bot.ctx.store.audit_entries("acme/chat")]
    assert (action, "ok") in entries and ("approval.approve", "ok") in entries


def test_an_approved_duplicate_is_audited_before(make_bot, hub, slack, witness):
    hub.add_space("acme/chat", hardware="cpu-basic")
    bot = make_bot(**ROLES)
    pending = ask(bot, slack, "duplicate acme/chat acme/copy --hw a100-large", user="U1")
    assert "Approved" in click(bot, slack, pending, "UAPP")
    assert witness.started("POST", "/api/spaces/acme/chat/duplicate") == [("UAPP", "duplicate", "acme/chat")]


# ---------------------------------------------------------------- every command, the same way


@pytest.mark.parametrize("text, method, path, action", [
    ("restart acme/chat", "POST", "/api/spaces/acme/chat/restart", "restart"),
    ("pause acme/chat", "POST", "/api/spaces/acme/chat/pause", "pause"),
    ("hw acme/chat t4-small", "POST", "/api/spaces/acme/chat/hardware", "hw"),
    ("sleep acme/chat 15m", "POST", "/api/spaces/acme/chat/sleeptime", "sleep"),
    ("var set acme/chat MODE=fast", "POST", "/api/spaces/acme/chat/variables", "var.set"),
    ("var rm acme/chat OLD", "DELETE", "/api/spaces/acme/chat/variables", "var.rm"),
    ("secret rm acme/chat TOKEN", "DELETE", "/api/spaces/acme/chat/secrets", "secret.rm"),
    ("duplicate acme/chat acme/copy", "POST", "/api/spaces/acme/chat/duplicate", "duplicate"),
])
def test_every_change_command_is_audited_before(make_bot, hub, slack, witness, text, method, path, action):
    hub.add_space("acme/chat", hardware="t4-medium", sleep=3600, variables={"OLD": "1"}, secrets={"TOKEN": "x"})
    bot = make_bot(**ROLES)
    bot.command(text, user="UADM")
    assert witness.started(method, path) == [("UADM", action, "acme/chat")]


def test_an_alert_button_is_audited_before(make_bot, hub, slack, witness):
    from bot.alerts.words import ALERT_ACTIONS

    hub.add_space("acme/chat", hardware="cpu-basic")
    bot = make_bot(**ROLES)
    answer = bot.click(ALERT_ACTIONS["restart"], "acme/chat", user="UADM")
    assert answer.status == 200
    assert slack.wait(lambda: hub.calls("POST", "/api/spaces/acme/chat/restart"))
    assert witness.started("POST", "/api/spaces/acme/chat/restart") == [("UADM", "restart", "acme/chat")]


# ---------------------------------------------------------------- nothing else calls the Hub's writes

# Space-changing and every other Hub-changing verb HfApi has (pause_inference_endpoint, create_commit, …).
WRITE_WORDS = re.compile(r"^(request_|set_|add_|delete_|create_|update_|restart_|pause_|duplicate_|enable_|disable_|"
                         r"move_|upload_|merge_|change_|super_squash|cancel_|run_|rerun_|suspend_|resume_|"
                         r"accept_|reject_|grant_|permanently_|copy_|rename_|hide_|edit_|comment_|scale_|"
                         r"trigger_|sync_|batch_|preupload_|unlike)")


def hub_write_methods() -> set[str]:
    """HfApi's methods that change something on the Hub, by their names (from the installed client)."""
    names = {name for name, member in inspect.getmembers(huggingface_hub.HfApi, callable)
             if not name.startswith("_") and WRITE_WORDS.match(name)}
    assert {"restart_space", "pause_space", "request_space_hardware", "set_space_sleep_time", "add_space_secret",
            "delete_space_secret", "add_space_variable", "delete_space_variable", "duplicate_repo",
            "set_space_volumes", "enable_space_dev_mode", "disable_space_dev_mode", "update_repo_settings",
            "delete_repo", "move_repo", "create_webhook", "delete_webhook"} <= names
    return names


def calls_of(path: Path, names: set[str], root: Path = ROOT) -> list[str]:
    """`file:line name` for every attribute call or reference (`hub.call(api.pause_space, …)`) of `names`,
    and every string naming one (`getattr(api, "pause_space")`)."""
    tree = ast.parse(path.read_text(), str(path))
    return [f"{path.relative_to(root)}:{node.lineno} {name}" for node in ast.walk(tree)
            for name in [node.attr if isinstance(node, ast.Attribute) else
                         node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None]
            if name in names]


@pytest.mark.slow
def test_only_the_way_out_calls_hub_write_methods():
    names = hub_write_methods()
    offenders = [hit for folder in ("bot", "handlers") for path in sorted((ROOT / folder).rglob("*.py"))
                 if path != THE_WAY_OUT for hit in calls_of(path, names)]
    assert offenders == [], "Hub writes outside bot/core/changes.py:\n" + "\n".join(offenders)
    assert calls_of(THE_WAY_OUT, names), "the way out should be where the writes are"


def test_the_static_check_finds_a_write(tmp_path):
    source = ("def f(api):\n    api.restart_space('a/b')\n    hub.call(api.pause_space, 'a/b')\n"
              "    return getattr(api, 'delete_space_secret')\n")
    (tmp_path / "bot").mkdir()
    path = tmp_path / "bot" / "feature.py"
    path.write_text(source)
    found = sorted(hit.split()[-1] for hit in calls_of(path, hub_write_methods(), tmp_path))
    assert found == ["delete_space_secret", "pause_space", "restart_space"]
    assert not {"get_space_runtime", "list_spaces", "space_info", "whoami", "get_space_variables",
                "get_space_secrets", "list_spaces_hardware", "fetch_space_logs"} & hub_write_methods()

