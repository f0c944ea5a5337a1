"""`/space audit` in words: what a person did, for every action the code audits (pure), and through Slack."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.commands.words import AUDIT_WORDS, REFUSED_WORDS, audit_phrase, audit_words
from bot.core.store import AuditEntry

ROOT = Path(__file__).resolve().parents[1]
# Actions written from a variable, with the values it takes: each one is in the table below too.
COMPUTED = {
    'f"schedule.{s.action}"': {"schedule.pause", "schedule.resume", "schedule.restart", "schedule.sleep",
                               "schedule.hw"},
    'f"approval.{verb}"': {"approval.approve", "approval.deny"},
    '"schedule.pause" if paused else "schedule.resume"': {"schedule.pause", "schedule.resume"},
    "action": {"restart", "resume", "var.rm", "secret.rm"},
    "cmd.name": {"volume.add", "volume.rm"},
    "why.action": set(),  # passed along from a `Why` found below
}
WRITES = re.compile(r"""(?:\.audit\(|Why\()\s*[\w.]+,\s*("[\w.-]+"|f"[^"]+"|"[^"]+" if \w+ else "[^"]+"|[\w.]+)""")


def written_actions() -> set[str]:
    """Every action name the code writes into the audit trail (audit calls and `Why`s of the way out)."""
    found: set[str] = set()
    for path in (ROOT / "bot").rglob("*.py"):
        for match in WRITES.finditer(path.read_text()):
            name = match.group(1)
            if name in COMPUTED:
                found |= COMPUTED[name]
            elif name.startswith('"') and " if " not in name:
                found.add(name.strip('"'))
            else:
                raise AssertionError(f"{path.name}: audited action {name} is computed; add what it can be")
    return found


def test_every_audited_action_has_words():
    import bot.app  # noqa: F401 — every feature declares its commands on import
    from bot.core.permissions import CHANGES, READS, SELF_CHECKED

    written = written_actions()
    assert {"restart", "hw", "sleep", "approval.request", "watch", "budget.set"} <= written   # the scan works
    refused = (CHANGES | SELF_CHECKED) - READS  # commands audited when refused (bot/commands/operations.py)
    missing = sorted(name for name in written | refused if name not in AUDIT_WORDS and name not in REFUSED_WORDS)
    assert missing == [], f"audited actions without words: {missing}"


def entry(action: str, params: dict | None = None, result: str = "ok", space: str = "acme/chat",
          user: str = "U1") -> AuditEntry:
    return AuditEntry("1-0", 1796180859.0, user, action, space, params or {}, result)


@pytest.mark.parametrize("action, params, words", [
    ("sleep", {"seconds": 3600}, "<@U1> set the sleep time of `acme/chat` to 1 h"),
    ("approval.request", {"id": "1oNSxQ2p", "from": "cpu-basic", "flavor": "a10g-small"},
     "<@U1> asked to move `acme/chat` to `a10g-small` (request `1oNS…`)"),
    ("hw", {"from": "cpu-basic", "flavor": "a10g-small", "approval": "1oNSxQ2p"},
     "<@U1> moved `acme/chat` from `cpu-basic` to `a10g-small` (request `1oNS…`)"),
    ("watch", {"channel": "C1", "only": []}, "<@U1> watched `acme/chat` in <#C1>"),
    ("restart", {"factory": True}, "<@U1> factory-rebooted `acme/chat`"),
    ("approval.deny", {"id": "abcdefgh", "flavor": "t4-small"}, "<@U1> denied the request to move `acme/chat` to "
                                                               "`t4-small` (request `abcd…`)"),
    ("schedule.pause", {"id": "7f3a"}, "<@U1> paused schedule `7f3a` of `acme/chat` (until `schedule resume`)"),
    ("schedule.pause", {"schedule": "7f3a"}, "<@U1> let schedule `7f3a` pause `acme/chat`"),
    ("sleep", {"seconds": -1}, "<@U1> set the sleep time of `acme/chat` to never sleep"),
])
def test_what_a_person_did(action, params, words):
    assert audit_words(entry(action, params)) == words


def test_refused_failed_and_unfinished_entries_say_so():
    assert audit_words(entry("restart", result="refused: needs the operator role")) == \
        "<@U1> tried to restart `acme/chat`: *refused* (needs the operator role)"
    assert audit_words(entry("pause", result="error: The Hub had an error (500)")) == \
        "<@U1> tried to pause `acme/chat`: *error* (The Hub had an error (500))"
    assert "started to pause `acme/chat`; the outcome is unknown" in \
        audit_words(entry("pause", result="started, outcome unknown"))


def test_an_action_from_another_version_still_reads():
    assert audit_phrase(entry("teleport")) == "run `teleport` on `acme/chat`"
    assert audit_phrase(entry("sleep", {"seconds": "soon"})) == "set the sleep time of `acme/chat` to ?"


def test_the_audit_through_slack_reads_as_what_people_did(make_bot, hub):
    bot = make_bot(SPACEOPS_APPROVERS="UAPP", SPACEOPS_APPROVAL_CHANNEL="CAPP")
    hub.add_space("acme/chat", hardware="t4-small", sleep=7200)
    assert "sleeps after 1 h" in bot.command("/space sleep acme/chat 1h", user="U1")["text"]
    bot.command("/space hw acme/chat a10g-small", user="U1")
    text = bot.command("/space audit acme/chat")["text"]
    assert "<@U1> set the sleep time of `acme/chat` to 1 h" in text, text
    assert re.search(r"<@U1> asked to move `acme/chat` to `a10g-small` \(request `[\w-]{4}…`\)", text), text
    assert "seconds=" not in text and "approval.request" not in text and "id=" not in text
