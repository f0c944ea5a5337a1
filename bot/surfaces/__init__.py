"""Slack surfaces other than the command: link previews (unfurls) and Workflow Builder steps. Both decide
nothing on their own: they ask the gate (`bot.access`) and act through `Operations` like a command."""

from bot.surfaces.previews import Previews
from bot.surfaces.steps import Steps

__all__ = ["Previews", "Steps"]
