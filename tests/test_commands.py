"""Every `/space` command end to end: signed HTTP in, the Hub request it caused, what the user saw."""

from __future__ import annotations

import json

import pytest

from handlers.commands import SECRET_CALLBACK

SPACE = "acme/chat"
BASE = f"/api/spaces/{SPACE}"


def writes(hub):
    return [(r.method, r.path, r.query, r.body) for r in hub.requests if r.method != "GET"]


def test_help_on_empty_text_and_per_command(bot, hub):
    seen = bot.command("")
    assert "/space status SPACE" in seen["text"] and "/space hw SPACE FLAVOR" in seen["text"]
    assert seen["response_type"] == "ephemeral"
    assert "Example: `/space hw acme/chat t4-medium`" in bot.command("help hw")["text"]
    assert "48 h" in bot.command("help sleep")["text"]
    assert hub.requests == []


def test_status_shows_stage_hardware_price_sleep_replicas_error_and_link(bot, hub):
    hub.add_space(SPACE, stage="RUNTIME_ERROR", hardware="t4-medium", sleep=3600, error="CUDA out of memory")
    seen = bot.command(f"status {SPACE}")
    text = seen["text"]
    assert "*crashed*" in text and "`RUNTIME_ERROR`" in text
    assert "`t4-medium` ($0.60/h)" in text
    assert "sleeps after 1 h idle" in text
    assert "Replicas:* 0 of 1" in text
    assert "CUDA out of memory" in text
    assert f"{hub.base}/spaces/{SPACE}" in text
    assert seen["response_type"] == "ephemeral"
    # The runtime, and (since it shows error text) whether the Space is private.
    assert [(r.method, r.path) for r in hub.requests] == [("GET", f"{BASE}/runtime"), ("GET", BASE)]


@pytest.mark.parametrize("sleep,hardware,words", [
    (None, "t4-small", "never sleeps"),
    (172800, "cpu-basic", "cpu-basic: sleeps after 2 d idle"),
    (900, "a10g-small", "sleeps after 15 min idle"),
])
def test_status_sleep_in_words(bot, hub, sleep, hardware, words):
    hub.add_space(SPACE, hardware=hardware, sleep=sleep)
    assert words in bot.command(f"status {SPACE}")["text"]


def test_status_accepts_space_urls_and_slack_links(bot, hub):
    hub.add_space(SPACE)
    for form in (f"https://huggingface.co/spaces/{SPACE}", f"<https://huggingface.co/spaces/{SPACE}>",
                 f"<https://huggingface.co/spaces/{SPACE}|huggingface.co/spaces/{SPACE}>"):
        assert "*running*" in bot.command(f"status {form}")["text"]
    assert len(hub.calls("GET", f"{BASE}/runtime")) == 3


def test_invalid_space_id_is_refused_before_any_hub_call(bot, hub):
    for bad in ("acme", "a/b/c", "acme/--x", "acme/..", "-acme/chat", "x" * 97 + "/y"):
        seen = bot.command(f"status {bad}")
        assert "is not a Space id" in seen["text"], bad
    assert hub.requests == []


def test_restart_announces_in_channel_with_who(bot, hub):
    hub.add_space(SPACE)
    seen = bot.command(f"restart {SPACE}", user="U42")
    assert seen["response_type"] == "in_channel"
    assert seen["text"].startswith("<@U42> restarted `acme/chat`: now building. The Hub now reports `cpu-basic` (free)")
    assert writes(hub) == [("POST", f"{BASE}/restart", {}, None)]


def test_factory_restart_sends_factory_true(bot, hub):
    hub.add_space(SPACE)
    assert "factory-rebooted" in bot.command(f"restart {SPACE} --factory")["text"]
    assert writes(hub) == [("POST", f"{BASE}/restart", {"factory": ["true"]}, None)]


def test_resume_is_a_restart_of_a_paused_space(bot, hub):
    hub.add_space(SPACE, stage="PAUSED")
    seen = bot.command(f"resume {SPACE}")
    assert "resumed `acme/chat`: now building" in seen["text"]
    assert writes(hub) == [("POST", f"{BASE}/restart", {}, None)]


def test_pause(bot, hub):
    hub.add_space(SPACE, hardware="t4-small")
    seen = bot.command(f"pause {SPACE}")
    assert "paused `acme/chat`: now paused; no billing" in seen["text"]
    assert seen["response_type"] == "in_channel"
    assert writes(hub) == [("POST", f"{BASE}/pause", {}, None)]


def test_cheaper_hardware_applies_at_once(bot, hub):
    hub.add_space(SPACE, hardware="a10g-small")
    seen = bot.command(f"hw {SPACE} t4-small")
    assert "`a10g-small` ($1.00/h) → `t4-small` ($0.40/h)" in seen["text"]
    assert writes(hub) == [("POST", f"{BASE}/hardware", {}, {"flavor": "t4-small"})]


def test_hardware_alias_and_same_flavor(bot, hub):
    hub.add_space(SPACE, hardware="t4-small")
    assert "already on `t4-small`" in bot.command(f"hardware {SPACE} t4-small")["text"]
    assert writes(hub) == []


def test_upgrade_is_not_applied_by_the_command(bot, hub):
    hub.add_space(SPACE, hardware="cpu-basic")
    seen = bot.command(f"hw {SPACE} a100-large")
    assert "a100-large" in seen["text"] and "approv" in seen["text"]
    assert hub.calls("POST", f"{BASE}/hardware") == []


def test_flavor_typo_gets_a_suggestion(bot, hub):
    hub.add_space(SPACE)
    seen = bot.command(f"hw {SPACE} t4-meduim")
    assert "did you mean `t4-medium`?" in seen["text"].lower()
    assert hub.requests == []


@pytest.mark.parametrize("given,seconds", [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400),
                                           ("never", -1)])
def test_sleep_durations(bot, hub, given, seconds):
    hub.add_space(SPACE, hardware="t4-small")
    seen = bot.command(f"sleep {SPACE} {given}")
    assert seen["response_type"] == "in_channel", seen
    assert writes(hub) == [("POST", f"{BASE}/sleeptime", {}, {"seconds": seconds})]
    if seconds == -1:
        assert "never sleeps" in seen["text"]


def test_sleep_on_cpu_basic_is_explained_and_changes_nothing(bot, hub):
    hub.add_space(SPACE, hardware="cpu-basic")
    seen = bot.command(f"sleep {SPACE} 1h")
    assert "Only upgraded hardware can change its sleep time" in seen["text"]
    assert writes(hub) == []


def test_bad_duration(bot, hub):
    seen = bot.command(f"sleep {SPACE} soon")
    assert "is not a duration" in seen["text"]
    assert hub.requests == []


def test_variables_ls_set_rm(bot, hub):
    hub.add_space(SPACE, variables={"MODEL": "gpt2"})
    assert "`MODEL` = `gpt2`" in bot.command(f"var ls {SPACE}")["text"]
    seen = bot.command(f"var set {SPACE} PROMPT=You are <b>helpful</b> & kind")
    assert "set variable `PROMPT`" in seen["text"] and seen["response_type"] == "in_channel"
    assert hub.calls("POST", f"{BASE}/variables")[0].body == {"key": "PROMPT",
                                                               "value": "You are <b>helpful</b> & kind"}
    listing = bot.command(f"var ls {SPACE}")["text"]
    assert "`You are &lt;b&gt;helpful&lt;/b&gt; &amp; kind`" in listing
    assert "removed variable `MODEL`" in bot.command(f"var rm {SPACE} MODEL")["text"]
    assert hub.calls("DELETE", f"{BASE}/variables")[0].body == {"key": "MODEL"}
    assert "nothing to remove" in bot.command(f"var rm {SPACE} MODEL")["text"]
    assert len(hub.calls("DELETE")) == 1


def test_slack_escaped_value_is_unescaped_before_the_hub(bot, hub):
    hub.add_space(SPACE)
    bot.command(f"var set {SPACE} Q=a &amp;&amp; b &lt;c&gt;")
    assert hub.calls("POST", f"{BASE}/variables")[0].body["value"] == "a && b <c>"


def test_secret_ls_and_rm_never_show_values(bot, hub):
    hub.add_space(SPACE, secrets={"OPENAI_KEY": "sk-very-secret"})
    seen = bot.command(f"secret ls {SPACE}")
    assert "`OPENAI_KEY`" in seen["text"] and "sk-very-secret" not in seen["text"]
    assert "removed secret `OPENAI_KEY`" in bot.command(f"secret rm {SPACE} OPENAI_KEY")["text"]
    assert hub.calls("DELETE", f"{BASE}/secrets")[0].body == {"key": "OPENAI_KEY"}


def test_secret_set_opens_a_modal_and_its_submission_calls_the_hub(bot, hub, slack, redis_client):
    hub.add_space(SPACE)
    answer = bot.send_command(f"secret set {SPACE} OPENAI_KEY", user="U7")
    assert answer.status == 200 and answer.body == ""
    opened = slack.wait(lambda: slack.of("views.open"))
    view = opened[0].body["view"]
    assert opened[0].body["trigger_id"] == f"trig.{answer.response_id}"
    assert view["callback_id"] == SECRET_CALLBACK
    submitted = bot.submit_view(SECRET_CALLBACK, {"value": ("value", "sk-live-123"), "description": ("description", "")},
                                view["private_metadata"], user="U7")
    assert submitted.status == 200
    # Announced by the bot itself (chat.postMessage), so the message can follow the restart it causes.
    posted = slack.wait(lambda: slack.posts("C1"))
    assert posted[0]["text"] == "<@U7> set secret `OPENAI_KEY` on `acme/chat`: the Space restarts to pick it up."
    assert slack.responses(answer.response_id) == []
    assert hub.calls("POST", f"{BASE}/secrets")[0].body == {"key": "OPENAI_KEY", "value": "sk-live-123"}
    everything = json.dumps([c.body for c in slack.calls]) + json.dumps(
        {k: redis_client.type(k) for k in redis_client.keys("*")})
    everything += json.dumps([redis_client.xrange(k) for k in redis_client.keys("*") if redis_client.type(k) == "stream"])
    assert "sk-live-123" not in everything


def test_secret_modal_empty_value_shows_a_field_error(bot, hub):
    hub.add_space(SPACE)
    meta = json.dumps({"space": SPACE, "key": "K", "channel": "C1", "response_url": ""})
    answer = bot.submit_view(SECRET_CALLBACK, {"value": ("value", "  ")}, meta)
    assert answer.json == {"response_action": "errors", "errors": {"value": "Enter the secret's value."}}
    assert hub.calls("POST") == []


def test_secret_value_in_command_text_is_refused(bot, hub):
    seen = bot.command(f"secret set {SPACE} KEY=sk-oops")
    assert "never go in the command text" in seen["text"] and "sk-oops" not in seen["text"]
    assert hub.requests == []


def test_duplicate(bot, hub):
    hub.add_space(SPACE, variables={"MODEL": "gpt2"})
    seen = bot.command(f"duplicate {SPACE} acme/chat-staging --private --sleep 1h")
    assert "duplicated `acme/chat`" in seen["text"] and "acme/chat-staging" in seen["text"]
    assert seen["response_type"] == "in_channel"
    body = hub.calls("POST", f"{BASE}/duplicate")[0].body
    assert body == {"repository": "acme/chat-staging", "visibility": "private", "sleepTimeSeconds": 3600}
    assert hub.spaces["acme/chat-staging"]["variables"]["MODEL"]["value"] == "gpt2"


def test_duplicate_with_paid_hardware_needs_approval(bot, hub):
    hub.add_space(SPACE)
    seen = bot.command(f"duplicate {SPACE} acme/gpu-copy --hw a10g-small")
    assert "approv" in seen["text"]
    assert hub.calls("POST", f"{BASE}/duplicate") == []


def test_duplicate_onto_an_existing_space(bot, hub):
    hub.add_space(SPACE)
    hub.add_space("acme/taken")
    seen = bot.command(f"duplicate {SPACE} acme/taken")
    assert "conflicts" in seen["text"] and "Traceback" not in seen["text"]


def test_flavors_from_the_hub_and_from_the_shipped_table(bot, make_bot, hub):
    seen = bot.command("flavors")
    assert "`t4-medium` Nvidia T4 - medium — *$0.60/h*" in seen["text"]
    assert "from the Hub" in json.dumps(seen["blocks"])
    hub.hardware_endpoint_up = False
    # The last good copy from the Hub stays (shared in Redis), and says it is not fresh.
    seen = bot.command("flavors")
    assert "$0.60/h" in seen["text"] and "last read from the Hub" in json.dumps(seen["blocks"])
    bot.ctx.store.redis.flushall()
    other = make_bot()  # a replica that never read the Hub's list: the shipped table
    seen = other.command("flavors")
    assert "$0.60/h" in seen["text"] and "shipped price list" in json.dumps(seen["blocks"])


def test_unknown_command_lists_commands_and_suggests(bot, hub):
    seen = bot.command("restrat acme/chat")
    assert "Did you mean `restart`?" in seen["text"]
    seen = bot.command("xyzzy")
    assert "Commands: status, restart" in seen["text"]
    assert hub.requests == []


def test_namespace_allow_list(make_bot, hub):
    bot = make_bot(SPACEOPS_NAMESPACES="acme")
    hub.add_space("evil/app")
    seen = bot.command("restart evil/app")
    assert "may only act on acme" in seen["text"]
    assert hub.requests == []


# ------------------------------------------------------------------ Hub errors become sentences

@pytest.mark.parametrize("status,headers,body,expected", [
    (403, {"X-Error-Message": "You don't have the rights"}, {"error": "You don't have the rights"},
     "may not do this on `acme/chat`"),
    (429, {"RateLimit": '"api";r=0;t=42', "RateLimit-Policy": '"fixed window";"api";q=1000;w=300'},
     {"error": "Too many requests"}, "Try again in 42 s"),
    (500, {}, "<html>oops</html>", "The Hub had an error (500)"),
    (503, {}, {"error": "down"}, "The Hub had an error (503)"),
    (400, {"X-Error-Message": "Invalid flavor"}, {"error": "Invalid flavor"}, "The Hub refused this"),
    (200, {}, "not json at all", "something unexpected"),
])
def test_hub_errors_are_sentences(bot, hub, status, headers, body, expected):
    hub.add_space(SPACE)
    hub.inject("POST", f"{BASE}/restart", status=status, headers=headers, body=body)
    seen = bot.command(f"restart {SPACE}")
    assert expected in seen["text"], seen["text"]
    assert "Traceback" not in seen["text"] and seen["response_type"] == "ephemeral"
    assert len(hub.calls("POST", f"{BASE}/restart")) == 1  # a restart is never retried


def test_missing_space(bot, hub):
    seen = bot.command("status acme/nope")
    assert "`acme/nope` was not found" in seen["text"]


def test_hub_too_slow_gets_a_sentence(bot, hub):
    hub.add_space(SPACE)
    hub.inject("GET", f"{BASE}/runtime", status=200, body={"stage": "RUNNING"}, delay=3)
    seen = bot.command(f"status {SPACE}", timeout=10)
    assert "did not answer in time" in seen["text"]


def test_invalid_token(make_bot, hub):
    bot = make_bot(HF_TOKEN="hf_wrong")
    hub.add_space(SPACE)
    assert "rejected the bot's token" in bot.command(f"status {SPACE}")["text"]


def test_hub_error_message_cannot_ping_the_channel(bot, hub):
    hub.add_space(SPACE, stage="RUNTIME_ERROR", error="<!channel> <@U123> <http://evil|click> *bold*")
    text = bot.command(f"status {SPACE}")["text"]
    assert "<!channel>" not in text and "<@U123>" not in text and "<http://evil" not in text
    assert "&lt;!channel&gt;" in text


def test_changes_are_audited_and_listed_newest_first(bot, hub):
    hub.add_space(SPACE)
    bot.command(f"restart {SPACE}", user="U1")
    bot.command(f"pause {SPACE}", user="U2")
    hub.inject("POST", f"{BASE}/restart", status=500)
    bot.command(f"resume {SPACE}", user="U3")
    text = bot.command(f"audit {SPACE}")["text"]
    lines = text.splitlines()[1:]
    assert f"<@U3> tried to resume `{SPACE}`: *error* (The Hub had an error (500)" in lines[0], lines[0]
    assert lines[1].endswith(f"<@U2> paused `{SPACE}`"), lines[1]
    assert lines[2].endswith(f"<@U1> restarted `{SPACE}`"), lines[2]
