"""Wiring: one typed `Context` holding the edges and every feature's service, and the Bolt app built on it."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import redis
from slack_bolt import App
from slack_bolt.error import BoltError
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.access.identity import Identities
from bot.access.service import Access
from bot.access.store import scope_client
from bot.alerts.keys import state_key
from bot.alerts.retention import Retention
from bot.alerts.transitions import SpaceState, Unreadable
from bot.alerts.watcher import Watcher
from bot.alerts.webhooks import WebhookCommands
from bot.approvals.flow import ApprovalKind, Approvals
from bot.commands.tools import Tools
from bot.commands.canonical import Canonical
from bot.commands.operations import Operations
from bot.core import hub, memory
from bot.core.changes import Changes
from bot.core.errors import ConfigError
from bot.core.flavors import CatalogueSource, ThrottledCatalogue
from bot.core.hub import Spaces
from bot.core.permissions import Roles
from bot.core.settings import Settings
from bot.core.slack import Poster, SlackPoster, make_web_client
from bot.core.store import Store, check_server_version, connect, fast_client
from bot.core.work import Timers, WorkPool
from bot.schedules.feature import Schedules
from bot.schedules.slackzone import SlackZones
from bot.fleet.service import Fleet
from bot.signin.flow import POLL_EVERY, SignIn
from bot.signin.links import Links
from bot.signin.refresh import Refresh
from bot.surfaces import Previews, Steps

log = logging.getLogger(__name__)
SLOW_DEADLINE = 120.0  # the slow jobs' runs, off the tick; the quick ones have bot/core/jobs.py's default


@dataclass
class Context:
    """Everything a handler or job needs; built once per process by `build_context`."""

    settings: Settings
    store: Store
    poster: Poster
    pool: ThreadPoolExecutor
    client: WebClient | None
    roles: Roles
    spaces: Spaces
    catalogues: CatalogueSource
    ops: Operations
    watcher: Watcher
    approvals: Approvals
    schedules: Schedules
    fleet: Fleet
    access: Access | None = None
    previews: Previews | None = None  # link previews (handlers/surfaces.py)
    steps: Steps | None = None        # Workflow Builder steps
    tools: Tools | None = None        # logs, dev mode, volumes (its log deadlines are set here in tests)
    signin: SignIn | None = None      # /space login, whoami, logout and the device-code poll
    timers: Timers = field(default_factory=Timers)
    # "Waiting for the Hub…" after the first, an answer (maybe "the Hub did not answer") by the second.
    reply_deadlines: tuple[float, float] = (3.0, 8.0)

    def warm(self, connections: int) -> None:
        """Before taking requests: the worker threads, the timer thread and `connections` Redis connections
        for the ack path, so the first burst after a start waits for none of them (bench/ack.py)."""
        if isinstance(self.pool, WorkPool):
            self.pool.start_workers()
        self.timers.start()
        self.store.warm(connections)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.timers.stop()
        self.watcher.stop(release=True)
        if self.access is not None:
            self.access.close()
        if self.previews is not None:
            self.previews.close()


def build_context(settings: Settings, redis_client: redis.Redis | None = None, poster: Poster | None = None,
                  client: WebClient | None = None) -> Context:
    """Build the edges, then the features in dependency order: alerts, approvals, commands."""
    memory.tune()  # before the worker threads start (bot/core/memory.py)
    redis_client = redis_client or connect(settings.redis_url, cluster=settings.redis_cluster)
    check_server_version(redis_client)  # 7.0 or newer, or a sentence saying what needs it
    # Who a member is on the Hub (SPACEOPS_ROLES_FROM=hub|both), read from their link for the gate and the audit.
    identities = Identities(settings, Links(scope_client(redis_client)))
    store = Store(redis_client, fast=fast_client(redis_client), identify=identities.describe)
    if poster is None:
        client = client or make_web_client(settings)
        poster = SlackPoster(client)
    if settings.approval_channel.startswith("#") and client is not None:
        settings = replace(settings, approval_channel=resolve_channel(client, settings.approval_channel))
    roles = Roles(settings, getattr(poster, "group_members", None))
    api = hub.make_api(settings)
    spaces = Spaces(api, settings.hf_endpoint)
    # One catalogue for every replica, in Redis; the poll leader refreshes it hourly (below).
    catalogues = CatalogueSource(spaces.hardware, store.redis, clock=store.clock, fast=store.fast)

    # Who may do what, where: channel scopes, private Spaces, the workspace boundary, guests and readers.
    access = Access(settings, store, roles, api, client, identities=identities)
    # The poller prices every Space it reads: it looks at the shared catalogue at most every few seconds.
    # Alerts go where access allows (looked up together before routing); the batched reads tell access
    # which Spaces are private; follow-through shows private details only where the gate allows.
    watcher = Watcher(settings, store, poster, api, spaces, ThrottledCatalogue(catalogues),
                      may_post=access.may_alert, prepare=access.prefetch, privacy=access.observed,
                      reveals=access.reveals_in, may_post_in=access.may_alert_in)
    # The one way out to the Hub for changes: attempt audited first, the poller's budget, a deadline, sentences.
    changes = Changes(api, store, watcher.poller.budget, 2 * settings.hub_timeout)
    # Everything the bot says on its own goes out one way (bot/core/deliver.py): claimed, marked, looked for.
    deliveries = watcher.deliveries
    # An approved upgrade makes the Space hot (its message is the approval's, edited by the approvals flow).
    approvals = Approvals(settings, store, spaces, roles, deliveries, catalogues, later=watcher.outbox.enqueue_one,
                          changes=changes, applied=watcher.follow.heat_applied, deciders=access,
                          follow=watcher.follow.follow_applied)
    # Changes made through the bot make the Space hot and are followed in their announcement; Space ids are
    # put in the Hub's casing first, then access checks the command.
    ops = Operations(settings, api, spaces, store, roles, catalogues, upgrades=approvals,
                     budget=watcher.poller.budget, changes=watcher.follow,
                     rewrites=[Canonical(api, store.redis).command], guards=[access.check], reveals=access.reveals,
                     changes_out=changes)
    # Every cost increase goes through the same approval flow: commands' own actions (resume, sleep) too.
    for action, (apply, landed) in ops.approval_appliers().items():
        approvals.register(action, ApprovalKind(apply, landed))
    for name, handler in access.commands().items():
        ops.handle(name, handler)
    # Logs, dev mode, volumes (bot/commands/tools.py): a long log goes out as a file the one way out; an asleep
    # Space's logs say when the poller saw it stop running.
    tools = Tools(ops, deliveries=deliveries, ran_until=lambda space, stage: stage_since(store, space, stage))
    for name, handler in tools.commands().items():
        ops.handle(name, handler)
    for line in settings.warnings():
        log.warning(line)
    schedules = Schedules(settings, store, api, spaces, roles, deliveries, catalogues, approvals=approvals,
                          timezone_of=SlackZones(client), later=watcher.outbox.enqueue_one, changes=changes,
                          budget=watcher.poller.budget, check=ops.check)
    schedules.register_kinds(approvals)
    watcher.outbox.handlers.update(schedules.deliveries())
    # Schedule occurrences, reminders and reverts run for the poll leader's tick, with its clock, off the tick
    # (Hub calls per Space): paced by the Hub budget and a deadline, the lease checked before each change.
    jobs = watcher.periodic
    jobs.add("schedules", schedules.tick, deadline=SLOW_DEADLINE, slow=True, takes_lease=True)

    # Approval edits that Slack refused are retried by the outbox, whichever replica drains it.
    watcher.outbox.handlers.update(approvals.deliveries())
    # The leader's poll tick expires approvals, so expiry needs no click.
    jobs.add("approvals", approvals.sweep)
    jobs.add("catalogue", catalogues.refresh_if_due)
    # The fleet reads what the poller records; on the leader's tick it indexes Spaces, refreshes open App
    # Homes and checks budgets; a cron job on the leader posts digests.
    fleet = Fleet(settings, store, deliveries, watcher.store, watcher.outbox, catalogues, roles,
                  known=watcher.poller.known, leading=watcher.lease.holds,
                  pending_requests=approvals.store.open_requests, slack=client, reveals=access.reveals,
                  prefetch=access.prefetch, check=ops.check, gate=access.gate,
                  is_private=access.is_private, hidden=access.hidden, deciders=access)
    jobs.add("fleet", fleet.tick, deadline=SLOW_DEADLINE, slow=True)  # open App Homes are rebuilt: off the tick
    jobs.add("budgets", fleet.budgets.check_budgets, deadline=SLOW_DEADLINE, slow=True, takes_lease=True)
    # State, usage and history of Spaces nobody watches any more are forgotten after a while, and leave the
    # fleet's index of known Spaces.
    retention = Retention(store.redis, watcher.store, forget=watcher.poller.forget_space, index=fleet,
                          marks=watcher.poller.marked)
    jobs.add("retention", retention.run)
    watcher.cron.append(("digests", fleet.digest_tick, {"minute": "*", "second": 5}))
    webhook = WebhookCommands(settings, api, store, watcher.store, roles.is_admin, changes=changes,
                              require_admin=access.require_admin)
    for name, handler in {**watcher.commands(), **approvals.commands(), **schedules.commands(),
                          **fleet.commands(), **webhook.commands()}.items():
        ops.handle(name, handler)
    # Sign in with Hugging Face: each replica polls the codes that are due (a claim per code keeps them
    # apart); the leader refreshes each link's roles every SPACEOPS_HUB_ROLES_TTL, off the tick.
    signin = SignIn(settings, store, deliveries)
    for name, handler in signin.commands().items():
        ops.handle(name, handler)
    watcher.cron.append(("signin-poll", signin.scheduled, {"second": f"*/{POLL_EVERY}"}))
    if signin.enabled:
        refresh = Refresh(settings, store, deliveries, signin.links, signin.vault, signin.oauth)
        jobs.add("signin-refresh", refresh.run, deadline=SLOW_DEADLINE, slow=True, takes_lease=True)
    ctx = Context(settings, store, poster, WorkPool(settings.workers, settings.queue), client, roles, spaces,
                  catalogues, ops, watcher, approvals, schedules, fleet, access=access, tools=tools,
                  signin=signin)
    # Link previews and workflow steps ask the same gate and act through the same commands; a waiting step
    # is finished on the leader's tick from the poller's observations of the Space it made hot.
    ctx.previews = Previews(store, ops, access, known=watcher.poller.known)
    hot = watcher.hot
    ctx.steps = Steps(store, ops, approvals, heat=lambda space, now: hot.get(space) or hot.heat(space, now, "step"),
                      client=client, space_url=lambda space: f"{settings.hf_endpoint}/spaces/{space}")
    jobs.add("steps", ctx.steps.tick)
    watcher.hot_poller.listeners.append(ctx.steps.observed)
    if settings.ops_channel:
        from bot.health import SelfReport

        # On the leader's tick: the ops channel hears once when the bot's own trouble starts and once when it ends.
        jobs.add("ops-report", SelfReport(ctx, settings.ops_channel))
    return ctx


def stage_since(store: Store, space: str, stage: str) -> float | None:
    """When the poller saw `space` enter `stage` (asleep counts as one stage), or None when it has not."""
    try:
        state = SpaceState.from_fields(space, store.redis.hgetall(state_key(space)))
    except Unreadable:
        return None
    asleep = {"SLEEPING", "STOPPED"}
    if state is None or not state.since or not (state.stage == stage or {state.stage, stage} <= asleep):
        return None
    return state.since


def resolve_channel(client: WebClient, name: str) -> str:
    """`#ops` → its channel id (conversations.list, paged), or a ConfigError naming SPACEOPS_APPROVAL_CHANNEL."""
    wanted = name.lstrip("#").lower()
    cursor = None
    try:
        for _ in range(100):  # at most 100 pages of 1,000 channels
            page = client.conversations_list(types="public_channel,private_channel", exclude_archived=True,
                                             limit=1000, cursor=cursor)
            for channel in page.get("channels") or []:
                if str(channel.get("name", "")).lower() == wanted:
                    return str(channel["id"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
    except (SlackApiError, OSError) as err:
        raise ConfigError(f"SPACEOPS_APPROVAL_CHANNEL={name}: Slack could not list channels to find it ({err}). "
                          f"Give the channel id instead (C…, from the channel's details).") from err
    raise ConfigError(f"SPACEOPS_APPROVAL_CHANNEL={name}: Space Ops sees no channel of that name. Check the "
                      f"spelling, invite Space Ops to a private channel, or give the channel id (C…).")


def build_app(ctx: Context) -> App:
    """The Bolt app with every listener. The signing secret must be set (checked by the CLI)."""
    from handlers import register_all

    quiet_token_warning()
    try:
        # Bolt checks the token with auth.test right here.
        app = App(
            client=ctx.client,
            signing_secret=ctx.settings.slack_signing_secret,
            # Listeners only parse, ack and hand the Hub work to ctx.pool, so they can run inline on the HTTP
            # thread: no hop through Bolt's executor and no 10 ms ack polling (bench/ack.py).
            process_before_response=True,
        )
    except BoltError as err:
        raise ConfigError(f"Slack refused SLACK_BOT_TOKEN ({err}). Copy the Bot User OAuth Token (xoxb-…) from "
                          f"the app's OAuth & Permissions page.") from err
    except OSError as err:
        raise ConfigError(f"Slack cannot be reached at {ctx.settings.slack_api_base} ({err}). Check the network "
                          f"or SLACK_API_URL.") from err
    register_all(app, ctx)
    return app


class _DropTokenUnused(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment even when given a client built from it, and warns that
    the token "will be unused" at every start: true and harmless, so dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


def quiet_token_warning() -> None:
    logger = logging.getLogger("slack_bolt.App")
    if not any(isinstance(f, _DropTokenUnused) for f in logger.filters):
        logger.addFilter(_DropTokenUnused())
