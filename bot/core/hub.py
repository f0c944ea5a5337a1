"""The Hub edge: `huggingface_hub.HfApi` with a timeout, and its errors turned into sentences."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from typing import Callable, Iterator, TypeVar

import huggingface_hub
from huggingface_hub import HfApi, constants
from huggingface_hub.errors import BadRequestError, HfHubHTTPError, RepositoryNotFoundError
from huggingface_hub.utils import httpx, set_client_factory

from bot.core.blocks import clip
from bot.core import metrics
from bot.core.errors import HubRefused, HubUnavailable, NotFound, RateLimited
from bot.core.markup import code, escape
from bot.core.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

# The client otherwise asks huggingface.co for an "agent harness" registry on its first request,
# whatever HF_ENDPOINT says at run time: nothing may leave for the Hub except our own calls.
constants.HF_HUB_DISABLE_TELEMETRY = True

_RATE_LIMIT = re.compile(r"r=(\d+)\s*;\s*t=(\d+)")
_factory_lock = threading.Lock()
_factory_timeout: float | None = None


def _client_request_hook():
    """The request hook huggingface_hub's own client factory installs (offline mode, request ids).

    It is a private name (`huggingface_hub.utils._http`); no public one serves, and a factory without it
    would silently ignore HF_HUB_OFFLINE. This is the only place a private module of the client is read.
    """
    from huggingface_hub.utils._http import hf_request_event_hook

    return hf_request_event_hook


def install_timeout(seconds: float) -> None:
    """Give the process-wide HTTP client of huggingface_hub a timeout (it has none by default)."""
    global _factory_timeout
    with _factory_lock:
        if _factory_timeout == seconds:
            return
        _factory_timeout = seconds

        def factory() -> httpx.Client:
            return httpx.Client(
                event_hooks={"request": [_client_request_hook(), _before_request],
                             "response": [_after_response]},
                follow_redirects=True,
                timeout=httpx.Timeout(seconds, connect=min(seconds, 5.0)),
                transport=_ObservingTransport(
                    default_timeout=seconds,
                    limits=httpx.Limits(max_connections=64, max_keepalive_connections=32)),
            )

        set_client_factory(factory)


# ---------------------------------------------------------------- reads the poller watches itself

RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_observer = threading.local()


class CallAborted(Exception):
    """A watched read ended at its first failure; `reason` is short ("429", "timeout")."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _Observation:
    def __init__(self, before_each: Callable[[], None] | None, deadline: float | None, quiet: float | None = None):
        self.before_each = before_each
        self.deadline = deadline  # time.monotonic() after which the whole call is given up
        self.quiet = quiet        # the longest wait for the answer to start, or between two of its bytes
        self.responses: list = []


@contextlib.contextmanager
def observed(before_each: Callable[[], None] | None = None, seconds: float | None = None,
             quiet: float | None = None) -> Iterator[list]:
    """Watch this thread's HfApi calls: yields the list of every response (for their RateLimit headers).

    Inside, `before_each()` runs before each HTTP request (it may raise to stop), and the first 408/429/5xx
    or transport error raises CallAborted at once: `list_spaces` would otherwise sleep and retry for up
    to half a minute, stalling a poll cycle. With `seconds`, the whole call (every page, every byte of
    every body) must end within that wall-clock time, or CallAborted("timeout") is raised: a server
    that trickles bytes or keep-alive events never holds a reader longer. With `quiet`, a server that says
    nothing at all for that long (no headers, no byte, not even a keep-alive) is given up sooner.
    """
    observation = _Observation(before_each, time.monotonic() + seconds if seconds is not None else None, quiet)
    _observer.current = observation
    try:
        yield observation.responses
    finally:
        _observer.current = None


class _ObservingTransport(httpx.HTTPTransport):
    """Gives every request a timeout; only calls made inside `observed()` are counted and cut short.

    `HfApi.list_spaces` passes `timeout=None` down to httpx, which turns it into "no timeout at all",
    overriding the client's default: the transport is the one place every request passes, so a
    request without a timeout gets `default_timeout` here.
    """

    def __init__(self, default_timeout: float = 10.0, **kwargs):
        super().__init__(**kwargs)
        self.default_timeout = default_timeout

    def _bound(self, request, deadline: float | None, quiet: float | None = None) -> None:
        timeouts = dict(request.extensions.get("timeout") or {})
        left = None if deadline is None else max(0.001, deadline - time.monotonic())
        for name in ("connect", "read", "write", "pool"):
            value = timeouts.get(name)
            value = self.default_timeout if value is None else value
            timeouts[name] = value if left is None else min(value, left)
        if quiet is not None:
            timeouts["read"] = min(timeouts["read"], quiet)
        request.extensions = {**request.extensions, "timeout": timeouts}

    def handle_request(self, request):
        observation = getattr(_observer, "current", None)
        if observation is None:
            deadline = getattr(_deadline, "current", None)
            if deadline is not None and time.monotonic() >= deadline:
                # Not sent: a change whose time is up asks nothing more of the Hub (see `deadline()`).
                raise httpx.ConnectTimeout("the change's deadline passed before this request", request=request)
            self._bound(request, deadline)
            return super().handle_request(request)
        if observation.deadline is not None and time.monotonic() >= observation.deadline:
            raise CallAborted("timeout")
        self._bound(request, observation.deadline, observation.quiet)
        if observation.before_each:
            observation.before_each()
        try:
            response = super().handle_request(request)
        except httpx.TimeoutException as err:
            metrics.hub_response(request.method, request.url.path, "timeout", None)
            raise CallAborted("timeout") from err
        except httpx.TransportError as err:
            metrics.hub_response(request.method, request.url.path, "unreachable", None)
            raise CallAborted("Hub unreachable") from err
        observation.responses.append(response)
        if response.status_code in RETRIED_STATUSES:
            response.close()
            metrics.hub_response(request.method, request.url.path, response.status_code, None)
            raise CallAborted(str(response.status_code))
        if observation.deadline is not None:
            response.stream = _DeadlineStream(response.stream, observation.deadline)
        return response


class _DeadlineStream(httpx.SyncByteStream):
    """A response body that must arrive before a wall-clock deadline, however the server paces it."""

    def __init__(self, inner, deadline: float):
        self.inner = inner
        self.deadline = deadline

    def __iter__(self):
        try:
            for chunk in self.inner:
                if time.monotonic() >= self.deadline:
                    raise CallAborted("timeout")
                yield chunk
        except httpx.TimeoutException as err:
            raise CallAborted("timeout") from err

    def close(self) -> None:
        self.inner.close()


# ---------------------------------------------------------------- a change's deadline (bot/core/changes.py)

_deadline = threading.local()


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """This thread's HfApi requests (outside `observed()`) end within `seconds` of now, all together: each
    request's timeouts are cut to what is left, and none is sent once it is over (a timeout, as a sentence
    through `hub_errors`). Nested, the earlier deadline wins."""
    outer = getattr(_deadline, "current", None)
    mine = time.monotonic() + seconds
    _deadline.current = mine if outer is None else min(outer, mine)
    try:
        yield
    finally:
        _deadline.current = outer


# ---------------------------------------------------------------- every request: metrics, command metering

_meter = threading.local()


@contextlib.contextmanager
def metered(before_each: Callable[[], None], after_each: Callable[[object], None]) -> Iterator[None]:
    """Meter this thread's HfApi requests (a command's): `before_each()` may raise a SpaceOpsError to stop
    the request; `after_each(response)` sees every response (for its RateLimit header)."""
    outer = getattr(_meter, "current", None)
    _meter.current = (before_each, after_each)
    try:
        yield
    finally:
        _meter.current = outer


def metering() -> bool:
    """Whether this thread's HfApi requests are metered already (inside a command's `metered()`)."""
    return getattr(_meter, "current", None) is not None


def _before_request(request) -> None:
    request.extensions["spaceops_started"] = time.monotonic()
    current = getattr(_meter, "current", None)
    if current:
        current[0]()


def _after_response(response) -> None:
    started = response.request.extensions.get("spaceops_started")
    metrics.hub_response(response.request.method, response.request.url.path, response.status_code,
                         time.monotonic() - started if started else None)
    remaining, _ = rate_limit_of(response)
    if remaining is not None:
        metrics.RATE_REMAINING.set(remaining)
    current = getattr(_meter, "current", None)
    if current:
        current[1](response)


def rate_limit_of(response) -> tuple[int | None, int | None]:
    """(remaining, seconds until reset) from the Hub's `RateLimit` header, or (None, None)."""
    header = response.headers.get("ratelimit", "") if response is not None else ""
    match = _RATE_LIMIT.search(header)
    return (int(match.group(1)), int(match.group(2))) if match else (None, None)


def call_lease(hub_timeout: float) -> float:
    """How long a claim on one Hub change lasts (an approval being applied, a timed upgrade being reverted):
    its Hub call is bounded by the client's timeouts (connect, send, read), so a claim older than that
    belongs to a replica that died."""
    return 3 * hub_timeout + 5


def make_api(settings: Settings) -> HfApi:
    install_timeout(settings.hub_timeout)
    return HfApi(endpoint=settings.hf_endpoint, token=settings.hf_token or False,
                 library_name="space-ops", library_version="0.1.0")


@contextlib.contextmanager
def hub_errors(space: str | None = None) -> Iterator[None]:
    """Translate whatever the Hub client raises into one of our sentences."""
    what = code(space) if space else "that"
    try:
        yield
    except RepositoryNotFoundError as err:
        raise NotFound(f"Space {what} was not found, or the bot's token cannot see it.") from err
    except BadRequestError as err:
        reason = _server_message(err) or "the request was refused"
        raise HubRefused(f"The Hub refused this for {what}: {reason}.") from err
    except HfHubHTTPError as err:
        raise _from_status(err, what) from err
    except CallAborted as err:
        raise _from_aborted(err.reason) from err
    except httpx.TimeoutException as err:
        raise HubUnavailable("The Hub did not answer in time. Nothing was confirmed; check `status` "
                             "before trying again.") from err
    except httpx.HTTPError as err:
        raise HubUnavailable("The Hub cannot be reached right now. Try again in a minute.") from err
    except (KeyError, ValueError) as err:
        # A 200 whose body does not have the shape the client expects.
        raise HubUnavailable("The Hub answered with something unexpected. Try again in a minute.") from err


def _from_aborted(reason: str) -> Exception:
    """The sentence for a call `observed()` cut short at its first failure."""
    if reason == "429":
        return RateLimited("The Hub's rate limit for the bot's token is used up. Try again in a few minutes.", None)
    if reason == "timeout":
        return HubUnavailable("The Hub did not answer in time. Nothing was confirmed; check `status` before "
                              "trying again.")
    if reason.isdigit():
        return HubUnavailable(f"The Hub had an error ({reason}). Nothing was confirmed; check `status` before "
                              f"trying again.")
    return HubUnavailable("The Hub cannot be reached right now. Try again in a minute.")


def listing(api: HfApi, namespace: str, seconds: float | None = None, **kwargs) -> list:
    """Every Space `list_spaces(author=namespace, …)` yields, consumed inside the error translation and under
    `observed()`: the first 429/5xx/transport error is a sentence at once (not the client's half-minute of
    retries), and with `seconds` the whole listing ends within that time."""
    with hub_errors(f"{namespace}/*"), observed(None, seconds):
        return list(api.list_spaces(author=namespace, **kwargs))


def _server_message(err: HfHubHTTPError) -> str:
    message = (getattr(err, "server_message", None) or "").strip().rstrip(".")
    return escape(clip(message.splitlines()[0], 300)) if message else ""


def _from_status(err: HfHubHTTPError, what: str) -> Exception:
    response = getattr(err, "response", None)
    status = getattr(response, "status_code", None)
    reason = _server_message(err)
    if status == 401:
        return HubRefused("The Hub rejected the bot's token (401). An admin should check HF_TOKEN: it must be a "
                          "write or fine-grained token, not the one from `hf auth login`.")
    if status == 403:
        detail = f" ({reason})" if reason else ""
        return HubRefused(f"The bot's token may not do this on {what}{detail}. Only the owner, or a token with "
                          f"write access to that namespace, can.")
    if status == 404:
        return NotFound(f"Space {what} was not found, or the bot's token cannot see it.")
    if status == 409:
        return HubRefused(f"The Hub says this conflicts with something that exists: {reason or 'already exists'}.")
    if status == 429:
        _, reset = rate_limit_of(response)
        when = f"in {reset} s" if reset is not None else "in a few minutes"
        return RateLimited(f"The Hub's rate limit for the bot's token is used up. Try again {when}.", reset)
    if status is not None and status >= 500:
        return HubUnavailable(f"The Hub had an error ({status}). Nothing was confirmed; check `status` before "
                              f"trying again.")
    return HubRefused(f"The Hub refused this for {what}: {reason or f'HTTP {status}'}.")


def call(fn: Callable[..., T], *args, space: str | None = None, **kwargs) -> T:
    """Run one HfApi method with our error translation."""
    with hub_errors(space):
        return fn(*args, **kwargs)


class Spaces:
    """The Hub reads several features make on a Space (commands, approvals, watches), as sentences on error.
    Changes go through `bot.core.changes.Changes`, the one audited way out."""

    def __init__(self, api: HfApi, hub_url: str):
        self.api = api
        self.hub_url = hub_url

    def runtime(self, space: str):
        return call(self.api.get_space_runtime, space, space=space)

    def hardware(self) -> list:
        return call(self.api.list_spaces_hardware)


__all__ = ["make_api", "call", "hub_errors", "install_timeout", "rate_limit_of", "huggingface_hub", "Spaces",
           "deadline", "metered", "metering"]
