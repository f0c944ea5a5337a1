"""`/space logs`, `/space dev`, `/space volumes` and `volume add|rm` through signed Slack requests."""

import json

from bot.alerts.keys import state_key
from bot.alerts.transitions import SpaceState
from bot.core.logs import mask

SPACE = "acme/chat"


def deadlines(bot, first: float, total: float) -> None:
    """Small log-read deadlines for a test (the bot's are 3 s to the Hub's first sign of life, 8 s in all)."""
    bot.ctx.tools.first, bot.ctx.tools.seconds = first, total


def test_logs_show_last_lines_as_code_masked_and_escaped(bot, hub):
    hub.add_space(SPACE)
    hub.logs[SPACE] = [f"line {i}" for i in range(50)] + ["token hf_abcdefghijklmnop <!channel>"]
    text = str(bot.command(f"logs {SPACE} --lines 40"))
    assert "line 49" in text and "hf_abcdefghijklmnop" not in text and "hf_•••" in text
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "line 11" in text and "line 10\\n" not in text  # the last 40 lines, in the reply


def test_logs_build_and_long_line_shortened(bot, hub):
    hub.add_space(SPACE)
    hub.build_logs[SPACE] = ["step 1", "x" * 100_000]
    seen = bot.command(f"logs {SPACE} --build")
    text = str(seen)
    assert "step 1" in text and "line shortened: 100000 characters" in text
    assert all(len(b["text"]["text"]) <= 3000 for b in seen["blocks"] if b.get("text"))


def test_logs_of_static_and_missing_space(bot, hub):
    hub.add_space("acme/site", sdk="static")
    assert "static Space: it has no logs" in bot.command("logs acme/site")["text"]
    missing = bot.command("logs acme/nope")["text"]
    assert "acme/nope" in missing and "was not found" in missing, missing


def test_logs_bad_lines(bot, hub):
    assert "from 1 to 500" in bot.command(f"logs {SPACE} --lines 900")["text"]


def test_mask_credentials():
    line = mask("hf_abcdefghijkl xoxb-1234-567890-abc Bearer abc.def.ghi AKIAABCDEFGHIJKLMNOP")
    assert "abcdefghijkl" not in line and "1234-567890" not in line and "abc.def" not in line
    assert "ABCDEFGHIJKLMNOP" not in line


def test_dev_mode_on_needs_plan_then_works_and_off(bot, hub):
    hub.add_space(SPACE)
    assert "PRO, Team or Enterprise" in str(bot.command(f"dev {SPACE} on"))
    assert hub.spaces[SPACE]["devMode"] is False
    hub.plans.add("acme")
    bot.command(f"dev {SPACE} on")
    assert hub.spaces[SPACE]["devMode"] is True
    bot.command(f"dev {SPACE} off")
    assert hub.spaces[SPACE]["devMode"] is False


def test_volume_add_list_rm_and_bad_inputs(bot, hub):
    hub.add_space(SPACE)
    hub.add_space("acme/other")
    assert "absolute mount path" in bot.command(f"volume add {SPACE} bucket acme/b data")["text"]
    bot.command(f"volume add {SPACE} bucket acme/b /data")
    assert hub.spaces[SPACE]["volumes"][0]["mountPath"] == "/data"
    text = str(bot.command(f"volume add {SPACE} space acme/other /data"))
    assert "already mounted" in text
    text = str(bot.command(f"volume add {SPACE} space acme/other /other"))
    assert "always mounted read-only" in text and "restarts" in text
    assert [v["mountPath"] for v in hub.spaces[SPACE]["volumes"]] == ["/data", "/other"]
    assert "/other" in str(bot.command(f"volumes {SPACE}"))
    bot.command(f"volume rm {SPACE} /data")
    assert [v["mountPath"] for v in hub.spaces[SPACE]["volumes"]] == ["/other"]


def test_a_private_space_is_not_mounted_where_its_details_may_not_be_shown(make_bot, hub):
    hub.add_space(SPACE)
    hub.add_space("other/secret", private=True)
    bot = make_bot(SPACEOPS_NAMESPACES="acme")   # this channel is not scoped to other/*
    text = str(bot.command(f"volume add {SPACE} space other/secret /secret"))
    assert "cannot be mounted from here" in text, text
    assert not hub.spaces[SPACE].get("volumes")


def test_more_than_40_lines_are_one_uploaded_file_not_a_wall_of_messages(bot, hub, slack):
    hub.add_space(SPACE)
    hub.logs[SPACE] = [f"line {i}" for i in range(120)] + ["export HF_TOKEN=hf_abcdefghijklmnopqrst"]
    posts_before = len(slack.posts())
    reply = bot.command(f"logs {SPACE} --lines 100")
    assert "last 100 run log lines" in reply["text"] and "acme-chat-run.log" in reply["text"], reply["text"]
    assert "line 119" not in str(reply["blocks"])          # the lines are in the file, not the reply
    [upload] = slack.files
    assert upload["channel"] == "C1" and upload["filename"] == "acme-chat-run.log"
    content = upload["bytes"].decode()
    assert content.splitlines()[0] == "line 21" and "line 119" in content
    assert "hf_abcdefghijklmnopqrst" not in content and "hf_•••" in content
    assert len(slack.posts()) == posts_before              # no message posted besides the file


def test_a_log_file_slack_refuses_falls_back_to_the_last_40_in_the_reply(bot, hub, slack):
    hub.add_space(SPACE)
    hub.logs[SPACE] = [f"line {i}" for i in range(60)]
    slack.fail("files.getUploadURLExternal", status=200, body={"ok": False, "error": "not_in_channel"})
    reply = bot.command(f"logs {SPACE} --lines 60")
    text = str(reply)
    assert "could not be uploaded" in text and "line 59" in text and "line 19\n" not in text
    assert not slack.files


def test_a_log_stream_of_keepalives_only_ends_with_the_total_deadline_sentence(bot, hub):
    hub.add_space(SPACE)
    hub.inject("GET", f"/api/spaces/{SPACE}/logs/run", keepalive=0.05)   # no line, keep-alives forever
    deadlines(bot, first=0.8, total=1.2)
    reply = bot.command(f"logs {SPACE}")
    assert "The Hub sent no log lines within 1.2 s" in reply["text"], reply["text"]


def test_a_log_stream_that_sends_nothing_is_given_up_at_the_first_deadline(bot, hub):
    hub.add_space(SPACE)
    hub.inject("GET", f"/api/spaces/{SPACE}/logs/run", hang=True)        # no headers, no byte
    deadlines(bot, first=0.3, total=4.0)
    reply = bot.command(f"logs {SPACE}")
    assert "sent nothing for the logs" in reply["text"] and "within 0.3 s" in reply["text"], reply["text"]


def test_a_stream_that_gives_lines_then_only_keepalives_shows_the_lines(bot, hub):
    hub.add_space(SPACE)
    hub.logs[SPACE] = ["booting", "ready"]
    hub.inject("GET", f"/api/spaces/{SPACE}/logs/run", keepalive=0.05)
    deadlines(bot, first=0.8, total=1.0)
    text = str(bot.command(f"logs {SPACE}"))
    assert "booting" in text and "ready" in text


def test_logs_of_an_asleep_space_say_when_it_last_ran_from_the_pollers_observations(bot, hub):
    hub.add_space(SPACE, stage="SLEEPING")
    now = bot.ctx.store.clock()
    state = SpaceState(SPACE, stage="SLEEPING", since=now - 7200, version=now, first_seen=now - 86400)
    bot.ctx.store.redis.hset(state_key(SPACE), mapping=state.to_fields())
    text = bot.command(f"logs {SPACE}")["text"]
    assert "asleep: no logs now" in text and "It last ran until" in text and "2 h ago" in text, text
    assert "Logs start again when it runs" in text
    assert not hub.calls("GET", f"/api/spaces/{SPACE}/logs/run")


def test_logs_of_a_paused_space_the_poller_never_saw_run_say_when_the_hub_changed_it(bot, hub):
    hub.add_space(SPACE, stage="PAUSED")
    text = bot.command(f"logs {SPACE}")["text"]
    assert "paused: no logs now" in text and "the Hub last changed it on" in text, text
    assert "Logs start again when it runs" in text


def test_a_100_kb_line_is_shortened_with_a_mark_and_its_token_masked(bot, hub):
    hub.add_space(SPACE)
    hub.logs[SPACE] = ["Authorization: Bearer sk_live_abcdefghijkl " + "y" * 100_000]
    seen = bot.command(f"logs {SPACE}")
    text = str(seen)
    assert "line shortened: 1000" in text and "sk_live_abcdefghijkl" not in text and "Bearer •••" in text
    assert len(text) < 10_000


def test_status_and_the_app_home_say_dev_mode_on(make_bot, hub, slack):
    from tests.test_fleet import Clock, open_home, tick, watch

    bot = make_bot(SPACEOPS_OPERATORS="U1")
    hub.add_space(SPACE)
    hub.spaces[SPACE]["devMode"] = True
    assert "dev mode on" in bot.command(f"status {SPACE}")["text"]
    watch(bot, SPACE)
    tick(bot, Clock(bot.ctx.store.clock() - 60))
    home = open_home(bot, slack, "U1")
    assert "dev mode on" in json.dumps(home["blocks"])
    hub.spaces[SPACE]["devMode"] = False
    assert "dev mode on" not in bot.command(f"status {SPACE}")["text"]


def test_a_volume_list_changed_between_read_and_write_is_refused_and_no_mount_is_lost(bot, hub):
    hub.add_space(SPACE)
    hub.spaces[SPACE]["volumes"] = [{"type": "bucket", "source": "acme/old", "mountPath": "/old"}]
    runtime_reads = []

    def someone_else_mounts(request):
        # Another person's write lands after the bot's first read of the list, before its check.
        if request.method == "GET" and request.path == f"/api/spaces/{SPACE}/runtime":
            runtime_reads.append(request)
            if len(runtime_reads) == 2:
                hub.spaces[SPACE]["volumes"] = hub.spaces[SPACE]["volumes"] + [
                    {"type": "bucket", "source": "acme/theirs", "mountPath": "/theirs"}]
    hub.on_request = someone_else_mounts
    text = bot.command(f"volume add {SPACE} bucket acme/mine /mine")["text"]
    hub.on_request = None
    assert "changed while you edited them; nothing was changed" in text, text
    assert not hub.calls("PUT", f"/api/spaces/{SPACE}/volumes")
    assert [v["mountPath"] for v in hub.spaces[SPACE]["volumes"]] == ["/old", "/theirs"]


def test_two_people_adding_mounts_at_once_both_keep_theirs(bot, hub, slack):
    import time

    hub.add_space(SPACE)

    def slow_write(request):
        if request.method == "PUT":
            time.sleep(0.4)  # the first write is slow: the second edit waits for the Space's lock
    hub.on_request = slow_write
    answers = [bot.send_command(f"volume add {SPACE} bucket acme/{name} /{name}", user=user)
               for name, user in (("a", "U1"), ("b", "U2"))]
    slack.wait(lambda: len(hub.calls("PUT", f"/api/spaces/{SPACE}/volumes")) == 2
               and all(slack.responses(a.response_id) or slack.posts("C1") for a in answers), 8)
    slack.wait(lambda: len(hub.spaces[SPACE]["volumes"] or []) == 2, 3)
    hub.on_request = None
    assert sorted(v["mountPath"] for v in hub.spaces[SPACE]["volumes"]) == ["/a", "/b"]


def test_mounting_a_dataset_checks_it_exists_and_may_be_seen_here(make_bot, hub):
    hub.add_space(SPACE)
    hub.repos[("dataset", "acme/corpus")] = False
    hub.repos[("dataset", "other/private-corpus")] = True
    bot = make_bot(SPACEOPS_NAMESPACES="acme")
    text = bot.command(f"volume add {SPACE} dataset acme/nope /nope")["text"]
    assert "cannot be mounted from here: it is private or not found" in text, text
    text = bot.command(f"volume add {SPACE} dataset other/private-corpus /p")["text"]
    assert "cannot be mounted from here" in text, text
    text = bot.command(f"volume add {SPACE} dataset acme/corpus /data")["text"]
    assert "always mounted read-only" in text, text
    assert hub.spaces[SPACE]["volumes"] == [{"type": "dataset", "source": "acme/corpus", "mountPath": "/data",
                                             "readOnly": True}]


def test_volume_add_refuses_a_relative_path_and_the_root(bot, hub):
    hub.add_space(SPACE)
    for path in ("data", "./data", "/"):
        text = bot.command(f"volume add {SPACE} bucket acme/b {path}")["text"]
        assert "absolute mount path" in text or "cannot be mounted at `/`" in text, (path, text)
    assert not hub.calls("PUT", f"/api/spaces/{SPACE}/volumes")


def test_the_manifest_grants_what_logs_dev_and_volumes_need():
    from pathlib import Path

    import yaml

    manifest = yaml.safe_load((Path(__file__).resolve().parent.parent / "manifest.yml").read_text())
    assert {"display_information", "features", "oauth_config", "settings", "functions"} <= set(manifest)
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"commands", "chat:write", "files:write"} <= scopes   # files:write: a long log goes out as a file
    assert all("://" not in d and "/" not in d for d in manifest["features"]["unfurl_domains"])
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == "/space" and len(command["description"]) <= 100


def test_with_dev_mode_on_app_restarts_post_nothing_and_never_a_crash_loop(bot, hub, slack):
    from tests.test_alerts import Clock, posts, tick, watch

    clock = Clock()
    hub.add_space(SPACE)
    hub.spaces[SPACE]["devMode"] = True
    watch(bot, f"watch {SPACE}")
    tick(bot, clock)
    for i in range(8):  # the app crashes and restarts in place every minute while someone edits it
        hub.set_stage(SPACE, ("RUNTIME_ERROR", "APP_STARTING", "RUNNING_APP_STARTING", "RUNNING")[i % 4],
                      error="NameError: name 'gr' is not defined" if i % 4 == 0 else None)
        tick(bot, clock)
    assert posts(slack) == []
    hub.spaces[SPACE]["devMode"] = False   # dev mode off: the same crashes are a crash loop again
    for i in range(6):
        hub.set_stage(SPACE, "RUNTIME_ERROR" if i % 2 == 0 else "RUNNING", error="boom")
        tick(bot, clock)
    assert len([p for p in posts(slack) if "crash loop" in p["text"]]) == 1


def test_a_403_on_enabling_dev_mode_is_the_plan_whatever_the_hub_says_and_disabling_still_works(bot, hub):
    hub.add_space(SPACE)
    hub.inject("POST", f"/api/spaces/{SPACE}/dev-mode", status=403, body={"error": "Forbidden"})
    text = bot.command(f"dev {SPACE} on")["text"]
    assert "Dev mode needs a PRO, Team or Enterprise plan on the Space's owner." in text, text
    hub.spaces[SPACE]["devMode"] = True
    assert "turned dev mode off" in bot.command(f"dev {SPACE} off")["text"]
    assert hub.spaces[SPACE]["devMode"] is False
    audited = bot.ctx.store.audit_entries(SPACE)   # newest first: the refusal is audited too
    assert [(e.action, e.params.get("enabled"), e.result.startswith("error")) for e in audited] == [
        ("dev", False, False), ("dev", True, True)]


def test_dev_mode_on_a_static_space_says_what_the_hub_said(bot, hub):
    hub.add_space("acme/site", sdk="static")
    text = bot.command("dev acme/site on")["text"]
    assert "not available on a static Space" in text and "PRO" not in text, text
