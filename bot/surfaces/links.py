"""Which Spaces a pasted link names: pure, no network."""

from __future__ import annotations

import re
from typing import Iterable

from bot.commands.grammar import parse_space
from bot.core.errors import BadInput

MAX_PREVIEWS = 5  # Slack's own cap on unfurls per message
_HF_SPACE = re.compile(r"^(?:https?://)?(?:www\.)?(?:huggingface\.co|hf\.co)/spaces/([^/?#\s]+)/([^/?#\s]+)", re.I)
_SUBDOMAIN = re.compile(r"^(?:https?://)?([a-z0-9-]+)\.hf\.space(?:[/?#:]|$)", re.I)


def subdomain_of(space: str) -> str:
    """`acme/my_app.v2` → `acme-my-app-v2`: the Hub's host name for a Space."""
    return re.sub(r"[^a-z0-9]+", "-", space.lower()).strip("-")


def space_of(url: str, known: Iterable[str] = ()) -> str | None:
    """The Space a link names, or None. An `NS-NAME.hf.space` host is ambiguous (both parts may hold
    hyphens): it is matched against the Spaces the bot knows, else split at its only hyphen."""
    found = _HF_SPACE.match(url.strip())
    if found:
        try:
            return parse_space(f"{found.group(1)}/{found.group(2)}")
        except BadInput:
            return None
    host = _SUBDOMAIN.match(url.strip())
    if not host:
        return None
    sub = host.group(1).lower()
    matches = sorted({s for s in known if subdomain_of(s) == sub})
    if len(matches) == 1:
        return matches[0]
    if not matches and sub.count("-") == 1:
        try:
            return parse_space(sub.replace("-", "/"))
        except BadInput:
            return None
    return None


def previewed(urls: Iterable[str], known: Iterable[str] = ()) -> dict[str, str]:
    """url → Space for the first MAX_PREVIEWS links that name a Space (each Space once)."""
    known = list(known)
    out: dict[str, str] = {}
    seen: set[str] = set()
    for url in urls:
        space = space_of(url, known)
        if space is None or space.lower() in seen:
            continue
        seen.add(space.lower())
        out[url] = space
        if len(out) == MAX_PREVIEWS:
            break
    return out
