"""Every alert threshold is a setting with a default, checked at start-up with a sentence naming it."""

from __future__ import annotations

import pytest

from bot.alerts.transitions import Policy, policy_of
from bot.core.errors import ConfigError
from bot.core.settings import Settings

NAMES = ("SPACEOPS_STUCK_MINUTES", "SPACEOPS_CRASHLOOP_ERRORS", "SPACEOPS_CRASHLOOP_MINUTES",
         "SPACEOPS_COST_WARNING_HOURS", "SPACEOPS_UNREADABLE_AFTER", "SPACEOPS_HOT_SECONDS")


def test_defaults_are_the_policy_defaults():
    settings = Settings.from_env({})
    assert policy_of(settings) == Policy()
    assert settings.hot_seconds == 5


def test_each_threshold_reaches_the_policy():
    settings = Settings.from_env({"SPACEOPS_STUCK_MINUTES": "45", "SPACEOPS_CRASHLOOP_ERRORS": "5",
                                  "SPACEOPS_CRASHLOOP_MINUTES": "30", "SPACEOPS_COST_WARNING_HOURS": "12",
                                  "SPACEOPS_UNREADABLE_AFTER": "6", "SPACEOPS_HOT_SECONDS": "10"})
    policy = policy_of(settings)
    assert (policy.stuck_after, policy.crashloop_errors, policy.crashloop_window, policy.cost_after,
            policy.fail_report_after) == (2700, 5, 1800, 43200, 6)
    assert settings.hot_seconds == 10


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("value", ["soon", "0", "-3", "1.5", "99999999"])
def test_bad_values_are_refused_with_the_variable_named(name, value):
    with pytest.raises(ConfigError) as err:
        Settings.from_env({name: value})
    assert name in str(err.value)


def test_a_crash_loop_needs_at_least_two_errors():
    with pytest.raises(ConfigError, match="SPACEOPS_CRASHLOOP_ERRORS"):
        Settings.from_env({"SPACEOPS_CRASHLOOP_ERRORS": "1"})
