"""The pure core: two observations in, alerts out. No Redis, no Hub, no Slack."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, strategies as st

from bot.alerts.transitions import Alert, Observation, Policy, SpaceState, failed, observe, usage_delta

POLICY = Policy()
T = 1_800_000_000.0


def obs(stage: str, at: float, **kw) -> Observation:
    return Observation("acme/chat", stage, at, kw.pop("hardware", "cpu-basic"), kw.pop("requested", "cpu-basic"),
                       kw.pop("sleep_time", 172800), kw.pop("error", None))


def run(*steps, policy=POLICY, price=None):
    state, out = None, []
    for step in steps:
        state, alerts = observe(state, step, policy, price)
        out.append(alerts)
    return state, out


def test_first_sight_is_a_baseline():
    state, [alerts] = run(obs("RUNTIME_ERROR", T))
    assert alerts == [] and state.stage == "RUNTIME_ERROR" and state.first_seen == T


def test_crash_opens_an_incident_and_recovery_closes_it():
    state, out = run(obs("RUNNING", T), obs("RUNTIME_ERROR", T + 60, error="oom"), obs("BUILDING", T + 120),
                     obs("RUNNING", T + 780))
    crash, building, back = out[1][0], out[2][0], out[3][0]
    assert (crash.opens, crash.old, crash.new, crash.seconds, crash.error) == (True, "RUNNING", "RUNTIME_ERROR", 60, "oom")
    assert crash.kinds == ("errors",) and building.incident == crash.incident == T + 60 and not building.opens
    assert back.closes and back.incident == T + 60 and state.incident is None


def test_sleep_and_wake_are_not_incidents():
    _, out = run(obs("RUNNING", T), obs("SLEEPING", T + 60), obs("RUNNING", T + 120))
    assert [a.kinds for a in out[1] + out[2]] == [("sleep",), ("sleep",)]
    assert not any(a.opens or a.closes for a in out[1] + out[2])


def test_stages_are_strings_even_unknown_ones():
    _, out = run(obs("RUNNING", T), obs("SOMETHING_NEW", T + 60))
    assert out[1][0].new == "SOMETHING_NEW"


def test_hardware_applied():
    _, out = run(obs("RUNNING", T), obs("RUNNING_BUILDING", T + 60, requested="t4-medium"),
                 obs("RUNNING", T + 120, hardware="t4-medium", requested="t4-medium"))
    assert "hardware" in out[2][0].kinds and out[2][0].extra["hardware_applied"]


def test_stuck_once():
    _, out = run(obs("RUNNING", T), obs("BUILDING", T + 60), obs("BUILDING", T + 60 + 29 * 60),
                 obs("BUILDING", T + 60 + 31 * 60), obs("BUILDING", T + 60 + 50 * 60))
    assert [a.kind for step in out for a in step] == ["transition", "stuck"]


def test_cost_warning_once_a_day():
    never = dict(hardware="a10g-large", requested="a10g-large", sleep_time=None)
    steps = [obs("RUNNING", T + h * 3600, **never) for h in range(0, 60, 2)]
    _, out = run(*steps, price=1.5)
    costs = [a for step in out for a in step if a.kind == "cost"]
    assert len(costs) == 2 and costs[0].extra["per_day"] == 36.0
    _, quiet = run(*[replace(s, sleep_time=3600) for s in steps], price=1.5)
    assert not any(quiet)


def test_three_crashes_in_15_min_are_one_crash_loop_then_thread_then_settled():
    steps = [obs("RUNNING", T)]
    for i in range(4):                                     # crash, rebuild, run: four times, 4 min apart
        steps += [obs("RUNTIME_ERROR", T + 240 * i + 60, error="oom"), obs("BUILDING", T + 240 * i + 120),
                  obs("RUNNING", T + 240 * i + 180)]
    steps += [obs("RUNNING", T + 1200 + 60 * i) for i in range(15)]
    _, out = run(*steps)
    said = [a for step in out for a in step]
    kinds = [a.kind for a in said]
    assert kinds.count("crashloop") == 1 and kinds.count("settled") == 1
    loop = next(a for a in said if a.kind == "crashloop")
    assert loop.opens and loop.extra["errors"] == 3 and loop.error == "oom"
    after = said[said.index(loop) + 1:]
    assert after and all(a.incident == loop.incident and not a.opens for a in after)   # in its thread, not dropped
    assert [a.closes for a in after if a.kind == "transition"] == [False] * (len(after) - 1)
    settled = after[-1]
    assert settled.kind == "settled" and settled.closes and settled.seconds >= 600


def test_sleep_wake_builds_restarts_and_reloads_never_make_a_crash_loop():
    steps, t = [obs("RUNNING", T)], T
    for _ in range(20):                                    # sleeps and wakes twenty times a day
        steps += [obs("SLEEPING", t + 1800), obs("APP_STARTING", t + 3000), obs("RUNNING", t + 3030)]
        t += 3600
    for _ in range(10):                                    # restarts and dev-mode reloads while debugging
        steps += [obs("BUILDING", t + 10), obs("APP_STARTING", t + 60), obs("RUNNING", t + 70),
                  obs("RUNNING_APP_STARTING", t + 80), obs("RUNNING", t + 90)]
        t += 100
    _, out = run(*steps)
    said = [a for step in out for a in step]
    assert not [a for a in said if a.kind in ("crashloop", "settled")]
    assert len([a for a in said if a.kinds == ("sleep",)]) == 40


def test_errors_spread_wider_than_the_window_are_single_crashes():
    steps = [obs("RUNNING", T)]
    for i in range(5):
        steps += [obs("RUNTIME_ERROR", T + 1000 * i + 60), obs("RUNNING", T + 1000 * i + 120)]
    _, out = run(*steps)
    assert [a.kind for step in out for a in step].count("crashloop") == 0
    _, out = run(*steps, policy=Policy(crashloop_window=3600))
    assert [a.kind for step in out for a in step].count("crashloop") == 1


def test_stuck_says_whether_it_is_billed():
    _, out = run(obs("RUNNING", T), obs("APP_STARTING", T + 60), obs("APP_STARTING", T + 60 + 31 * 60),
                 price=0.4)
    [stuck] = out[-1]
    assert stuck.extra == {"billed": True, "per_hour": 0.4}
    _, out = run(obs("RUNNING", T), obs("BUILDING", T + 60), obs("BUILDING", T + 60 + 31 * 60), price=0.4)
    assert out[-1][0].extra["billed"] is False
    _, out = run(obs("RUNNING", T), obs("BUILDING", T + 60), obs("BUILDING", T + 60 + 11 * 60),
                 policy=Policy(stuck_after=600))
    assert [a.kind for a in out[-1]] == ["stuck"]


def test_old_stored_state_with_flapping_fields_still_decodes():
    state, _ = run(obs("RUNNING", T))
    fields = state.to_fields()
    fields["json"] = fields["json"][:-1] + ',"changes":[1.0],"flapping":true,"from_the_future":1}'
    assert SpaceState.from_fields("acme/chat", fields) == state


def test_failures_are_reported_once_and_never_change_the_stage():
    state, _ = observe(None, obs("RUNNING", T), POLICY)
    said = []
    for i in range(6):
        state, alerts = failed(state, "acme/chat", "403", T + 60 * (i + 1), POLICY)
        said += alerts
    assert [a.kind for a in said] == ["unreadable"] and said[0].since == T + 60 and state.stage == "RUNNING"
    state, alerts = observe(state, obs("RUNNING", T + 600), POLICY)
    assert [a.kind for a in alerts] == ["readable"] and state.fail_count == 0


def test_usage_accumulates_time_per_stage_and_flavor():
    first, _ = observe(None, obs("RUNNING", T), POLICY)
    second, _ = observe(first, obs("SLEEPING", T + 3600), POLICY)
    assert usage_delta(first, second) == {"RUNNING|cpu-basic": 3600}


def test_alert_and_state_round_trip():
    state, out = run(obs("RUNNING", T), obs("RUNTIME_ERROR", T + 60, error="x"))
    alert = out[1][0]
    assert Alert.from_json(alert.to_json()) == alert
    assert SpaceState.from_fields("acme/chat", state.to_fields()) == state


STAGES = st.sampled_from(["RUNNING", "BUILDING", "RUNTIME_ERROR", "SLEEPING", "PAUSED", "APP_STARTING",
                          "RUNNING_BUILDING", "STOPPED"])


@given(st.lists(STAGES, min_size=1, max_size=40))
def test_one_alert_at_most_per_change_and_none_without(stages):
    state = None
    for i, stage in enumerate(stages):
        before = state
        state, alerts = observe(state, obs(stage, T + i * 60), POLICY)
        changed = before is not None and before.stage != stage
        stage_alerts = [a for a in alerts if a.kind in ("transition", "crashloop")]
        assert len(stage_alerts) <= 1
        if not changed:
            assert stage_alerts == []
        # An incident is open exactly while the Space has not come back to RUNNING since it opened.
        if stage == "RUNNING":
            assert state.incident is None or state.crashloop is not None


# ---------------------------------------------------------------------- dev mode

def dev(stage: str, at: float, **kw) -> Observation:
    return replace(obs(stage, at, **kw), dev_mode=True)


def test_dev_mode_app_restarts_are_no_incident_and_never_a_crash_loop():
    steps = [dev("RUNNING", T)]
    for i in range(5):  # five crashes and restarts in place within the crash-loop window
        base = T + 60 * (3 * i + 1)
        steps += [dev("RUNTIME_ERROR", base, error="edit broke it"), dev("APP_STARTING", base + 60),
                  dev("RUNNING", base + 120)]
    state, out = run(*steps)
    assert [a for alerts in out for a in alerts] == []
    assert state.errors == () and state.crashloop is None and state.incident is None and state.dev_mode


def test_the_same_restarts_without_dev_mode_are_a_crash_loop():
    steps = [obs("RUNNING", T)]
    for i in range(3):
        base = T + 60 * (3 * i + 1)
        steps += [obs("RUNTIME_ERROR", base), obs("APP_STARTING", base + 60), obs("RUNNING", base + 120)]
    _, out = run(*steps)
    assert any(a.kind == "crashloop" for alerts in out for a in alerts)


def test_dev_mode_restarts_in_an_open_incident_say_one_line_in_its_thread_then_recovery_closes_it():
    state, out = run(obs("RUNNING", T), obs("RUNTIME_ERROR", T + 60), dev("APP_STARTING", T + 120),
                     dev("RUNTIME_ERROR", T + 180), dev("APP_STARTING", T + 240), dev("RUNNING", T + 300))
    crash = out[1][0]
    assert crash.opens and crash.incident == T + 60
    [line] = out[2]
    assert line.incident == T + 60 and line.extra.get("dev_reload") and not line.opens
    assert out[3] == [] and out[4] == []
    [back] = out[5]
    assert back.closes and state.incident is None


def test_a_rebuild_in_dev_mode_is_reported_as_usual():
    _, out = run(dev("RUNNING", T), dev("BUILDING", T + 60), dev("BUILD_ERROR", T + 120, error="pip failed"))
    assert out[1][0].new == "BUILDING" and out[1][0].opens
    assert out[2][0].new == "BUILD_ERROR" and out[2][0].incident == T + 60


def test_a_state_written_before_dev_mode_was_known_decodes():
    stored = SpaceState("acme/chat", stage="RUNNING", since=T, version=T).to_fields()
    assert SpaceState.from_fields("acme/chat", stored).dev_mode is False
