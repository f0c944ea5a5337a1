"""Watches and stage-change alerts: transitions (pure), watches and mutes, the poller and its lease,
the delivery outbox, the scheduler, and the words of alerts and watch replies.

May touch: the core, and the public `Command` of `bot.commands`. Other features hook in at wiring only:
outbox delivery ops (`Outbox.handlers`) and named jobs on the leader's tick (`Watcher.periodic`, a
`bot.core.jobs.Jobs`: `add(name, run, slow=…, takes_lease=…)`).
"""
