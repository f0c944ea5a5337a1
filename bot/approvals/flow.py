"""The approval flow: post a paid-hardware request, decide it once on an approver's click, cancel, list
and expire it, with Slack messages and audit entries. Requests live in `bot.approvals.store`."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from typing import Callable, Protocol

from bot.core.blocks import clip
from bot.approvals import words
from bot.approvals.store import ApprovalRequest, ApprovalStore, Transition
from bot.commands.grammar import Command
from bot.commands.operations import Upgrade, duplicate_audited
from bot.core.changes import Changes, Why
from bot.core.deliver import SLACK_FAILURES, Deliveries
from bot.core.errors import NotAllowed, NotFound, SpaceOpsError
from bot.core.flavors import CatalogueSource
from bot.core.hub import Spaces, call_lease
from bot.core.markup import code
from bot.core.permissions import Actor, Roles, check_namespace, declare, namespace_of
from bot.core.settings import Settings
from bot.core.store import REDIS_ERRORS, Store
from bot.core.words import Reply, error_reply

log = logging.getLogger(__name__)
# What this feature's commands need (bot/core/permissions reads it; the core knows no command names).
declare(reads={"approvals"}, self_checked={"approvals.cancel"})

# Outbox ops for approval messages whose edit or thread note failed when first tried.
SHOW_OP = "approval.show"
NOTE_OP = "approval.note"
# Queue a Slack delivery for later: (delivery id, channel, op, payload); the alerts outbox implements it.
Later = Callable[[str, str, str, str], None]


@dataclass(frozen=True)
class ApprovalKind:
    """An action an approval can apply, registered by the feature that asks for it (at wiring).

    `apply(request, user)` makes the change on the Hub once (raising a SpaceOpsError on refusal);
    `landed(request)` tells, after a replica died mid-apply, whether the Hub already shows it.
    """

    apply: Callable[[ApprovalRequest, str], object]
    landed: Callable[[ApprovalRequest], bool]


class Deciders(Protocol):
    """Who may decide a request (never its requester) and cancel another's, and who someone is on the Hub."""

    def check_approver(self, user: str, requester: str, spaces: list[str]) -> None: ...

    def require_admin(self, user: str, namespaces: list[str], doing: str, refusal: str) -> None: ...

    def identity(self, user: str, space: str) -> dict[str, str]: ...


class ListDeciders:
    """The Slack lists only (SPACEOPS_APPROVERS, SPACEOPS_ADMINS): no Hub identity."""

    def __init__(self, roles: Roles):
        self.roles = roles

    def check_approver(self, user: str, requester: str, spaces: list[str]) -> None:
        self.roles.check_approver(user, requester)

    def require_admin(self, user: str, namespaces: list[str], doing: str, refusal: str) -> None:
        if not self.roles.is_admin(user):
            raise NotAllowed(refusal)

    def identity(self, user: str, space: str) -> dict[str, str]:
        return {}


def identity_json(identity: dict[str, str]) -> str:
    return json.dumps(identity, sort_keys=True) if identity else ""


class Approvals:
    """The feature: request, decide, cancel, list and expire, with Slack messages and audit entries."""

    def __init__(self, settings: Settings, records: Store, spaces: Spaces, roles: Roles, deliveries: Deliveries,
                 catalogues: CatalogueSource, later: Later | None = None, clock: Callable[[], float] | None = None,
                 changes: Changes | None = None, applied: Callable[[str], None] | None = None,
                 deciders: Deciders | None = None,
                 follow: Callable[[str, str, str, str, str], None] | None = None):
        self.settings = settings
        self.records = records  # the audit trail and the Redis check before a change
        self.spaces = spaces
        # The one way a change reaches the Hub: audited before and after, metered, with a deadline.
        self.changes = changes or Changes(spaces.api, records, None, 2 * settings.hub_timeout)
        self.roles = roles
        # Who may decide and cancel, and who they are on the Hub: the access gate's (bot/access), by
        # SPACEOPS_ROLES_FROM; the Slack lists alone when none is given.
        self.deciders: Deciders = deciders or ListDeciders(roles)
        self.sender = deliveries  # the one way out to Slack (bot/core/deliver.py)
        self.catalogues = catalogues
        self.later = later
        self.hub_url = settings.hf_endpoint
        self.store = ApprovalStore(records.redis, settings.approval_ttl, call_lease(settings.hub_timeout))
        # Redis's clock (bot/core/clock.py): claim leases are written by one replica and compared by another.
        self.clock = clock or records.clock
        self.kinds: dict[str, ApprovalKind] = {"hw": ApprovalKind(self._apply_hardware, self._hardware_landed)}
        # Told of each approved change once applied (the Space id), so alerts read it often (bot/app.py).
        self.applied: Callable[[str], None] = applied or (lambda space: None)
        # Told of the thread note of an approved hardware move (space, channel, ts, text, flavor), so hot reads
        # edit it like a restart's announcement: "now running on `a10g-small` after 2 min" (bot/app.py).
        self.follow: Callable[[str, str, str, str, str], None] = follow or (lambda *args: None)

    def register(self, action: str, kind: ApprovalKind) -> None:
        """Let another feature's changes go through approvals (`Upgrade.action == action`)."""
        self.kinds[action] = kind

    @property
    def catalogue(self):
        return self.catalogues.current

    def commands(self) -> dict[str, Callable[[Command, Actor], Reply]]:
        """The `/space` commands this feature answers."""
        return {"approvals": self.list, "approvals.cancel": self.cancel}

    def deliveries(self) -> dict[str, Callable[[str, str], None]]:
        """Outbox ops this feature delivers: queued edits and thread notes that Slack refused at first."""
        return {SHOW_OP: self._show_now, NOTE_OP: self._note_now}

    # ------------------------------------------------------------------ request

    def request(self, upgrade: Upgrade, actor: Actor) -> Reply:
        """Post the approval message, then store the request with that message's channel and ts."""
        now = self.clock()
        self.sweep(now)
        same = self._open_for(upgrade)
        if same:
            return words.approval_already_pending_reply(same, self.sender.permalink(same.channel, same.ts))
        ttl = self.settings.approval_ttl
        channel = self.settings.approval_channel or actor.channel
        if channel.startswith("D"):
            # A DM with the bot: no approver could ever see the request there.
            return error_reply(words.approval_no_channel_for_dm())
        request = ApprovalRequest(
            id=self.store.new_id(), space=upgrade.space, current=upgrade.current, flavor=upgrade.flavor,
            requester=actor.user, channel=channel, ts="", created_at=now, expires_at=now + ttl,
            sleep_seconds=upgrade.sleep_seconds, duplicate_to=upgrade.duplicate_to or "", private=upgrade.private,
            requester_channel=actor.channel, action=upgrade.action, params=upgrade.params, summary=upgrade.summary,
            cost_note=upgrade.cost_note, requester_hub=identity_json(self.deciders.identity(actor.user, upgrade.space)))
        message = words.approval_message(request, self.catalogue, self.hub_url)
        try:
            # Nothing is stored until Slack gives the message's ts, so wait out a short Slack hiccup here
            # (this runs on the work pool, after the ack) rather than refuse at once: the synchronous way
            # out, named by the request, so a retry after a lost answer finds the first post.
            ts = self.sender.now(f"approval.request:{request.id}", channel, message.text, message.blocks)
            if ts is None:
                raise OSError("the approval message is being posted by another replica")
        except SLACK_FAILURES as err:
            log.warning("approval request not posted to %s: %s", channel, err)
            self.records.audit(actor.user, "approval.request", upgrade.space, self._params(request),
                                 result="error: the approval message could not be posted")
            return error_reply(words.approval_not_posted(channel))
        request = replace(request, ts=ts)
        # Posted first, stored second: if storing fails, the buttons find no request and refuse.
        self.store.create(request)
        self.records.audit(actor.user, "approval.request", upgrade.space, self._params(request))
        return words.approval_sent_reply(request, self.sender.permalink(channel, ts), ttl)

    def _open_for(self, upgrade: Upgrade) -> ApprovalRequest | None:
        """An open request for the same change: asking twice should not post two messages."""
        wanted = (upgrade.action, upgrade.space, upgrade.flavor, upgrade.duplicate_to or "", upgrade.params)
        return next((r for r in self.store.open_requests()
                     if (r.action, r.space, r.flavor, r.duplicate_to, r.params) == wanted), None)

    @staticmethod
    def _params(request: ApprovalRequest) -> dict:
        params = {"id": request.id, "from": request.current, "flavor": request.flavor,
                  "sleep": request.sleep_seconds, "to": request.duplicate_to or None,
                  "private": request.private or None, "action": None if request.action == "hw" else request.action}
        return {k: v for k, v in params.items() if v is not None}

    # ------------------------------------------------------------------ clicks

    def _clicked(self, request_id: str, channel: str, ts: str) -> ApprovalRequest:
        """The request behind a button, refusing ids that don't belong to the clicked message."""
        request = self.store.get(request_id)
        # Same sentence for unknown and mismatched ids: a forger learns nothing about other requests.
        if request is None or (channel, ts) != (request.channel, request.ts):
            raise NotFound("This button does not match an open approval request (it may have expired). "
                           "Nothing was changed.")
        return request

    def approve(self, request_id: str, user: str, channel: str, ts: str) -> Reply:
        """Approver's click: check roles, claim once, call the Hub, record and show the outcome."""
        request = self._clicked(request_id, channel, ts)
        self._check_decider(request, user, "approve")
        now = self.clock()
        if request.status == "applying" and request.lease_until <= now:
            # Whoever was applying it died mid-call: settle it from the Hub before anything is applied again.
            self._take_over(request_id, now)
        claim = self.store.claim(request_id, user, now, hub=identity_json(self.deciders.identity(user, request.space)))
        if not claim.ok:
            return self._not_open(claim, request_id)
        request = claim.request
        attempt = request.attempt
        try:
            runtime = self._apply(request, user)
        except SpaceOpsError as err:
            done = self.store.finish(request, attempt, self.clock(), error=err.sentence[:500])
            self.records.audit(user, "approval.approve", request.space, self._params(request),
                                 result=f"error: {clip(err.sentence, 200)}")
            self._announce(done.request or request)
            return error_reply(words.approval_apply_failed(request, err.sentence))
        try:
            done = self.store.finish(request, attempt, self.clock())
        except REDIS_ERRORS:
            # Applied, but not recorded: the claim stays `applying` and, once Redis is back and its lease
            # is over, a sweep settles it from the Hub (approved) without applying it again.
            log.error("approval %s applied on the Hub but not recorded (Redis unreachable)", request.id)
            return error_reply(words.approval_applied_unrecorded(request))
        self.records.audit(user, "approval.approve", request.space, self._params(request))
        final = done.request or request
        readback = words.readback_words(final, runtime, self.catalogue)
        ts = self._announce(final, readback)
        if ts and final.action == "hw" and not final.duplicate_to:
            self.follow(final.space, final.channel, ts, words.approval_outcome_note(final, readback), final.flavor)
        return words.approval_click_reply(final, readback)

    def _kind(self, request: ApprovalRequest) -> ApprovalKind:
        kind = self.kinds.get(request.action)
        if kind is None:  # a newer replica's action this one does not know: refuse rather than guess
            raise SpaceOpsError(f"This Space Ops version cannot apply {code(request.action)} requests; "
                                f"another replica will. Nothing was changed.")
        return kind

    def _apply(self, request: ApprovalRequest, user: str):
        """Apply it; what the Hub answered (a Space's runtime after the change, read back, or None)."""
        return self._kind(request).apply(request, user)

    def _apply_hardware(self, request: ApprovalRequest, user: str):
        runtime = None
        if request.duplicate_to:
            duplicate_audited(self.changes, user, request.space, request.duplicate_to, request.private,
                              request.flavor, request.sleep_seconds)
        else:
            params = {"from": request.current, "flavor": request.flavor, "approval": request.id}
            if request.sleep_seconds is not None:
                params["sleep"] = request.sleep_seconds
            runtime = self.changes.hardware(Why(user, "hw", params), request.space, request.flavor,
                                            request.sleep_seconds)
        self.applied(request.duplicate_to or request.space)
        return runtime

    def deny(self, request_id: str, user: str, channel: str, ts: str) -> Reply:
        request = self._clicked(request_id, channel, ts)
        self._check_decider(request, user, "deny")
        done = self.store.close(request_id, "denied", user, self.clock(),
                                hub=identity_json(self.deciders.identity(user, request.space)))
        if not done.ok:
            return self._not_open(done, request_id)
        self.records.audit(user, "approval.deny", request.space, self._params(request))
        self._announce(done.request)
        return words.approval_click_reply(done.request)

    def _check_decider(self, request: ApprovalRequest, user: str, verb: str) -> None:
        try:
            check_namespace(request.space, self.settings)
            if request.duplicate_to:
                check_namespace(request.duplicate_to, self.settings)
            self.deciders.check_approver(user, request.requester, [request.space, request.duplicate_to])
        except NotAllowed as err:
            self.records.audit(user, f"approval.{verb}", request.space, {"id": request.id},
                                 result=f"refused: {clip(err.sentence, 120)}")
            raise

    def _not_open(self, transition: Transition, request_id: str) -> Reply:
        """A click that lost the race, came late, or hit an expired request."""
        if transition.outcome == "expired":
            self._expire_one(request_id, self.clock())
        elif transition.outcome == "missing":
            raise NotFound("This approval request no longer exists. Nothing was changed.")
        request = self.store.get(request_id) or transition.request
        return words.approval_not_open_reply(request)

    # ------------------------------------------------------------------ cancel, list, expire

    def cancel(self, cmd: Command, actor: Actor) -> Reply:
        """`/space approvals cancel ID`: an admin cancels any request; a requester withdraws their own."""
        request = self.store.get(cmd.request_id or "")
        if request is None:
            raise NotFound(f"There is no approval request {code(cmd.request_id)} (it may have expired). "
                           f"See `/space approvals`.")
        if actor.user != request.requester:
            self.deciders.require_admin(
                actor.user, [namespace_of(s) for s in (request.space, request.duplicate_to) if s],
                f"cancelling another member's request {code(request.id)}",
                f"Only the requester or an admin can cancel {code(request.id)}. "
                f"Admins: {self.roles.who_holds('admin')}.")
        self.records.require()
        done = self.store.close(request.id, "cancelled", actor.user, self.clock(),
                                hub=identity_json(self.deciders.identity(actor.user, request.space)))
        if not done.ok:
            return self._not_open(done, request.id)
        self.records.audit(actor.user, "approval.cancel", request.space, self._params(request))
        self._show(done.request)
        if actor.user != request.requester:
            self._tell_requester(done.request)
        return words.approval_cancelled_reply(done.request)

    def list(self, cmd: Command, actor: Actor) -> Reply:
        self.sweep(self.clock())
        return words.approvals_list_reply(self.store.open_requests(), self.catalogue, self.hub_url)

    def sweep(self, now: float | None = None) -> int:
        """Settle claims of replicas that died, then expire overdue requests; returns how many changed."""
        now = self.clock() if now is None else now
        settled = sum(1 for request in self.store.open_requests()
                      if request.status == "applying" and request.lease_until <= now
                      and self._take_over(request.id, now))
        return settled + sum(1 for request_id in self.store.due(now) if self._expire_one(request_id, now))

    def _take_over(self, request_id: str, now: float) -> bool:
        """Settle a dead replica's claim from what the Hub shows, never by applying again; True if settled.

        The change landed → approved. It did not → failed, which an approver may approve again.
        """
        claim = self.store.take_over(request_id, now)
        if not claim.ok:
            return False  # another replica is settling it, or it was settled meanwhile
        request = claim.request
        try:
            landed = self._landed(request)
        except SpaceOpsError as err:
            log.warning("approval %s: the Hub can't confirm it after its replica stopped (%s); the next sweep "
                        "tries again", request.id, err.sentence)
            return False
        done = self.store.finish(request, request.attempt, self.clock(), error="" if landed else words.APPLY_STOPPED)
        self.records.audit(request.decided_by, "approval.approve", request.space, self._params(request),
                             result="ok (confirmed on the Hub after a replica stopped)" if landed
                             else "error: the replica applying it stopped; not applied")
        final = done.request or request
        self._announce(final)
        return True

    def _landed(self, request: ApprovalRequest) -> bool:
        """Whether the Hub already shows the approved change."""
        return self._kind(request).landed(request)

    def _hardware_landed(self, request: ApprovalRequest) -> bool:
        if request.duplicate_to:
            try:
                self.spaces.runtime(request.duplicate_to)
                return True
            except NotFound:
                return False
        runtime = self.spaces.runtime(request.space)
        return (runtime.requested_hardware or runtime.hardware) == request.flavor

    def _expire_one(self, request_id: str, now: float) -> bool:
        done = self.store.expire(request_id, now)
        if done.outcome == "missing":
            self.store.forget(request_id)
        if not done.ok:
            return False
        request = done.request
        self.records.audit(request.requester, "approval.expire", request.space, self._params(request))
        self._announce(request)
        return True

    # ------------------------------------------------------------------ Slack

    def _announce(self, request: ApprovalRequest, readback: str = "") -> str | None:
        """Show the outcome on the approval message and tell the requester in its thread (with what the Hub
        reports after an approved change); the note's ts when it was posted now."""
        self._show(request)
        return self._tell_requester(request, readback)

    def _show(self, request: ApprovalRequest) -> None:
        """Edit the approval message to its current state; a Slack failure never undoes a decision.

        When Slack fails, the edit is queued in the outbox and delivered later, once; it re-reads the
        request then, so a late edit never shows an older state than the newest one.
        """
        try:
            self._edit(request)
        except SLACK_FAILURES as err:
            log.warning("approval message %s not updated now (%s); queued", request.id, err)
            self._later(f"approval.show:{request.id}:{request.status}:{request.decided_at}:{request.attempt}",
                        request.channel, SHOW_OP, request.id)

    def _show_now(self, channel: str, request_id: str) -> None:
        """Outbox delivery of a queued edit: the request as it is now."""
        request = self.store.get(request_id)
        if request is None:
            return  # gone (a week after its decision): nothing left to show
        self._edit(request)

    def _edit(self, request: ApprovalRequest) -> None:
        message = words.approval_message(request, self.catalogue, self.hub_url)
        self.sender.update(request.channel, request.ts, message.text, message.blocks)

    def _tell_requester(self, request: ApprovalRequest, readback: str = "") -> str | None:
        text = words.approval_outcome_note(request, readback)
        # Now, or queued under the same id (a lost answer is found in the thread, not posted again).
        return self.sender.send(f"approval.note:{request.id}:{request.status}:{request.decided_at}",
                                request.channel, text, thread_ts=request.ts)

    def _note_now(self, channel: str, payload: str) -> None:
        """A note an older replica queued: posted under the id the outbox is delivering."""
        note = json.loads(payload)
        self.sender.post(channel, note["text"], thread_ts=note["ts"])

    def _later(self, delivery_id: str, channel: str, op: str, payload: str) -> None:
        if self.later is None:
            log.error("approval message update %s lost: Slack refused it and no outbox is wired", delivery_id)
            return
        try:
            self.later(delivery_id, channel, op, payload)
        except REDIS_ERRORS:
            log.error("approval message update %s lost: neither Slack nor Redis answered", delivery_id)
