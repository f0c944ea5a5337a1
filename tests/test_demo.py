"""`make demo` as a newcomer meets it: a script typed into `python -m tests.emulators.demo`, then everything it
started is gone. Also the console's button presses and how mentions read."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.core.words import as_text

ROOT = Path(__file__).resolve().parent.parent
DEMO = [sys.executable, "-m", "tests.emulators.demo", "--poll-seconds", "3600"]


def _clean_env():
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "HF_", "REDIS_", "SPACEOPS_"))}


def _listening(url: str) -> bool:
    host, port = re.search(r"//([\d.]+):(\d+)", url).groups()
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, int(port))) == 0


def _started(output: str) -> tuple[str, str]:
    hub = re.search(r"Hub emulator at (http://[\d.:]+)", output).group(1)
    redis = re.search(r"Redis at (redis://[\d.:]+)", output).group(1)
    return hub, redis


def _gone(*urls: str) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not any(_listening(url) for url in urls):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_demo_walks_through_the_approval_flow_and_stops_everything():
    script = "\n".join([
        "/space status acme/broken",
        "/space logs acme/broken",
        "/space logs acme/broken --build",
        "/space dev acme/chat on",
        "/space status acme/chat",
        "/space status acme/finetune",
        "/space status acme/sketch",
        "/space hw acme/chat a10g-small",
        "[Approve]",              # the requester can't approve their own
        "as alice",
        "[Deny] nope",            # no such button
        "[Approve]",
        "[Approve]",              # the buttons are gone once decided
        "/space approvals",
    ]) + "\n"
    result = subprocess.run(DEMO, cwd=ROOT, input=script, env=_clean_env(), capture_output=True, text=True,
                            timeout=120)
    out = result.stdout
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "acme/broken is crashed (`RUNTIME_ERROR`)" in out and "CUDA out of memory" in out
    assert "*" not in out.replace("acme/*", "").replace("NAMESPACE/*", "")  # bold drawn, not shown as marks
    assert "Last 7 run log lines of `acme/broken`" in out and "torch.OutOfMemoryError" in out
    assert "hf_demoAbCdEfGhIjKlMnOp" not in out and "HF_TOKEN=hf_•••" in out
    assert "Last 6 build log lines of `acme/broken`" in out and "pip install -r requirements.txt" in out
    assert "turned dev mode on for `acme/chat`" in out and "dev mode on: app restarts" in out
    assert "acme/finetune is paused" in out and "a10g-large" in out
    assert "acme/sketch is asleep" in out or "acme/sketch is sleeping" in out

    request = re.search(r"\[#approvals\] \S+ Paid hardware request from @you", out)
    assert request, out
    press = re.search(r"type \[Approve\] (\S+) or \[Deny\] \1", out)
    assert press, out
    assert "can't approve your own" in out
    assert "You are now @alice." in out
    assert "No [Deny] button for nope is showing." in out
    assert re.search(r"\[#approvals, edited\] \S+ Paid hardware request from @you", out)
    assert "Approved by @alice" in out and "@you your request to move `acme/chat`" in out
    assert "Approved: move `acme/chat` from `cpu-basic` to `a10g-small`." in out
    assert "No [Approve] button is showing." in out
    assert "<@" not in out and "<#" not in out   # mentions read as @user and #channel

    hub, redis = _started(out)
    assert _gone(hub, redis), "the demo left its Hub emulator or Redis running"


@pytest.mark.slow
def test_demo_stops_everything_on_sigterm():
    proc = subprocess.Popen(DEMO, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=_clean_env(), text=True)
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "stops the demo" in line or not line:
                break
        hub, redis = _started("".join(lines))
        assert _listening(hub) and _listening(redis)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert _gone(hub, redis)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_mentions_render_as_names_in_the_console():
    text = as_text("<@U024BE7LH> and <@alice> in <#C1|ops> and <#approvals>, ping <!subteam^S1|@oncall> <!here>")
    assert text == "@U024BE7LH and @alice in #ops and #approvals, ping @oncall @here"
    assert as_text("&lt;!channel&gt; from a user") == "<!channel> from a user"


def test_demo_signs_in_with_the_demo_hub_and_whoami_shows_the_roles():
    """`/space login` in the console: the demo Hub approves the code after a few seconds, the DM arrives, and
    `/space whoami` shows the demo user's roles. Lines are typed as a person would: after the DM shows."""
    import queue
    import threading

    proc = subprocess.Popen(DEMO + ["--approve-seconds", "1"], cwd=ROOT, env=_clean_env(), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    seen: list[str] = []

    def until(text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in seen):
            assert time.monotonic() < deadline, f"{text!r} not shown:\n{''.join(seen)}"
            try:
                seen.append(lines.get(timeout=0.5))
            except queue.Empty:
                pass
    try:
        until("Ctrl-D or Ctrl-C stops the demo")
        proc.stdin.write("/space login\n")
        proc.stdin.flush()
        until("confirm the code")
        until("Signed in as `you-on-hf` (Hugging Face). acme: write → you may restart")
        proc.stdin.write("/space whoami\n")
        proc.stdin.close()
        until("next refresh")
    finally:
        proc.wait(60)
    out = "".join(seen)
    assert "@you is `you-on-hf` on Hugging Face" in out and "corp: read → you may read its Spaces." in out
    assert proc.returncode == 0
