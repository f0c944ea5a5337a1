"""The fleet feature: `/space cost`, digests, budgets and the App Home, over the roll-ups in Redis.

Reads come from roll-ups (never raw history); the leader's tick keeps the index of known Spaces,
refreshes open dashboards and checks budgets; a cron job on the leader posts due digests.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Callable, Iterable
from zoneinfo import ZoneInfo

from slack_sdk.errors import SlackApiError

from bot.alerts.outbox import Outbox
from bot.alerts.keys import state_key
from bot.alerts.rollups import DAY, day_of
from bot.alerts.watches import WatchStore
from bot.commands.grammar import Command
from bot.core.errors import NotAllowed
from bot.core.flavors import CatalogueSource
from bot.core.permissions import Actor, Roles, namespace_of
from bot.core.settings import Settings
from bot.core.slack import Poster
from bot.core.store import REDIS_ERRORS, Store, bulk_decoding
from bot.core.words import Reply
from bot.fleet import chart, report, words
from bot.fleet.report import SpaceCost
from bot.fleet.store import Facts, FleetStore

log = logging.getLogger(__name__)

HOME_RECENT = 3600
HOME_DEBOUNCE = 10.0
BUDGET_OP = "fleet:budget"
DIGEST_LATE_LIMIT = 7 * DAY
BUDGET_EVERY = 5 * 60


@dataclass
class Snapshot:
    """Spaces in a scope with their period figures, month figures and prices (what every report needs)."""

    rows: list[SpaceCost]
    facts: dict[str, Facts]
    prices: dict[str, float | None]
    month: dict[str, tuple[float, float]]  # space → (so far, projected)
    today: dict[str, float]

    def first_seen(self) -> tuple[float, str] | None:
        seen = [(r.first_seen, r.space) for r in self.rows if r.first_seen]
        return min(seen) if seen else None

    @property
    def total(self) -> float:
        return sum(r.cost for r in self.rows)


def digest_due(config: dict, now: float) -> tuple[str, float] | None:
    """(period id, due time) of the latest digest due at or before `now` in the config's time zone (pure)."""
    try:
        tz = ZoneInfo(config.get("tz") or "UTC")
        hour, minute = (int(x) for x in str(config.get("time") or "09:00").split(":"))
    except (ValueError, KeyError):
        return None
    local = datetime.fromtimestamp(now, tz)
    due = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if due > local:
        due -= timedelta(days=1)
    if config.get("period") == "weekly":
        due -= timedelta(days=due.weekday())  # Mondays
        year, week, _ = due.isocalendar()
        period = f"{year}-W{week:02d}"
    else:
        period = due.strftime("%Y-%m-%d")
    return period, due.timestamp()


class Fleet:
    def __init__(self, settings: Settings, records: Store, poster: Poster, watch_store: WatchStore, outbox: Outbox,
                 catalogues: CatalogueSource, roles: Roles, known: Callable[[], Iterable[str]],
                 leading: Callable[[float], bool], pending_requests: Callable[[], list] = lambda: [],
                 slack=None, clock: Callable[[], float] = time.time):
        self.settings = settings
        self.records = records
        self.poster = poster
        self.watches = watch_store
        self.outbox = outbox
        self.catalogues = catalogues
        self.roles = roles
        self.known_now = known
        self.leading = leading
        self.pending_requests = pending_requests
        self.slack = slack  # a slack_sdk WebClient (views.publish, files_upload_v2); None in the console
        self.clock = clock
        self.hub_url = settings.hf_endpoint
        self.store = FleetStore(records.redis)
        self._indexed: set[str] = set()
        self._budgets_checked = 0.0
        # Whether a private Space's details (its error text) may be shown to a channel; set at wiring (access).
        self.reveals: Callable[[str, Actor], bool] = lambda space, actor: True
        self.prefetch: Callable[[set[str]], None] = lambda spaces: None  # looks visibilities up, several at once
        outbox.handlers[BUDGET_OP] = self._deliver_budget

    # ------------------------------------------------------------------ wiring

    def commands(self) -> dict[str, Callable[[Command, Actor], Reply]]:
        return {"cost": self.cost, "digest": self.digest, "digest.off": self.digest_off, "digests": self.digests,
                "budget": self.budget, "budget.set": self.budget_set, "budget.off": self.budget_off}

    def tick(self, now: float) -> int:
        """On the leader's poll tick: index new Spaces, refresh open dashboards, check budgets.
        Returns how many Homes were published and budget alerts queued."""
        fresh = set(self.known_now()) - self._indexed
        if fresh:
            self.store.remember(fresh)
            self._indexed |= fresh
        done = 0
        for job in (self.refresh_homes, self.check_budgets):
            try:
                done += job(now)
            except REDIS_ERRORS:
                raise
            except Exception:  # noqa: BLE001 — one failing report must not stop the others or the tick
                log.exception("fleet job %s failed", job.__name__)
        return done

    # ------------------------------------------------------------------ scopes

    def watched(self) -> list[str]:
        watch_set = self.watches.load()
        spaces = set(watch_set.explicit_spaces())
        spaces |= {s for s in self.store.known() if watch_set.is_watched(s)}
        return sorted(spaces)

    def in_scope(self, target: str) -> list[str]:
        if not target.endswith("/*"):
            return [target]
        return self._in_namespaces({target[:-2]}, self.store.known(), self.watches.load().explicit_spaces())

    @staticmethod
    def _in_namespaces(namespaces: set[str], *sources: Iterable[str]) -> list[str]:
        return sorted({s for source in sources for s in source if namespace_of(s) in namespaces})

    def channel_scope(self, channel: str) -> tuple[str, list[str]]:
        """The namespaces watched in a channel, and their known Spaces."""
        watch_set = self.watches.load()
        targets = [w.target for w in watch_set.watches if w.channel == channel]
        namespaces = {namespace_of(t) for t in targets}
        spaces = set(self._in_namespaces(namespaces, self.store.known(), watch_set.explicit_spaces()))
        spaces |= {t for t in targets if not t.endswith("/*")}
        return ", ".join(f"{ns}/*" for ns in sorted(namespaces)), sorted(spaces)

    # ------------------------------------------------------------------ figures

    def snapshot(self, spaces: list[str], start: float, end: float, now: float, project: bool = True) -> Snapshot:
        """Figures of `spaces` for [start, end), with this month's and today's, including the current stints;
        `project` also reads the last 7 days, which the month's projection needs."""
        days = report.days_between(min(start, now - 7 * DAY) if project else start, min(end, now) - 1)
        month = report.month_of(now)
        with bulk_decoding():
            return self._snapshot(spaces, days, month, start, end, now, project)

    def _snapshot(self, spaces: list[str], days: list[str], month: str, start: float, end: float, now: float,
                  project: bool) -> Snapshot:
        facts = self.store.facts(spaces, days, [month])
        catalogue = self.catalogues.current
        rows, prices, months, today = [], {}, {}, {}
        today_day = day_of(now)
        for space in spaces:
            item = facts[space]
            price = catalogue.price(item.state.hardware) if item.state else None
            item = report.with_open_stint(item, now, price)
            facts[space] = item
            prices[space] = price
            rows.append(report.summarise(item, start, end, now))
            months[space] = report.month_projection(item, now, price) if project else \
                (item.months.get(month, 0.0),) * 2
            day = item.days.get(today_day)
            today[space] = day.cost if day else 0.0
        rows.sort(key=lambda r: (-r.cost, r.space))
        return Snapshot(rows, facts, prices, months, today)

    def glance(self, spaces: list[str], now: float) -> Snapshot:
        """What the App Home needs, cheaply: each Space's state, today's and this month's spend."""
        today, month = day_of(now), report.month_of(now)
        today_start = float(int(now) // DAY * DAY)
        month_start, _ = report.month_bounds(month)
        with bulk_decoding():
            facts = self.store.facts(spaces, [today], [month])
        catalogue = self.catalogues.current
        rows, prices, months, todays = [], {}, {}, {}
        for space in spaces:
            item = facts[space]
            state = item.state
            price = catalogue.price(state.hardware) if state else None
            row = SpaceCost(space)
            if state is not None:
                row.first_seen, row.stage, row.hardware = state.first_seen, state.stage, state.hardware
                row.since, row.sleep_time, row.error = state.since, state.sleep_time, state.error
            day = item.days.get(today)
            todays[space] = (day.cost if day else 0.0) + report.open_cost(state, price, today_start, now)
            so_far = item.months.get(month, 0.0) + report.open_cost(state, price, month_start, now)
            months[space] = (so_far, so_far)
            row.cost = todays[space]
            prices[space] = price
            rows.append(row)
        return Snapshot(rows, facts, prices, months, todays)

    def period(self, spaces: list[str], start: float, end: float, length: int, now: float) -> tuple[Snapshot, float]:
        """The Spaces over whole past days [start, end) and the total of the `length` days before."""
        days = report.days_between(start, end - 1)
        previous_days = report.days_between(start - length * DAY, start - 1)
        catalogue = self.catalogues.current
        rows, prices, previous = [], {}, 0.0
        with bulk_decoding():
            for space, item in self.store.summaries(spaces, previous_days, days).items():
                price = catalogue.price(item.state.hardware) if item.state else None
                row, before = report.period_row(item, previous_days, days, start, end, now, price)
                rows.append(row)
                prices[space] = price
                previous += before
        rows.sort(key=lambda r: (-r.cost, r.space))
        return Snapshot(rows, {}, prices, {}, {}), previous

    def idle(self, snap: Snapshot, now: float) -> list[SpaceCost]:
        return [r for r in snap.rows if report.is_idle_spend(r, snap.prices.get(r.space), now)]

    # ------------------------------------------------------------------ /space cost

    def cost(self, cmd: Command, actor: Actor) -> Reply:
        now = self.clock()
        if cmd.space:
            scope, spaces = cmd.space, self.in_scope(cmd.space)
        else:
            scope, spaces = self.channel_scope(actor.channel)
            if not spaces:
                return words.nothing_watched_here(actor.channel)
        if not spaces:
            return words.nothing_to_report(scope)
        month_label = "This month"
        if cmd.month is not None:
            month = cmd.month or report.month_of(now)
            start, end = report.month_bounds(month)
            period = f"{month}" + (" (so far)" if start <= now < end else "")
        else:
            days = cmd.days or 7
            start = (int(now) // DAY - days + 1) * DAY
            end = now
            period = f"last {days} day{'s' if days != 1 else ''} ({day_of(start)} → {day_of(now)}, UTC)"
        snap = self.snapshot(spaces, start, end, now)
        if not any(f.state for f in snap.facts.values()):
            return words.nothing_to_report(scope)
        so_far = sum(m[0] for m in snap.month.values())
        projected = sum(m[1] for m in snap.month.values())
        reply = words.cost_reply(scope, period, snap.rows, snap.total, (so_far, projected), self.idle(snap, now),
                                 snap.prices, snap.first_seen(), now, self.hub_url, month_label)
        if cmd.chart:
            self._chart_after(actor.channel, f"Spend of {scope}, {period}", snap, start, end, now)
        return reply

    def _chart_after(self, channel: str, title: str, snap: Snapshot, start: float, end: float, now: float) -> None:
        """`--chart`: the same picture as the digest, uploaded to the channel."""
        png = self.chart_png(title, snap, start, end, now)
        self.upload(channel, None, png, "spend.png", title)

    def chart_png(self, title: str, snap: Snapshot, start: float, end: float, now: float) -> bytes:
        days = report.days_between(start, min(end, now) - 1)
        top = [r.space for r in snap.rows]
        strips = {}
        broken_first = sorted(snap.rows, key=lambda r: (report.broken_now(r, now) is None, -r.cost, r.space))
        drawn = broken_first[:chart.STRIP_ROWS]
        self._read_strips([r for r in drawn if not r.strips], days, start, end, now, snap.prices)
        for row in drawn:
            strips[row.space] = "".join(row.strips.get(day, "." * 24) for day in days)
        daily = {space: snap.rows[i].daily for i, space in enumerate(top)}
        return chart.render(title, days, daily, strips)

    def _read_strips(self, rows: list[SpaceCost], days: list[str], start: float, end: float, now: float,
                     prices: dict[str, float | None]) -> None:
        """Hour strips for rows summed from day summaries (which have none): the day hashes of just these."""
        if not rows:
            return
        detailed = self.store.periods([r.space for r in rows], [], days)
        for row in rows:
            full, _ = report.period_row(detailed[row.space], [], days, start, end, now, prices.get(row.space))
            row.strips = full.strips

    def upload(self, channel: str, thread_ts: str | None, png: bytes, filename: str, title: str) -> bool:
        if self.slack is None:
            log.info("no Slack client: chart %s not uploaded", filename)
            return False
        try:
            self.slack.files_upload_v2(channel=channel, thread_ts=thread_ts, content=png, filename=filename,
                                          title=title)
            return True
        except Exception as err:  # noqa: BLE001 — a chart that didn't upload must not lose the report
            log.warning("chart upload to %s failed: %s", channel, type(err).__name__)
            return False

    # ------------------------------------------------------------------ budgets

    def _month_of_namespace(self, namespace: str, now: float) -> tuple[float, float, list[tuple[str, float]],
                                                                         tuple[float, str] | None]:
        spaces = self.in_scope(f"{namespace}/*")
        start, end = report.month_bounds(report.month_of(now))
        snap = self.snapshot(spaces, start, end, now)
        spent = sum(m[0] for m in snap.month.values())
        projected = sum(m[1] for m in snap.month.values())
        top = sorted(((s, m[0]) for s, m in snap.month.items() if m[0] > 0), key=lambda x: -x[1])
        return spent, projected, top, snap.first_seen()

    def budget(self, cmd: Command, actor: Actor) -> Reply:
        namespace = namespace_of(cmd.space)
        spent, projected, _, first = self._month_of_namespace(namespace, self.clock())
        return words.budget_show_reply(cmd.space, self.store.budgets().get(namespace), spent, projected, first)

    def _require_admin(self, actor: Actor) -> None:
        if not self.roles.is_admin(actor.user):
            raise NotAllowed(f"Budgets are set by admins, which you are not. Admins: {self.roles.who_holds('admin')}.")

    def budget_set(self, cmd: Command, actor: Actor) -> Reply:
        self._require_admin(actor)
        namespace = namespace_of(cmd.space)
        self.records.require()
        self.store.set_budget(namespace, float(cmd.amount or 0), actor.channel, actor.user, self.clock())
        self.records.audit(actor.user, "budget.set", cmd.space, {"amount": cmd.amount, "channel": actor.channel})
        return words.budget_set_reply(actor.user, cmd.space, float(cmd.amount or 0), actor.channel)

    def budget_off(self, cmd: Command, actor: Actor) -> Reply:
        self._require_admin(actor)
        self.records.require()
        existed = self.store.remove_budget(namespace_of(cmd.space))
        if existed:
            self.records.audit(actor.user, "budget.off", cmd.space, {})
        return words.budget_off_reply(actor.user, cmd.space, existed)

    def check_budgets(self, now: float) -> int:
        """Queue each threshold's alert once per month (projected to exceed, 80%, 100%); every 5 minutes
        of the leader's clock at most, since a namespace's month is a read of every one of its Spaces."""
        if now - self._budgets_checked < BUDGET_EVERY:
            return 0
        self._budgets_checked = now
        queued = 0
        month = report.month_of(now)
        for namespace, budget in self.store.budgets().items():
            amount = float(budget["amount"])
            spent, projected, top, first = self._month_of_namespace(namespace, now)
            crossed = []
            if projected > amount:
                crossed.append("projected")
            if spent >= 0.8 * amount:
                crossed.append("80")
            if spent >= amount:
                crossed.append("100")
            for threshold in crossed:
                if not self.store.first_alert(namespace, month, threshold):
                    continue
                payload = json.dumps({"namespace": namespace, "threshold": threshold, "amount": amount,
                                      "spent": spent, "projected": projected, "top": top[:5],
                                      "first": list(first) if first else None})
                self.outbox.enqueue_one(f"budget:{namespace}:{month}:{threshold}", budget["channel"], BUDGET_OP,
                                        payload)
                queued += 1
        return queued

    def _deliver_budget(self, channel: str, payload: str) -> None:
        data = json.loads(payload)
        reply = words.budget_alert(f"{data['namespace']}/*", data["threshold"], data["amount"], data["spent"],
                                   data["projected"], [tuple(t) for t in data["top"]], self.hub_url,
                                   tuple(data["first"]) if data.get("first") else None)
        self.poster.post(channel, reply.text, reply.blocks)

    # ------------------------------------------------------------------ digests

    def digest(self, cmd: Command, actor: Actor) -> Reply:
        self.records.require()
        existed = cmd.channel in self.store.digests()
        self.store.set_digest(cmd.channel, {"period": cmd.period, "time": cmd.at, "tz": cmd.tz, "by": actor.user,
                                            "at": self.clock()})
        self.records.audit(actor.user, "digest", "", {"channel": cmd.channel, "period": cmd.period, "time": cmd.at,
                                                      "tz": cmd.tz})
        return words.digest_set_reply(actor.user, cmd.channel, cmd.period, cmd.at, cmd.tz, existed)

    def digest_off(self, cmd: Command, actor: Actor) -> Reply:
        self.records.require()
        existed = self.store.remove_digest(cmd.channel)
        if existed:
            self.records.audit(actor.user, "digest.off", "", {"channel": cmd.channel})
        return words.digest_off_reply(cmd.channel, existed)

    def digests(self, cmd: Command, actor: Actor) -> Reply:
        return words.digests_reply(self.store.digests())

    def digest_tick(self, now: float | None = None) -> int:
        """Post every digest that is due and not yet posted (on the poll leader only); returns how many."""
        now = self.clock() if now is None else now
        if not self.leading(now):
            return 0
        posted = 0
        for channel, config in self.store.digests().items():
            due = digest_due(config, now)
            if due is None:
                continue
            period, due_at = due
            if due_at < float(config.get("at") or 0) or now - due_at > DIGEST_LATE_LIMIT:
                continue  # set after this one was due, or missed so long ago it would mislead
            if not self.store.claim_digest(channel, period):
                continue
            try:
                self.post_digest(channel, config, due_at, now)
                posted += 1
            except Exception:  # noqa: BLE001 — not posted: free the claim so the next minute tries again
                self.store.unclaim_digest(channel, period)
                log.exception("digest for %s (%s) not posted; will retry", channel, period)
        return posted

    def post_digest(self, channel: str, config: dict, due_at: float, now: float) -> str:
        weekly = config.get("period") == "weekly"
        length = 7 if weekly else 1
        end = int(due_at) // DAY * DAY  # whole UTC days before the day it is due
        start = end - length * DAY
        _, spaces = self.channel_scope(channel)
        snap, previous = self.period(spaces, start, end, length, now)
        label = "Weekly" if weekly else "Daily"
        title = (f"{label} digest — {day_of(start)}" + (f" → {day_of(end - 1)}" if weekly else "") + " (UTC)")
        broken = [r for r in snap.rows if report.broken_now(r, now)][:words.MAX_ROWS]
        try:
            self.prefetch({r.space for r in broken if r.error})
        except Exception:  # noqa: BLE001 — each one is then looked up (or hidden) on its own
            log.warning("visibilities of broken Spaces not prefetched", exc_info=True)
        broken = [self._shown_to(r, channel) for r in broken]
        reply = words.digest_message(title, snap.rows, snap.total, previous, self.idle(snap, now), broken,
                                     snap.prices, snap.first_seen(), now, self.hub_url,
                                     late=now - due_at > 15 * 60)
        ts = self.poster.post(channel, reply.text, reply.blocks)
        self.upload(channel, ts, self.chart_png(title, snap, start, end, now), "digest.png", title)
        return ts

    def _shown_to(self, row: SpaceCost, channel: str) -> SpaceCost:
        """The row as `channel` may see it: a private Space's error text only where its namespace is in
        scope (or in a DM), as `/space status` shows it."""
        if not row.error:
            return row
        try:
            if self.reveals(row.space, Actor("", channel)):
                return row
        except Exception:  # noqa: BLE001 — when privacy can't be known, the details stay hidden
            log.warning("could not tell whether %s is private; its error text is left out", row.space)
        return replace(row, error=None, hidden=True)

    # ------------------------------------------------------------------ App Home

    def home(self, user: str, page: int, now: float) -> dict:
        """The user's App Home: page 0 ranks broken and costly Spaces first; pages 1… list every one."""
        spaces = self.watched()
        snap = self.glance(spaces, now)
        month = {s: m[0] for s, m in snap.month.items()}
        if page == 0:
            rows = sorted(snap.rows, key=lambda r: (report.broken_now(r, now) is None, -month.get(r.space, 0.0),
                                                    r.space))
        else:
            rows = sorted(snap.rows, key=lambda r: r.space)
        namespaces: dict[str, dict] = {}
        for row in snap.rows:
            c = namespaces.setdefault(namespace_of(row.space), {"running": 0, "asleep": 0, "broken": 0, "month": 0.0})
            c["running"] += report.is_up(row.stage)
            c["asleep"] += row.stage in ("SLEEPING", "STOPPED")
            c["broken"] += report.broken_now(row, now) == "broken"
            c["month"] += month.get(row.space, 0.0)
        ordered_ns = sorted(namespaces.items(), key=lambda x: (-x[1]["broken"], -x[1]["month"], x[0]))
        requests = self.pending_requests() if self.roles.is_approver(user) else []
        spend = {s: (snap.today.get(s, 0.0), month.get(s, 0.0)) for s in spaces}
        return words.home_view(rows, spend, snap.prices, ordered_ns, self.roles.is_operator(user), requests,
                               self.catalogues.current, page, snap.first_seen(), now, self.hub_url)

    def stage_fingerprint(self) -> str:
        """Changes when any watched Space changes stage (or the watched set changes)."""
        spaces = self.watched()
        pipe = self.records.redis.pipeline(transaction=False)
        for space in spaces:
            pipe.hget(state_key(space), "stage")
        stages = pipe.execute() if spaces else []
        return hashlib.sha1(json.dumps(list(zip(spaces, stages))).encode()).hexdigest()

    def publish_home(self, user: str, page: int = 0, now: float | None = None, opened: bool = False) -> bool:
        """views.publish the user's Home with the last view's hash; False when nothing was published."""
        now = self.clock() if now is None else now
        if self.slack is None or not user:
            return False
        if opened:
            self.store.opened_home(user, now)
        fingerprint = self.stage_fingerprint()
        view = self.home(user, page, now)
        old_hash, _ = self.store.home_hash(user)
        for attempt in (0, 1):
            try:
                answer = self.slack.views_publish(user_id=user, view=view, hash=old_hash or None)
                break
            except SlackApiError as err:
                if attempt == 0 and (err.response or {}).get("error") == "hash_conflict":
                    old_hash = ""  # published meanwhile (another replica or click): ours is newer
                    continue
                raise
        new_hash = ((answer.get("view") or {}).get("hash")) or ""
        self.store.save_home_hash(user, new_hash, fingerprint)
        return True

    def refresh_homes(self, now: float) -> int:
        """Republish the Home of users who opened it in the last hour when a Space they see changed stage,
        at most once per user per 10 s (a user left out now is caught on a later tick)."""
        users = self.store.recent_home_users(now - HOME_RECENT)
        if not users or self.slack is None:
            return 0
        fingerprint = self.stage_fingerprint()
        done = 0
        for user in users:
            if self.store.home_hash(user)[1] == fingerprint or not self.store.debounce(user, now, HOME_DEBOUNCE):
                continue
            try:
                done += self.publish_home(user, 0, now)
            except Exception:  # noqa: BLE001 — one user's view must not stop the others
                log.exception("home refresh for %s failed", user)
        return done
