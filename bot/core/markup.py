"""Slack mrkdwn escaping, shared by every module that puts outside text into a sentence."""

from __future__ import annotations

from typing import Any


def escape(text: Any) -> str:
    """Escape for Slack mrkdwn, so `<!channel>` or `<http://x|y>` from the Hub or a user shows as text."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: Any) -> str:
    """Inline code span, escaped; a backtick inside would close it, so it becomes a quote."""
    return "`" + escape(str(text).replace("`", "'")) + "`"
