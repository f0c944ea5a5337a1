"""The `/space` command: its grammar (text in, `Command` out) and the operations it runs on the Hub.

May touch: the core. Other features add their commands to `Operations` at wiring (`bot.app`); a paid
upgrade is handed to an `UpgradeRequests` implementation (the approvals package) passed in there.
"""
