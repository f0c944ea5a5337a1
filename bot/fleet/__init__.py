"""The fleet at a glance: what the watched Spaces cost and how they are doing. Daily roll-ups read into
reports (`/space cost`, scheduled digests with a chart, namespace budgets) and the App Home dashboard.

May touch: the core, and the public names of `bot.alerts` (states, roll-up keys, watches, the outbox, the
alert buttons), `bot.approvals` (open requests and their words) and `bot.commands` (`Command`).
Figures are estimates from what the poller observed; nothing here calls the Hub.
"""
