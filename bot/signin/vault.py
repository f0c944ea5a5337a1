"""The sign-in secrets, encrypted: a link's refresh token, and a device code while its sign-in is pending.

Fernet (`cryptography`): AES-128-CBC with an HMAC-SHA256 over it, so a changed ciphertext is refused, not
decrypted into something else; a well-kept library's construction rather than one of ours. Keys come
from SPACEOPS_SECRET_KEY, newest first: the first encrypts, every one decrypts (MultiFernet), and each
sealed value carries the id of the key that sealed it (a hash prefix, never the key), so after a rotation
the logs can say which old key a value still needs before it may be dropped.

The sealed text also names what it belongs to (the Slack user, the purpose): a sealed value copied from
one user's record to another's is refused, not used.

The OAuth access token is not kept at all: the roles are read with it right after the token grant (and
after each refresh), and nothing else here needs it (the bot's own token performs every Hub change,
hub-api.md §13.1). Only the refresh token is kept, for the roles refresh.
"""

from __future__ import annotations

import hashlib
import json
import logging

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from bot.core.store import key

log = logging.getLogger(__name__)
VERSION = 1


def key_id(secret_key: str) -> str:
    """A short public name for a key (8 hex digits of its SHA-256): says which key sealed a value."""
    return hashlib.sha256(secret_key.encode()).hexdigest()[:8]


def refresh_key(slack_user: str) -> str:
    return key("signin", "refresh", slack_user)


class Vault:
    """Seal and open small secrets with the configured keys; the refresh tokens in Redis, sealed."""

    def __init__(self, secret_keys: tuple[str, ...], redis_client=None):
        if not secret_keys:
            raise ValueError("the vault needs at least one key (SPACEOPS_SECRET_KEY)")
        self._fernets = {key_id(k): Fernet(k.encode()) for k in secret_keys}
        self._current = key_id(secret_keys[0])
        self._all = MultiFernet(list(self._fernets.values()))
        self.redis = redis_client

    def __repr__(self) -> str:
        return f"Vault(keys={list(self._fernets)})"  # key ids only

    # ------------------------------------------------------------------ sealing

    def seal(self, secret: str, owner: str, purpose: str) -> str:
        plain = json.dumps({"o": owner, "p": purpose, "s": secret}).encode()
        sealed = self._fernets[self._current].encrypt(plain).decode()
        return json.dumps({"v": VERSION, "kid": self._current, "ct": sealed})

    def open(self, sealed: str | bytes | None, owner: str, purpose: str) -> str | None:
        """The secret, or None when missing, unreadable, sealed by a key no longer configured, or sealed for
        another owner or purpose (each logged without the value)."""
        if not sealed:
            return None
        try:
            record = json.loads(sealed)
            token = str(record["ct"]).encode()
            kid = str(record.get("kid") or "")
            fernet = self._fernets.get(kid, self._all)  # the named key first; all of them if it is unknown
            data = json.loads(fernet.decrypt(token))
        except InvalidToken:
            log.warning("a sealed %s could not be decrypted (sealed with key %s, not among SPACEOPS_SECRET_KEY's "
                        "keys %s): it counts as absent", purpose, kid or "?", ", ".join(self._fernets))
            return None
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            log.warning("a sealed %s is malformed (%s): it counts as absent", purpose, type(err).__name__)
            return None
        if data.get("o") != owner or data.get("p") != purpose:
            log.warning("a sealed %s belongs to another record: refused", purpose)
            return None
        secret = data.get("s")
        return secret if isinstance(secret, str) and secret else None

    # ------------------------------------------------------------------ refresh tokens in Redis

    def put_refresh(self, slack_user: str, token: str, ttl: int | None = None) -> None:
        self.redis.set(refresh_key(slack_user), self.seal(token, slack_user, "refresh"), ex=ttl)

    def get_refresh(self, slack_user: str) -> str | None:
        return self.open(self.redis.get(refresh_key(slack_user)), slack_user, "refresh")

    def forget(self, slack_user: str) -> None:
        self.redis.delete(refresh_key(slack_user))
