"""`make demo`: Space Ops without Slack or a Hub account, in one command.

Starts the Hub emulator with demo Spaces (running, crashed, paused on paid hardware, asleep), a throwaway
redis-server, and the console as the Slack stand-in, with alerts polled every few seconds; stops them
all on exit (Ctrl-D, Ctrl-C or SIGTERM). The emulators live with the tests and ship nowhere: the
container image and the package hold only the bot.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

INTRO = """\
Space Ops demo: a local Hub emulator at {hub} with demo Spaces, a throwaway Redis at {redis}, and this
console standing in for Slack. You are @you, an operator; @alice approves paid hardware.

  /space status acme/broken            a crashed Space, with its error
  /space logs acme/broken              its last run log lines (`--build` for the build's), tokens masked
  /space dev acme/chat on              dev mode: app restarts in place are not incidents
  /space watch acme/*                  alerts about every acme Space show up here
  /space resume acme/finetune          a Space paused on paid hardware
  /space hw acme/chat a10g-small       paid hardware goes to an approver, with Approve / Deny buttons
  as alice                             act as @alice (Slack knows who clicks; the console is told)
  [Approve]                            press a button by its label (add the id when several show)
  as you                               back to yourself
  /space login                         sign in with Hugging Face: the demo Hub approves the code by itself
                                       after a few seconds (as `you-on-hf`, write in acme), then I DM you
  /space whoami                        your Hub account, its roles and what they mean here
  /space help                          every command

Ctrl-D or Ctrl-C stops the demo, its Hub emulator and its Redis.
"""


DEMO_HUB_USER = "you-on-hf"


def approve_waiting(hub, after: float) -> None:
    """Approve, as the demo user, each sign-in code that has waited `after` seconds on the demo Hub."""
    with hub.lock:
        now = hub.oauth_clock()
        waiting = [c["user_code"] for c in hub.device_codes.values()
                   if c["state"] == "pending" and now - (c["expires_at"] - hub.oauth_expires_in) >= after]
    for user_code in waiting:
        hub.approve(DEMO_HUB_USER, user_code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument("--hub-port", type=int, default=0, help="port of the Hub emulator (default: a free one)")
    parser.add_argument("--poll-seconds", type=int, default=5, help="how often watched Spaces are polled")
    parser.add_argument("--settle-seconds", type=float, default=4.0,
                        help="how long a build or a hardware change takes in the emulated Hub")
    parser.add_argument("--approve-seconds", type=float, default=3.0,
                        help="how long the demo Hub waits before it approves a sign-in code")
    args = parser.parse_args(argv)

    from cryptography.fernet import Fernet

    from bot.app import build_context
    from bot.console import main as console
    from bot.core.errors import ConfigError
    from bot.core.settings import Settings
    from bot.core.slack import ConsolePoster
    from tests.emulators.hub import HubEmulator, seed_demo, serve, settle
    from tests.emulators.redisserver import RedisServer

    if not shutil.which("redis-server"):
        print("make demo needs redis-server (Debian/Ubuntu: sudo apt-get install redis-server; "
              "macOS: brew install redis).", file=sys.stderr)
        return 2
    # SIGTERM ends the demo like Ctrl-C does: through the `finally` below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    workdir = Path(tempfile.mkdtemp(prefix="spaceops-demo-"))
    stops = []
    try:
        redis = RedisServer(workdir)
        stops.append(redis.stop)
        hub = HubEmulator(token="hf_demo")
        seed_demo(hub)
        hub.add_member(DEMO_HUB_USER, {"acme": "write", "corp": "read"})
        hub.oauth_interval = 1  # the demo user should not wait five seconds for each poll
        stop_hub, base = serve(hub, port=args.hub_port)
        stops.append(stop_hub)
        done = threading.Event()
        stops.append(done.set)

        def settling() -> None:
            while not done.wait(args.settle_seconds):
                settle(hub)
        threading.Thread(target=settling, daemon=True, name="demo-hub").start()

        def consenting() -> None:  # the demo user enters each code on the Hub's page a few seconds later
            while not done.wait(0.5):
                approve_waiting(hub, args.approve_seconds)
        threading.Thread(target=consenting, daemon=True, name="demo-consent").start()

        settings = Settings.from_env({
            "HF_ENDPOINT": base, "HF_TOKEN": "hf_demo", "REDIS_URL": redis.url,
            "SPACEOPS_POLL_SECONDS": str(args.poll_seconds), "SPACEOPS_HUB_TIMEOUT": "5",
            # Sign in with Hugging Face against the demo Hub, with a key made for this run only.
            "SPACEOPS_HUB_OAUTH_CLIENT_ID": "spaceops-demo", "SPACEOPS_SECRET_KEY": Fernet.generate_key().decode()})
        # Console people and channels go by readable names, not Slack ids (which the settings insist on).
        settings = dataclasses.replace(settings, approvers=frozenset({"alice"}), approval_channel="approvals")
        ctx = build_context(settings, poster=ConsolePoster(sys.stdout))
        stops.append(ctx.close)
        ctx.watcher.start()
        print(INTRO.format(hub=base, redis=redis.url), flush=True)
        return console(ctx, user="you")
    except ConfigError as err:
        print(f"space-ops demo: {err.sentence}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    finally:
        for stop in reversed(stops):
            try:
                stop()
            except Exception as err:  # noqa: BLE001 — stop everything else whatever one part says
                print(f"(while stopping: {err})", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
