"""The one log reader: the last lines of a Space's run or build log, bounded in count, size and time, with
credentials masked before any line leaves the bot (crash alerts, follow-through and `/space logs`)."""

from __future__ import annotations

import re
import time
from collections import deque
from itertools import islice

from huggingface_hub import HfApi

from bot.core.hub import observed

LOG_SCAN = 5000          # lines read at most from one stream
LINE_CHARS = 2000        # a longer line is shortened with a mark saying so
TOTAL_SECONDS = 8.0      # the whole read, keep-alives or not
FIRST_SECONDS = 3.0      # the Hub must start answering (headers, a line or a keep-alive) within this
LONG_MARK = " …[line shortened: {n} characters]"

_SECRETS = [
    (re.compile(r"\bhf_[A-Za-z0-9]{8,}"), "hf_•••"),
    (re.compile(r"\bxox[a-z]-[A-Za-z0-9-]{6,}"), "xox•-•••"),
    (re.compile(r"(?i)\bBearer\s+[A-Za-z0-9._~+/=-]{6,}"), "Bearer •••"),
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), "AKIA•••"),
    (re.compile(r"(?i)(aws_secret_access_key\s*[=:]\s*)[A-Za-z0-9/+=]{30,}"), r"\1•••"),
]


def mask(line: str) -> str:
    """Credentials (Hugging Face and Slack tokens, Bearer headers, AWS keys) replaced by a mark."""
    for pattern, replacement in _SECRETS:
        line = pattern.sub(replacement, line)
    return line


def shorten(line: str, limit: int = LINE_CHARS) -> str:
    if len(line) <= limit:
        return line
    return line[:limit] + LONG_MARK.format(n=len(line))


class LogsTimedOut(Exception):
    """The Hub sent no log line within the deadline. `silent`: it sent nothing at all (not even a keep-alive)
    for `seconds`; otherwise the whole read's `seconds` passed without a line."""

    def __init__(self, space: str, seconds: float, silent: bool = False):
        super().__init__(space)
        self.space, self.seconds, self.silent = space, seconds, silent


def read_lines(api: HfApi, space: str, build: bool = False, count: int = 30, seconds: float = TOTAL_SECONDS,
               line_chars: int = LINE_CHARS, first: float = FIRST_SECONDS) -> tuple[str, ...]:
    """The last `count` lines, masked and shortened. The Hub must start answering within `first` seconds and
    never fall silent longer; a stream that keeps sending keep-alives ends at `seconds` with what it gave.
    With nothing given, LogsTimedOut. Hub errors (HfHubHTTPError...) propagate."""
    from bot.core.hub import CallAborted

    # Mask before shortening, so a token cut in two by the limit is still masked.
    lines: deque[str] = deque(maxlen=max(1, count))
    started = time.monotonic()
    try:
        with observed(None, seconds, quiet=min(first, seconds)):
            for line in islice(api.fetch_space_logs(space, build=build), LOG_SCAN):
                lines.append(shorten(mask(line.rstrip("\n")), line_chars))
    except CallAborted as err:
        if err.reason != "timeout":
            raise
        if not lines:
            # Cut before the whole read's deadline: it was the silence bound (no answer, no keep-alive).
            silent = time.monotonic() - started < seconds - 0.05
            raise LogsTimedOut(space, first if silent else seconds, silent) from err
    return tuple(lines)
