"""Schedules: office hours for Spaces (`/space schedule acme/demo pause weekdays 19:00`) and hardware
upgrades that end by themselves (`/space hw acme/chat a100-large --for 4h`).

Pure parts: `when` (WHEN text → fire times in a time zone) and `cost` (does an action raise spend, what a
schedule costs a month). Edges: `store` (versioned records in Redis, the claims that make each occurrence
run once) and `runner` (the poll leader's tick: due occurrences, reminders, reverts). `feature` holds the
commands and the approval kinds; `words` what people read.

May touch: the core, the public `Command` and `Upgrade` of `bot.commands`, and `ApprovalKind`/`Approvals`
of `bot.approvals` (a schedule that can raise spend is approved once, at creation).
"""
