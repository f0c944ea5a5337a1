"""`/space logs`, `/space dev`, `/space volumes` and `/space volume add|rm`."""

from __future__ import annotations

import logging
from typing import Callable

from huggingface_hub import Volume

from bot.commands import words
from bot.commands.grammar import LOG_LINES_DEFAULT
from bot.core import hub, logs
from bot.core.changes import Why
from bot.core.deliver import SLACK_FAILURES, slack_error
from bot.core.errors import BadInput, HubRefused, NotFound
from bot.core.markup import escape
from bot.core.permissions import declare
from bot.core.store import REDIS_ERRORS
from bot.core.words import Reply, change_reply, error_reply, notice_reply, section

log = logging.getLogger(__name__)
declare(reads={"logs", "volumes"}, changes={"dev", "volume.add", "volume.rm"})

SHOWN = 40
SECTION_CHARS = 2900
LOCK_SECONDS = 30


def code_blocks(lines: tuple[str, ...]) -> list[dict]:
    """Lines as code sections, each within Slack's 3,000 characters (a long line was shortened already)."""
    blocks, chunk = [], []
    for line in lines:
        line = escape(line.replace("```", "'''"))[:SECTION_CHARS - 10]
        if chunk and sum(len(x) + 1 for x in chunk) + len(line) > SECTION_CHARS - 8:
            blocks.append(section("```" + "\n".join(chunk) + "```"))
            chunk = []
        chunk.append(line)
    if chunk:
        blocks.append(section("```" + "\n".join(chunk) + "```"))
    return blocks


class Tools:
    """The commands; `seconds` and `first` bound a log read (8 s in all, 3 s to the Hub's first sign of life),
    `deliveries` uploads more than SHOWN lines as a file, `ran_until(space, stage)` is when the poller saw the
    Space enter `stage` (an asleep or paused Space: when it last ran)."""

    def __init__(self, ops, seconds: float = logs.TOTAL_SECONDS, first: float = logs.FIRST_SECONDS,
                 deliveries=None, ran_until: Callable[[str, str], float | None] = lambda space, stage: None):
        self.ops = ops
        self.seconds = seconds
        self.first = first
        self.deliveries = deliveries
        self.ran_until = ran_until

    def commands(self) -> dict:
        return {"logs": self.logs, "dev": self.dev, "volumes": self.volumes,
                "volume.add": self.volume_add, "volume.rm": self.volume_rm}

    def logs(self, cmd, actor) -> Reply:
        info = hub.call(self.ops.api.space_info, cmd.space, space=cmd.space)
        if getattr(info, "private", False) and not self.ops.reveals(cmd.space, actor):
            return error_reply(words.logs_private(cmd.space))
        if getattr(info, "sdk", None) == "static":
            return notice_reply(words.logs_static(cmd.space))
        stage = getattr(info.runtime, "stage", None)
        if stage in ("SLEEPING", "STOPPED", "PAUSED"):
            return notice_reply(self._asleep(cmd.space, stage, getattr(info, "last_modified", None)))
        kind = "build" if cmd.build else "run"
        try:
            with hub.hub_errors(cmd.space):
                lines = logs.read_lines(self.ops.api, cmd.space, cmd.build, cmd.lines or LOG_LINES_DEFAULT,
                                        self.seconds, first=self.first)
        except logs.LogsTimedOut as err:
            sentence = words.logs_silent if err.silent else words.logs_none_within
            return error_reply(sentence(cmd.space, err.seconds))
        if not lines:
            return notice_reply(words.logs_none_yet(cmd.space, kind))
        shown = lines[-SHOWN:]
        if len(lines) > SHOWN:
            if self._upload(actor, cmd.space, kind, lines):
                return notice_reply(words.logs_uploaded(cmd.space, kind, len(lines)))
            head = words.logs_not_uploaded(cmd.space, kind, len(lines), len(shown))
            return Reply(head, [section(head)] + code_blocks(shown))
        head = words.logs_head(cmd.space, kind, len(shown), len(lines))
        return Reply(head, [section(head + ":")] + code_blocks(shown))

    def _asleep(self, space: str, stage: str, last_modified) -> str:
        try:
            ran_until = self.ran_until(space, stage)
        except REDIS_ERRORS:
            ran_until = None
        changed = last_modified.strftime("%Y-%m-%d %H:%M UTC") if last_modified else None
        return words.logs_asleep(space, stage, ran_until, changed, self.ops.store.clock())

    def _upload(self, actor, space: str, kind: str, lines: tuple[str, ...]) -> bool:
        """More than SHOWN lines: one text file in the conversation the command came from (its channel or
        the DM; a slash command has no thread), through the one way out. False when it could not go there."""
        if self.deliveries is None or not actor.channel:
            return False
        content = ("\n".join(lines) + "\n").encode()
        try:
            return self.deliveries.upload(actor.channel, None, content,
                                          words.logs_filename(space, kind), f"{space} {kind} logs")
        except SLACK_FAILURES as err:
            log.warning("log file for %s not uploaded to %s: %s", space, actor.channel, slack_error(err))
            return False

    def dev(self, cmd, actor) -> Reply:
        why = Why(actor.user, "dev", {"enabled": cmd.enabled})
        try:
            self.ops.changes_out.dev_mode(why, cmd.space, cmd.enabled)
        except HubRefused as err:
            # A 403 on enabling is the owner's plan (hub-api.md §13.4), whatever words the Hub puts with it.
            status = getattr(getattr(err.__cause__, "response", None), "status_code", None)
            if cmd.enabled and status == 403:
                return error_reply(words.DEV_NEEDS_PLAN)
            raise
        return change_reply(actor.user, words.dev_turned(cmd.enabled), cmd.space)

    def _current(self, space: str) -> list:
        runtime = self.ops.spaces.runtime(space)
        return list(getattr(runtime, "volumes", None) or [])

    def volumes(self, cmd, actor) -> Reply:
        mounts = self._current(cmd.space)
        if not mounts:
            return notice_reply(words.volumes_none(cmd.space))
        return words.volumes_reply(cmd.space, mounts)

    def _edit(self, cmd, actor, change) -> Reply:
        redis = self.ops.store.redis
        lock = redis.lock(f"spaceops:volumes-lock:{cmd.space}", timeout=LOCK_SECONDS, blocking_timeout=2)
        if not lock.acquire():
            return error_reply(words.volumes_busy(cmd.space))
        try:
            before = self._current(cmd.space)
            after, action = change(before)
            again = self._current(cmd.space)
            if [v.to_dict() for v in again] != [v.to_dict() for v in before]:
                return error_reply(words.volumes_changed_meanwhile(cmd.space))
            self.ops.changes_out.volumes(Why(actor.user, cmd.name, {"mount": cmd.mount, "source": cmd.source}),
                                         cmd.space, after)
        finally:
            try:
                lock.release()
            except Exception:  # noqa: BLE001 — expired: the next edit takes it
                pass
        return change_reply(actor.user, action, cmd.space, words.VOLUMES_RESTART)

    def volume_add(self, cmd, actor) -> Reply:
        note = ""
        if cmd.volume_type != "bucket" and not cmd.read_only:
            note = words.volume_always_read_only(cmd.volume_type)
        if cmd.volume_type != "bucket":  # a model, dataset or Space: private ones only where they may be shown
            self._may_see(cmd.source, cmd.volume_type, actor)

        def change(before):
            if any(v.mount_path == cmd.mount for v in before):
                raise BadInput(words.volume_taken(cmd.space, cmd.mount))
            new = Volume(type=cmd.volume_type, source=cmd.source, mount_path=cmd.mount, revision=cmd.revision,
                         read_only=True if cmd.volume_type != "bucket" else (True if cmd.read_only else None))
            return before + [new], words.volume_mounted(cmd.volume_type, cmd.source, cmd.mount, note)
        return self._edit(cmd, actor, change)

    def _may_see(self, source: str, kind: str, actor) -> None:
        try:
            with hub.hub_errors(source):
                info = self.ops.api.repo_info(source, repo_type=kind)
        except NotFound:  # (the Hub's 404 as a sentence about a "Space"; this may be a model or dataset)
            info = None
        if info is None or (getattr(info, "private", False) and not self.ops.reveals(source, actor)):
            raise BadInput(words.volume_source_refused(source))

    def volume_rm(self, cmd, actor) -> Reply:
        def change(before):
            if not any(v.mount_path == cmd.mount for v in before):
                raise BadInput(words.volume_nothing_at(cmd.space, cmd.mount))
            return [v for v in before if v.mount_path != cmd.mount], words.volume_unmounted(cmd.mount)
        return self._edit(cmd, actor, change)
