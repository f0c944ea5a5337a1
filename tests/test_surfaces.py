"""Link previews and Workflow Builder steps, end to end: Events API payloads shaped like Slack's
(`link_shared`, `function_executed`) through signed HTTP to the real Bolt app, the Hub emulator, a real
Redis, and the Slack emulator, which refuses an unfurl or a completion it can't match."""

from __future__ import annotations

import json
import time

import pytest

from bot.surfaces import words
from bot.surfaces.links import previewed, space_of
from tests.harness import _ids
from tests.test_approvals import Pending, click

URL = "https://huggingface.co/spaces/acme/chat"


def send_event(bot, event: dict, team: str = "T1"):
    body = {"token": "legacy", "team_id": team, "api_app_id": "A1", "type": "event_callback",
            "event_id": f"Ev{next(_ids)}", "event_time": int(time.time()), "event": event}
    answer = bot.post(json.dumps(body).encode(), "application/json")
    assert answer.status == 200, answer
    return answer


def share(bot, slack, urls, user="U1", channel="C1"):
    ts = f"{next(_ids)}.000100"
    slack.share(channel, ts, urls)
    send_event(bot, {"type": "link_shared", "channel": channel, "user": user, "message_ts": ts,
                     "links": [{"url": u, "domain": u.split("/")[2]} for u in urls], "event_ts": ts})
    return channel, ts


def unfurled(slack, place, timeout=5.0):
    return slack.wait(lambda: slack.unfurled.get(place), timeout) or {}


def run_step(bot, slack, callback, inputs, execution=None):
    execution = execution or f"Fx{next(_ids)}"
    slack.execute(execution)
    send_event(bot, {"type": "function_executed", "function": {"id": "Fn1", "callback_id": callback,
                                                               "title": callback},
                     "inputs": inputs, "function_execution_id": execution, "workflow_execution_id": "Wx1",
                     "event_ts": f"{time.time():.6f}", "bot_access_token": "xwfp-short-lived"})
    return execution


def outcome(slack, execution, timeout=5.0):
    return slack.wait(lambda: slack.executions[execution]["state"] != "running" and slack.executions[execution],
                      timeout)


def hub_writes(hub):
    return [(r.method, r.path) for r in hub.requests if r.method != "GET"]


# ---------------------------------------------------------------------- links, pure

def test_links_name_spaces_in_each_form():
    assert space_of("https://huggingface.co/spaces/acme/chat?x=1") == "acme/chat"
    assert space_of("https://hf.co/spaces/acme/chat/") == "acme/chat"
    assert space_of("https://acme-chat.hf.space/") == "acme/chat"
    assert space_of("https://my-org-my-app.hf.space", known=["my-org/my-app"]) == "my-org/my-app"
    assert space_of("https://my-org-my-app.hf.space") is None  # ambiguous and unknown: no guess
    assert space_of("https://huggingface.co/models/acme/x") is None
    many = [f"https://huggingface.co/spaces/acme/s{i}" for i in range(20)]
    assert len(previewed(many + [URL, URL])) == 5


# ---------------------------------------------------------------------- link previews

def test_a_pasted_link_gets_the_status_with_buttons_by_rights(make_bot, hub, slack):
    hub.add_space("acme/chat", stage="RUNTIME_ERROR", hardware="t4-small", error="ImportError: no torch")
    hub.spaces["acme/chat"]["devMode"] = True
    bot = make_bot(SPACEOPS_OPERATORS="UOP")
    place = share(bot, slack, [URL], user="UOP")
    card = unfurled(slack, place)[URL]
    said = json.dumps(card)
    assert "acme/chat" in said and "t4-small" in said and "ImportError: no torch" in said and "dev mode on" in said
    status = bot.command("/space status acme/chat", user="UOP")["text"]
    assert card["blocks"][0]["text"]["text"] == status  # the same words as `status`, from the same code
    actions = [e["action_id"] for b in card["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert actions == [words.PREVIEW_STATUS_ACTION, "alert:restart", words.LOGS_ACTION]
    # A reader (not an operator) gets no Restart button.
    place = share(bot, slack, [URL], user="UREADER")
    card = unfurled(slack, place)[URL]
    actions = [e["action_id"] for b in card["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert actions == [words.PREVIEW_STATUS_ACTION, words.LOGS_ACTION]
    assert hub_writes(hub) == []


def test_a_private_space_is_previewed_only_where_its_details_may_show(make_bot, hub, slack):
    hub.add_space("acme/priv", stage="RUNTIME_ERROR", hardware="t4-small", private=True, error="ERRSECRET")
    bot = make_bot(SPACEOPS_ADMINS="UADM")
    url = "https://huggingface.co/spaces/acme/priv"
    place = share(bot, slack, [url], channel="C1")
    time.sleep(0.5)
    assert slack.of("chat.unfurl") == [] and place not in slack.unfurled  # not even a "private" card
    bot.command("/space scope <#CACME|x> acme/* read", user="UADM")
    place = share(bot, slack, [url], channel="CACME")
    assert "ERRSECRET" in json.dumps(unfurled(slack, place))


def test_one_hub_read_per_space_per_30_s_and_five_previews_a_message(make_bot, hub, slack):
    for i in range(20):
        hub.add_space(f"acme/s{i}")
    hub.add_space("acme/chat")
    bot = make_bot()
    for _ in range(3):
        unfurled(slack, share(bot, slack, [URL]))
    assert len(hub.calls("GET", "/api/spaces/acme/chat/runtime")) == 1
    many = [f"https://huggingface.co/spaces/acme/s{i}" for i in range(20)]
    assert len(unfurled(slack, share(bot, slack, many))) == 5
    reads = [r.path for r in hub.requests if r.path.endswith("/runtime") and "/acme/s" in r.path]
    assert len(reads) == 5


@pytest.mark.slow
def test_the_preview_buttons_answer_through_the_gate(make_bot, hub, slack):
    hub.add_space("acme/chat", stage="RUNNING")
    bot = make_bot(SPACEOPS_READERS="UREAD")
    for action in (words.PREVIEW_STATUS_ACTION, words.LOGS_ACTION):
        answer = bot.click(action, "acme/chat", user="UREAD")
        seen = slack.wait(lambda: slack.responses(answer.response_id))
        shown = seen[0]["text"]
        if action == words.LOGS_ACTION:  # answered as `/space logs acme/chat` (the emulator has no lines for it)
            assert "acme/chat" in shown and "log lines" in shown, shown
        else:
            assert "acme/chat" in shown and ("Running" in shown or "running" in shown), shown
        answer = bot.click(action, "acme/chat", user="UNOB")
        seen = slack.wait(lambda: slack.responses(answer.response_id))
        assert "reader role" in seen[0]["text"]


# ---------------------------------------------------------------------- workflow steps

def test_status_step_outputs_stage_hardware_url_error(make_bot, hub, slack):
    hub.add_space("acme/chat", stage="RUNTIME_ERROR", hardware="t4-small", error="boom")
    bot = make_bot()
    done = outcome(slack, run_step(bot, slack, "space_status",
                                   {"space": "acme/chat", "user": "U1", "channel": "C1"}))
    assert done["state"] == "completed", done
    assert done["outputs"] == {"stage": "RUNTIME_ERROR", "hardware": "t4-small",
                               "url": f"{hub.base}/spaces/acme/chat", "error": "boom"}


def test_restart_step_acts_as_the_command_and_completes_once(make_bot, hub, slack):
    hub.add_space("acme/chat", stage="RUNNING")
    bot = make_bot()
    execution = run_step(bot, slack, "space_restart", {"space": "acme/chat", "user": "U1", "channel": "C1"})
    assert outcome(slack, execution)["state"] == "completed"
    assert hub_writes(hub) == [("POST", "/api/spaces/acme/chat/restart")]
    assert [e.action for e in bot.ctx.store.audit_entries("acme/chat")].count("restart") >= 1
    # The same execution delivered again (Slack retries an event): claimed, nothing sent twice.
    send_event(bot, {"type": "function_executed", "function": {"callback_id": "space_restart"},
                     "inputs": {"space": "acme/chat", "user": "U1", "channel": "C1"},
                     "function_execution_id": execution, "event_ts": "1"})
    time.sleep(0.5)
    sent = slack.of("functions.completeSuccess") + slack.of("functions.completeError")
    assert len(sent) == 1
    assert hub_writes(hub) == [("POST", "/api/spaces/acme/chat/restart")]  # and the restart was made once


def test_a_completion_slack_did_not_take_is_sent_on_the_next_tick(make_bot, hub, slack):
    hub.add_space("acme/chat", stage="RUNNING")
    bot = make_bot()
    slack.fail("functions.completeSuccess", status=503, times=5)
    execution = run_step(bot, slack, "space_status", {"space": "acme/chat", "user": "U1", "channel": "C1"})
    assert slack.wait(lambda: bot.ctx.store.redis.hexists("spaceops:steps:pending", execution)), \
        bot.ctx.store.redis.keys("*steps*")
    slack.faults.clear()
    bot.ctx.steps.tick(bot.ctx.store.clock())
    done = outcome(slack, execution)
    assert done["state"] == "completed" and done["outputs"]["stage"] == "RUNNING"
    bot.ctx.steps.tick(bot.ctx.store.clock())
    assert len(slack.of("functions.completeSuccess")) == 1


@pytest.mark.parametrize("inputs, sentence", [
    ({"user": "U1", "channel": "C1"}, words.STEP_NO_SPACE),
    ({"space": "acme/chat", "channel": "C1"}, words.STEP_NO_USER),
    ({"space": "not a space", "user": "U1", "channel": "C1"}, "namespace/name"),
])
def test_a_step_with_a_bad_or_missing_input_fails_and_calls_nothing(make_bot, hub, slack, inputs, sentence):
    hub.add_space("acme/chat")
    bot = make_bot()
    done = outcome(slack, run_step(bot, slack, "space_pause", inputs))
    assert done["state"] == "failed" and sentence in done["error"], done
    assert hub.requests == []


def test_a_step_run_by_someone_who_may_not_fails_with_the_commands_sentence(make_bot, hub, slack):
    hub.add_space("acme/chat")
    bot = make_bot(SPACEOPS_OPERATORS="UOP")
    refused = bot.command("/space pause acme/chat", user="UREAD")["text"]
    done = outcome(slack, run_step(bot, slack, "space_pause", {"space": "acme/chat", "user": "UREAD",
                                                                "channel": "C1"}))
    assert done["state"] == "failed" and done["error"] in refused, (done, refused)
    assert hub_writes(hub) == []


def test_a_paid_hardware_step_waits_for_the_approval(make_bot, hub, slack):
    hub.add_space("acme/chat", hardware="cpu-basic")
    bot = make_bot(SPACEOPS_APPROVERS="UAPP")
    execution = run_step(bot, slack, "space_hardware", {"space": "acme/chat", "flavor": "a100-large",
                                                          "user": "U1", "channel": "C1"})
    request = slack.wait(lambda: bot.ctx.approvals.store.open_requests())
    assert request and slack.executions[execution]["state"] == "running"
    from tests.test_approvals import Pending as Asked
    click(bot, slack, Asked(request[0].id, request[0].channel, request[0].ts), "UAPP")
    slack.wait(lambda: bot.ctx.approvals.store.get(request[0].id).status == "approved")
    bot.ctx.steps.tick(bot.ctx.store.clock())
    assert outcome(slack, execution)["state"] == "completed"
    assert ("POST", "/api/spaces/acme/chat/hardware") in hub_writes(hub)
    # Denied: the step fails with the reason.
    hub.add_space("acme/other", hardware="cpu-basic")
    execution = run_step(bot, slack, "space_hardware", {"space": "acme/other", "flavor": "a100-large",
                                                          "user": "U1", "channel": "C1"})
    request = slack.wait(lambda: [r for r in bot.ctx.approvals.store.open_requests() if r.space == "acme/other"])
    click(bot, slack, Asked(request[0].id, request[0].channel, request[0].ts), "UAPP", action="deny")
    bot.ctx.steps.tick(bot.ctx.store.clock())
    done = outcome(slack, execution)
    assert done["state"] == "failed" and "denied" in done["error"]


@pytest.mark.slow
def test_wait_step_survives_a_restart_and_completes_from_the_pollers_reads(make_bot, hub, slack, redis_server):
    hub.add_space("acme/chat", stage="BUILDING")
    bot = make_bot()
    execution = run_step(bot, slack, "space_wait_running", {"space": "acme/chat", "user": "U1", "channel": "C1",
                                                             "timeout_minutes": "10"})
    slack.wait(lambda: bot.ctx.store.redis.hexists("spaceops:steps:pending", execution) or
               bot.ctx.store.redis.keys("*steps:pending*"))
    assert slack.executions[execution]["state"] == "running"
    bot.close()
    hub.set_stage("acme/chat", "RUNNING")
    again = make_bot()  # another process: the step is found in Redis
    now = again.ctx.store.clock()
    again.ctx.watcher.tick(now + 4)       # the poll leader
    again.ctx.watcher.hot_tick(now + 5)   # the poller's own hot read of the Space the step made hot
    again.ctx.steps.tick(now + 6)
    done = outcome(slack, execution)
    assert done["state"] == "completed" and done["outputs"] == {"stage": "RUNNING"}
    again.ctx.steps.tick(now + 7)
    assert len(slack.of("functions.completeSuccess")) == 1


def test_wait_step_fails_on_an_error_stage_or_after_its_timeout(make_bot, hub, slack):
    hub.add_space("acme/chat", stage="BUILDING")
    hub.add_space("acme/slow", stage="BUILDING")
    bot = make_bot()
    broken = run_step(bot, slack, "space_wait_running", {"space": "acme/chat", "user": "U1", "channel": "C1"})
    slow = run_step(bot, slack, "space_wait_running", {"space": "acme/slow", "user": "U1", "channel": "C1",
                                                       "timeout_minutes": "5"})
    slack.wait(lambda: len(bot.ctx.store.redis.hgetall(next(iter(bot.ctx.store.redis.keys("*steps:pending*")),
                                                            "x"))) == 2)
    hub.set_stage("acme/chat", "BUILD_ERROR", error="pip failed")
    now = bot.ctx.store.clock()
    bot.ctx.watcher.tick(now + 4)
    bot.ctx.watcher.hot_tick(now + 5)
    bot.ctx.steps.tick(now + 6)
    done = outcome(slack, broken)
    assert done["state"] == "failed" and "BUILD_ERROR" in done["error"] and "pip failed" in done["error"]
    bot.ctx.steps.tick(now + 6 * 60)
    done = outcome(slack, slow)
    assert done["state"] == "failed" and "not running after 5 min" in done["error"]


def test_the_emulator_refuses_what_it_cannot_match(make_bot, hub, slack):
    bot = make_bot()
    from slack_sdk.errors import SlackApiError

    client = bot.ctx.client
    with pytest.raises(SlackApiError, match="cannot_find_message"):
        client.api_call("chat.unfurl", json={"channel": "C1", "ts": "9.9", "unfurls": {URL: {}}})
    with pytest.raises(SlackApiError, match="function_execution_not_found"):
        client.api_call("functions.completeSuccess", json={"function_execution_id": "Fnope", "outputs": {}})


def test_the_manifest_declares_previews_and_every_step_the_bot_handles():
    from pathlib import Path

    import yaml

    from bot.surfaces.steps import STEPS

    manifest = yaml.safe_load((Path(__file__).resolve().parent.parent / "manifest.yml").read_text())
    assert {"links:read", "links:write"} <= set(manifest["oauth_config"]["scopes"]["bot"])
    assert "link_shared" in manifest["settings"]["event_subscriptions"]["bot_events"]
    assert 1 <= len(manifest["features"]["unfurl_domains"]) <= 5
    assert manifest["settings"]["org_deploy_enabled"] is True
    functions = manifest["functions"]
    assert set(functions) == set(STEPS)
    for name, step in functions.items():
        inputs = step["input_parameters"]
        assert {"space", "user", "channel"} <= set(inputs), name
        assert inputs["user"]["type"] == "slack#/types/user_id" and inputs["channel"]["type"] == "slack#/types/channel_id"
        assert step["title"] and step["description"] and isinstance(step["output_parameters"], dict)
        for parameter in [*inputs.values(), *step["output_parameters"].values()]:
            assert parameter["type"] in ("string", "integer", "slack#/types/user_id", "slack#/types/channel_id")
    assert "flavor" in functions["space_hardware"]["input_parameters"]
    assert set(functions["space_status"]["output_parameters"]) == {"stage", "hardware", "url", "error"}


def test_wait_step_for_a_running_space_completes_and_for_a_missing_one_fails_at_once(make_bot, hub, slack):
    hub.add_space("acme/chat", stage="RUNNING")
    bot = make_bot()
    done = outcome(slack, run_step(bot, slack, "space_wait_running", {"space": "acme/chat", "user": "U1",
                                                                       "channel": "C1"}))
    assert done == {"state": "completed", "outputs": {"stage": "RUNNING"}}
    done = outcome(slack, run_step(bot, slack, "space_wait_running", {"space": "acme/nope", "user": "U1",
                                                                       "channel": "C1"}))
    assert done["state"] == "failed" and "not found" in done["error"], done
    assert bot.ctx.store.redis.hlen("spaceops:steps:pending") == 0


def test_a_link_still_being_typed_is_previewed_by_its_unfurl_id(make_bot, hub, slack):
    hub.add_space("acme/chat", stage="RUNNING")
    bot = make_bot()
    slack.share("C1", "UF123", ["https://acme-chat.hf.space/"])
    send_event(bot, {"type": "link_shared", "channel": "C1", "user": "U1", "unfurl_id": "UF123",
                     "source": "composer", "links": [{"url": "https://acme-chat.hf.space/", "domain": "hf.space"}],
                     "event_ts": "1.2"})
    card = unfurled(slack, ("C1", "UF123"))
    assert "acme/chat" in json.dumps(card)
    assert slack.of("chat.unfurl")[0].body.get("source") == "composer"


def test_a_preview_says_how_long_the_space_has_been_in_its_stage(make_bot, hub, slack):
    hub.add_space("acme/chat", stage="RUNNING")
    bot = make_bot(SPACEOPS_ADMINS="UADM")
    assert "Watching" in bot.command("/space watch acme/chat", user="UADM")["text"]
    bot.ctx.watcher.tick(bot.ctx.store.clock() - 600)  # the poller saw it running 10 min ago
    card = unfurled(slack, share(bot, slack, [URL]))[URL]
    # Running when the poller first saw it: ten minutes is what was observed, not the whole stage.
    assert "in this stage for at least 10 min" in json.dumps(card), card


def hardware_step_waiting(make_bot, hub, slack):
    """A Change hardware step to a paid flavor, waiting for its approval: (bot, execution id, the request)."""
    hub.add_space("acme/chat", hardware="cpu-basic")
    bot = make_bot(SPACEOPS_APPROVERS="UAPP")
    execution = run_step(bot, slack, "space_hardware", {"space": "acme/chat", "flavor": "a100-large",
                                                          "user": "U1", "channel": "C1"})
    [request] = slack.wait(lambda: bot.ctx.approvals.store.open_requests())
    return bot, execution, request


def test_a_hardware_step_whose_approved_change_fails_to_apply_fails_with_the_reason_at_once(make_bot, hub, slack):
    bot, execution, request = hardware_step_waiting(make_bot, hub, slack)
    hub.inject("POST", "/api/spaces/acme/chat/hardware", status=400, body={"error": "a100-large is sold out"},
               times=5)
    click(bot, slack, Pending(request.id, request.channel, request.ts), "UAPP")
    slack.wait(lambda: bot.ctx.approvals.store.get(request.id).status == "failed")
    bot.ctx.steps.tick(bot.ctx.store.clock())  # long before the request expires
    done = outcome(slack, execution)
    assert done["state"] == "failed" and "did not apply it" in done["error"] and "sold out" in done["error"], done


def test_a_hardware_step_waiting_for_its_approval_survives_a_restart(make_bot, hub, slack):
    bot, execution, request = hardware_step_waiting(make_bot, hub, slack)
    bot.close()
    again = make_bot(SPACEOPS_APPROVERS="UAPP")  # another process: the request and the step are in Redis
    click(again, slack, Pending(request.id, request.channel, request.ts), "UAPP")
    slack.wait(lambda: again.ctx.approvals.store.get(request.id).status == "approved")
    again.ctx.steps.tick(again.ctx.store.clock())
    assert outcome(slack, execution)["state"] == "completed"
    assert len(slack.of("functions.completeSuccess")) == 1
