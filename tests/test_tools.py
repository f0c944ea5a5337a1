"""`/space logs`, `/space dev`, `/space volumes` and `volume add|rm` through signed Slack requests."""

from bot.core.logs import mask

SPACE = "acme/chat"


def test_logs_show_last_lines_as_code_masked_and_escaped(bot, hub):
    hub.add_space(SPACE)
    hub.logs[SPACE] = [f"line {i}" for i in range(50)] + ["token hf_abcdefghijklmnop <!channel>"]
    text = str(bot.command(f"logs {SPACE} --lines 45"))
    assert "line 49" in text and "hf_abcdefghijklmnop" not in text and "hf_•••" in text
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "line 5\\n" not in text  # only the last 40 in the reply


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
    assert "acme/nope" in bot.command("logs acme/nope")["text"]


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
