"""What an alert's buttons run: each is a command, so it passes the same gate as typing it (Slack's
listeners in handlers/alerts.py and the console's `[Restart] acme/chat` both use this table)."""

from __future__ import annotations

from bot.alerts.words import ALERT_ACTIONS
from bot.commands.grammar import Command

ALERT_COMMANDS = {
    ALERT_ACTIONS["restart"]: lambda space: Command("restart", space=space),
    ALERT_ACTIONS["resume"]: lambda space: Command("resume", space=space),
    ALERT_ACTIONS["sleep"]: lambda space: Command("sleep", space=space, seconds=3600),
}
