"""The core: the edges every feature stands on, and the shared vocabulary.

Settings, errors, markup escaping, the Redis store (audit, idempotency), the Hub client wrapper
(`huggingface_hub.HfApi` with deadlines, errors as sentences), the one way out to the Hub for changes
(`changes.py`: audited before and after), the Slack poster and the one way out to Slack for what the bot
says on its own (`deliver`: claimed, marked, looked for before a retry), roles and actors,
the flavor catalogue, and the shared words (`Reply`, blocks, durations, prices, stages).
It imports no feature package: `bot.commands`, `bot.approvals` and `bot.alerts` stand on it, never under it.
"""
