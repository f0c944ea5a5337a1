"""Paid-hardware approvals: the request store and its Lua check-and-set, the decision flow, its words.

May touch: the core, and the public `Command`, `Upgrade` and `duplicate_audited` of `bot.commands`.
Slack edits it could not make at once are handed to a `Later` callable (the alerts outbox, at wiring).
"""
