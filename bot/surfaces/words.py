"""What link previews and workflow steps say."""

from __future__ import annotations

from typing import Any

from bot.core.words import Reply, button, context, duration_words

PREVIEW_STATUS_ACTION = "preview_status"
LOGS_ACTION = "space_logs"  # answered as `/space logs SPACE` would be


def preview_blocks(status: Reply, since: float | None, now: float, dev_mode: bool, buttons: list[str],
                   restart_action: str, space: str) -> list[dict[str, Any]]:
    """The `status` reply's blocks, with how long it has been in its stage, dev mode, and the buttons the
    viewer may use (Status, Restart, Logs)."""
    blocks = list(status.blocks[:1])
    notes = []
    if since and now >= since:
        notes.append(f"in this stage for {duration_words(now - since)}")
    if dev_mode and "dev mode on" not in str(status.blocks[:1]):
        notes.append("dev mode on")
    if notes:
        blocks.append(context("; ".join(notes)))
    blocks += status.blocks[1:]
    made = {"status": button("Status", PREVIEW_STATUS_ACTION, space),
            "restart": button("Restart", restart_action, space, "danger"),
            "logs": button("Logs", LOGS_ACTION, space)}
    if buttons:
        blocks.append({"type": "actions", "elements": [made[b] for b in buttons]})
    return blocks


STEP_NO_USER = "This step needs the person who runs the workflow (its `user` input); nothing was done."
STEP_NO_CHANNEL = "This step needs the channel the workflow runs in (its `channel` input); nothing was done."
STEP_NO_SPACE = "This step needs a Space (namespace/name or a huggingface.co/spaces/… link); nothing was done."
STEP_NO_FLAVOR = "This step needs a hardware flavor (for example `t4-small`); nothing was done."
STEP_BAD_TIMEOUT = "The timeout must be a whole number of minutes from 1 to 1440."
STEP_DENIED = "The hardware change was {status} by an approver; nothing was changed."
STEP_APPLY_FAILED = "The hardware change was approved but the Hub did not apply it: {reason}"
STEP_EXPIRED = "Nobody approved the hardware change before it expired; nothing was changed."
STEP_WAIT_ERROR = "{space} is in an error stage ({stage}): {error}"
STEP_WAIT_TIMEOUT = "{space} was not running after {minutes} min (last seen: {stage})."
STEP_TOO_LONG = "The step waited longer than Space Ops keeps a pending step ({days} d); it was ended."
STEP_NO_REDIS = "Space Ops can't reach its Redis right now, so it can't run this step safely; nothing was done."
