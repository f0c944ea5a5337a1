"""The words of approval messages, replies and thread notes.

Requests are `bot.approvals.store.ApprovalRequest` values; these functions only read their fields.
"""

from __future__ import annotations

import json
from typing import Iterable

from bot.core.blocks import clip
from bot.core.flavors import Catalogue
from bot.core.markup import code, escape
from bot.core.words import (Reply, context, differs_words, duration_words, flavor_words, hub_identity_words,
                            hub_reports_words, money_words, price_words, section, sleep_words, space_link,
                            when_words)

APPROVE_ACTION = "approval:approve"


DENY_ACTION = "approval:deny"


OUTCOME_WORDS = {"approved": ":white_check_mark: *Approved*", "denied": ":no_entry: *Denied*",
                 "cancelled": ":heavy_multiplication_x: *Cancelled*", "expired": ":hourglass: *Expired*",
                 "applying": ":gear: *Being applied*", "failed": ":warning: *Approved, but not applied*"}


def upgrade_cost_words(current: str, flavor: str, catalogue: Catalogue) -> tuple[str, str]:
    """(new price per hour and per day, difference per hour and per day) as words."""
    new, old = catalogue.price(flavor), catalogue.price(current)
    price = "unknown (not in the Hub's price list)" if new is None else \
        f"{money_words(new)}/h · {money_words(new * 24)}/day"
    if new is None or old is None:
        return price, "unknown"
    diff = new - old
    return price, f"{money_words(diff, True)}/h · {money_words(diff * 24, True)}/day"


def upgrade_sleep_words(request) -> str:
    if request.sleep_seconds is not None:
        return sleep_words(request.sleep_seconds, request.flavor)
    if request.duplicate_to or request.current == "cpu-basic":
        return "never sleeps (the Hub's default on paid hardware; change it with `/space sleep`)"
    return "unchanged (the Space keeps its current sleep time)"


def upgrade_words(request) -> str:
    """`acme/chat` from `cpu-basic` to `a100-large`, the duplicate's wording, or the request's own summary."""
    if getattr(request, "summary", ""):
        return request.summary
    if request.duplicate_to:
        return (f"duplicate {code(request.space)} as {code(request.duplicate_to)}"
                + (" (private)" if request.private else "") + f" on {code(request.flavor)}")
    return f"move {code(request.space)} from {code(request.current)} to {code(request.flavor)}"


def _hub(raw: str) -> dict:
    """A stored Hub identity (JSON), tolerantly: {} when absent or unreadable."""
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _by(request) -> str:
    if not request.decided_by:
        return ""
    return f" by <@{escape(request.decided_by)}>{hub_identity_words(_hub(getattr(request, 'decided_hub', '')))}"


def _from(request) -> str:
    return f"<@{escape(request.requester)}>{hub_identity_words(_hub(getattr(request, 'requester_hub', '')))}"


def _at(request) -> str:
    return f" {when_words(request.decided_at)}" if request.decided_at else ""


def approval_status_line(request) -> str:
    """The outcome line shown on the approval message once something happened."""
    status = request.status
    if status == "cancelled" and request.decided_by == request.requester:
        return f":leftwards_arrow_with_hook: *Withdrawn* by the requester{_at(request)}. Nothing was changed."
    if status == "approved" and request.action != "hw":
        return f"{OUTCOME_WORDS[status]}{_by(request)}{_at(request)}. Applied: {upgrade_words(request)}."
    if status == "approved":
        target = request.duplicate_to or request.space
        return (f"{OUTCOME_WORDS[status]}{_by(request)}{_at(request)}. {code(target)} is moving to "
                f"{code(request.flavor)}; billing starts when it runs.")
    if status == "failed":
        return (f"{OUTCOME_WORDS[status]}:{_by(request).removeprefix(' by')} approved{_at(request)}, but the Hub "
                f"refused: {request.error} The request is still open: *Approve* again to retry.")
    if status == "applying":
        return f"{OUTCOME_WORDS[status]}{_by(request)}{_at(request)}…"
    if status == "expired":
        return (f"{OUTCOME_WORDS[status]}{_at(request)}: no one decided in time. Nothing was changed; "
                f"ask again if it is still needed.")
    if status in OUTCOME_WORDS:
        return f"{OUTCOME_WORDS[status]}{_by(request)}{_at(request)}. Nothing was changed."
    return ""


def _deciders(request) -> str:
    """Who decides, as the requester's standing tells: a request made with a Hub identity was made where Hub
    roles decide (SPACEOPS_ROLES_FROM=hub|both), and there approving needs `admin` of the Space's namespace."""
    if getattr(request, "requester_hub", ""):
        return f"approvers (admins of {code(request.space.split('/')[0])} on Hugging Face)"
    return "approvers"


def approval_message(request, catalogue: Catalogue, hub_url: str) -> Reply:
    """The approval message in the channel: the request, its cost, and buttons while it is open."""
    price, diff = upgrade_cost_words(request.current, request.flavor, catalogue)
    kind = "Paid hardware request" if request.action == "hw" else "Request that raises spend"
    title = f":money_with_wings: *{kind}* from {_from(request)}: {upgrade_words(request)}."
    if request.action == "hw":
        details = [
            f"*Space:* {space_link(request.space, hub_url)}",
            f"*Hardware:* {flavor_words(request.current, catalogue)} → {flavor_words(request.flavor, catalogue)}",
            f"*New price:* {price}",
            f"*Difference:* {diff}",
            f"*Sleep:* {upgrade_sleep_words(request)}",
        ]
    else:
        details = [f"*Space:* {space_link(request.space, hub_url)}"]
        if request.flavor:
            details.append(f"*Hardware:* {flavor_words(request.flavor, catalogue)}")
    if request.cost_note:
        details.append(f"*Cost:* {request.cost_note}")
    details.append(f"*Expires:* {when_words(request.expires_at)}")
    blocks = [section(title), section("\n".join(details))]
    outcome = approval_status_line(request)
    if outcome:
        blocks.append(section(outcome))
    if request.status in ("pending", "failed"):
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "action_id": APPROVE_ACTION, "value": request.id, "style": "primary",
             "text": {"type": "plain_text", "text": "Approve"},
             "confirm": {"title": {"type": "plain_text", "text": "Approve paid hardware?"},
                         "text": {"type": "mrkdwn", "text": clip(f"{upgrade_words(request)}: {price}.", 300)},
                         "confirm": {"type": "plain_text", "text": "Approve"},
                         "deny": {"type": "plain_text", "text": "Back"}}},
            {"type": "button", "action_id": DENY_ACTION, "value": request.id, "style": "danger",
             "text": {"type": "plain_text", "text": "Deny"}},
        ]})
    blocks.append(context(f"Request {code(request.id)} · {_deciders(request)} decide; the requester can't approve "
                          f"their own."))
    state = {"pending": "waiting for an approver"}.get(request.status, request.status)
    text = (f"Paid hardware request from <@{escape(request.requester)}>: {upgrade_words(request)} "
            f"({price_words(catalogue.price(request.flavor))}) — {state}")
    return Reply(text, blocks)


def why_approval(request) -> str:
    """Why this request waits for an approver, in its own terms: only a hardware move is "a paid upgrade"."""
    if request.action == "hw" and not request.duplicate_to:
        return "A paid upgrade needs an approver"
    if request.action == "hw":
        return "A copy on paid hardware needs an approver"
    if request.action == "resume":
        return "Resuming it on paid hardware starts its billing again and needs an approver"
    if request.action == "sleep":
        return "A longer sleep time on paid hardware raises what it may cost and needs an approver"
    return "This raises what it may cost and needs an approver"


def approval_sent_reply(request, permalink: str, ttl: int) -> Reply:
    where = f"<{permalink}|the approval request>" if permalink else "the approval request"
    text = (f":hourglass_flowing_sand: {why_approval(request)}, so nothing changed yet. Sent for approval: "
            f"{where} in <#{escape(request.channel)}> to {upgrade_words(request)}. It expires in "
            f"{duration_words(ttl)}. Withdraw it with `/space approvals cancel {request.id}`.")
    return Reply(text, [section(text)])


def approval_already_pending_reply(request, permalink: str) -> Reply:
    where = f"<{permalink}|waiting for an approver>" if permalink else "waiting for an approver"
    text = (f"The same change is already {where} (request {code(request.id)}, asked by "
            f"<@{escape(request.requester)}>). Nothing new was posted.")
    return Reply(text, [section(text)])


def approval_not_posted(channel: str) -> str:
    return (f"The approval request could not be posted to <#{escape(channel)}> (is Space Ops in that channel?), "
            f"so nothing was changed and nothing is pending. Try again, or ask an admin to check "
            f"SPACEOPS_APPROVAL_CHANNEL.")


def approval_no_channel_for_dm() -> str:
    return ("This request needs an approver, and approvers can't see a direct message with Space Ops, so nothing "
            "was changed and nothing is pending. Ask in a channel, or have an admin set SPACEOPS_APPROVAL_CHANNEL.")


def approval_apply_failed(request, sentence: str) -> str:
    return (f"You approved, but the Hub refused to {upgrade_words(request)}: {sentence} "
            f"The request is still open; click *Approve* again to retry.")


# A dead replica's claim that the Hub never applied (stored as the request's error).
APPLY_STOPPED = ("The Space Ops replica applying it stopped before the Hub confirmed, and the Hub shows no change, "
                 "so nothing was changed.")


def approval_applied_unrecorded(request) -> str:
    return (f"You approved, and the Hub accepted it: {upgrade_words(request)}. Space Ops could not record the "
            f"decision (its database is unreachable); the approval message catches up by itself when it is back. "
            f"Don't approve again.")


def approval_click_reply(request, readback: str = "") -> Reply:
    """What the approver who clicked sees (the message in the channel shows it too)."""
    verb = {"approved": "Approved", "denied": "Denied"}.get(request.status, request.status.capitalize())
    text = f"{verb}: {upgrade_words(request)}." + (f"\n{readback}" if readback else "")
    return Reply(text, [section(text)])


def approval_not_open_reply(request) -> Reply:
    """A click on a request someone already decided, or that expired."""
    if request is None:
        text = "This approval request no longer exists. Nothing was changed."
    elif request.status == "applying":
        text = f"<@{escape(request.decided_by)}> is applying this request right now. Nothing else was changed."
    elif request.status == "expired":
        text = f"This request for {code(request.space)} expired before anyone decided. Nothing was changed."
    else:
        text = f"This request was already {request.status}{_by(request)}{_at(request)}. Nothing else was changed."
    return Reply(text, [section(text)])


def approval_cancelled_reply(request) -> Reply:
    verb = "withdrew" if request.decided_by == request.requester else "cancelled"
    text = f"You {verb} request {code(request.id)} ({upgrade_words(request)})."
    return Reply(text, [section(text)])


def approval_outcome_note(request, readback: str = "") -> str:
    """Thread reply under the approval message that tells the requester (and, once applied, what the Hub
    reports now)."""
    who = f"<@{escape(request.requester)}>"
    outcome = approval_status_line(request)
    return f"{who} your request to {upgrade_words(request)}: {outcome}" + (f"\n{readback}" if readback else "")


def promised(request) -> tuple[str | None, int | None]:
    """(flavor, sleep seconds; -1 never) the approval message said the Space would have once applied."""
    if request.action == "hw" and not request.duplicate_to:
        # The card says "never sleeps (the Hub's default on paid hardware)" when no sleep time was asked.
        return request.flavor, request.sleep_seconds if request.sleep_seconds is not None else -1
    if request.action == "resume":
        return request.flavor or None, None
    if request.action == "sleep":
        try:
            return None, int(request.data.get("seconds"))
        except (TypeError, ValueError):
            return None, None
    return None, None


def readback_words(request, runtime, catalogue: Catalogue) -> str:
    """What the Hub reports after an approved change, and where that is not what the approval said; "" when
    the change answered no runtime (a duplicate, a schedule)."""
    if runtime is None or not hasattr(runtime, "stage"):
        return ""
    flavor, sleep = promised(request)
    return hub_reports_words(runtime, catalogue) + differs_words(runtime, flavor, sleep, "the approval said")


def approvals_list_reply(requests: Iterable, catalogue: Catalogue, hub_url: str) -> Reply:
    requests = list(requests)
    if not requests:
        return Reply("No pending hardware requests.", [section("No pending hardware requests.")])
    rows = []
    for request in requests:
        note = {"failed": " — *last attempt failed*", "applying": " — *being applied*"}.get(request.status, "")
        rows.append(f"{code(request.id)} <@{escape(request.requester)}>: {upgrade_words(request)} "
                    f"({price_words(catalogue.price(request.flavor))}), expires {when_words(request.expires_at)}"
                    + note)
    text = (f"*Pending hardware requests* ({len(requests)}):\n" + "\n".join(rows)
            + "\nCancel one (admin) or withdraw your own: `/space approvals cancel ID`.")
    return Reply(text, [section(text)])
