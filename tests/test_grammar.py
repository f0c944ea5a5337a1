"""The command grammar as a pure function: exact values out, sentences for bad input, never an exception."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from bot.core.errors import BadInput
from bot.commands.grammar import COMMANDS, Command, parse_command, parse_duration, parse_space


def test_empty_text_is_help():
    assert parse_command("") == Command("help")
    assert parse_command("   ") == Command("help")


@pytest.mark.parametrize("text,expected", [
    ("status acme/chat", Command("status", space="acme/chat")),
    ("STATUS acme/chat", Command("status", space="acme/chat")),
    ("restart acme/chat --factory", Command("restart", space="acme/chat", factory=True)),
    ("resume acme/chat", Command("resume", space="acme/chat")),
    ("pause acme/chat", Command("pause", space="acme/chat")),
    ("hw acme/chat T4-Medium", Command("hw", space="acme/chat", flavor="t4-medium")),
    ("hardware acme/chat cpu-basic", Command("hw", space="acme/chat", flavor="cpu-basic")),
    ("sleep acme/chat 1h30m", Command("sleep", space="acme/chat", seconds=5400)),
    ("sleep acme/chat never", Command("sleep", space="acme/chat", seconds=-1)),
    ("var ls acme/chat", Command("var.ls", space="acme/chat")),
    ("var set acme/chat A=1 2", Command("var.set", space="acme/chat", key="A", value="1 2")),
    ('var set acme/chat A="quoted"', Command("var.set", space="acme/chat", key="A", value="quoted")),
    ("var rm acme/chat A", Command("var.rm", space="acme/chat", key="A")),
    ("secret set acme/chat TOKEN", Command("secret.set", space="acme/chat", key="TOKEN")),
    ("duplicate acme/a acme/b --private --hw t4-small --sleep 2h",
     Command("duplicate", space="acme/a", target="acme/b", private=True, flavor="t4-small", seconds=7200)),
    ("watch acme/* <#C0123ABC|alerts> --only errors,sleep",
     Command("watch", space="acme/*", channel="C0123ABC", only=frozenset({"errors", "sleep"}))),
    ("watches all", Command("watches", everywhere=True)),
    ("mute acme/chat 2h", Command("mute", space="acme/chat", seconds=7200)),
    ("approvals cancel abcd1234", Command("approvals.cancel", request_id="abcd1234")),
    ("audit acme/chat", Command("audit", space="acme/chat")),
    ("help hardware", Command("help", topic="hw")),
])
def test_parses(text, expected):
    assert parse_command(text) == expected


@pytest.mark.parametrize("text,fragment", [
    ("restrat acme/chat", "Did you mean `restart`?"),
    ("hw acme/chat t4-meduim", "Did you mean `t4-medium`?"),
    ("hw acme/chat", "Usage: `/space hw SPACE FLAVOR`"),
    ("sleep acme/chat 0", "out of range"),
    ("sleep acme/chat 5x", "is not a duration"),
    ("restart acme/chat --factroy", "Did you mean `--factory`?"),
    ("var sett acme/chat A=1", "Did you mean `var set`?"),
    ("var set acme/chat 1A=1", "is not a valid key"),
    ("secret set acme/chat KEY=value", "never go in the command text"),
    ("watch acme/chat --only erors", "Did you mean `errors`?"),
    ("watch acme/chat general", "is not a channel"),
    ("duplicate acme/a acme/a", "different name"),
    ("status <@U123>", "is not a Space id"),
])
def test_bad_input_is_a_sentence(text, fragment):
    with pytest.raises(BadInput) as err:
        parse_command(text)
    assert fragment in err.value.sentence


def test_user_text_echoed_in_errors_is_escaped():
    with pytest.raises(BadInput) as err:
        parse_command("<!channel>")
    assert "<!channel>" not in err.value.sentence and "&lt;!channel&gt;" in err.value.sentence


def test_space_forms():
    assert parse_space("https://huggingface.co/spaces/acme/chat") == "acme/chat"
    assert parse_space("<https://huggingface.co/spaces/acme/chat/?logs=container|link>") == "acme/chat"
    assert parse_space("hf.co/spaces/acme/chat") == "acme/chat"
    assert parse_space("acme/*", allow_pattern=True) == "acme/*"
    with pytest.raises(BadInput):
        parse_space("acme/*")


def test_durations():
    assert [parse_duration(d) for d in ("90", "90s", "15m", "2h", "1d", "never")] == [90, 90, 900, 7200, 86400, -1]


# Words the parser knows, mixed with noise, so hypothesis reaches deep branches, not only "unknown command".
_words = st.sampled_from(list(COMMANDS) + ["hardware", "ls", "set", "rm", "acme/chat", "acme/*", "--factory",
                                           "--private", "--hw", "--sleep", "--only", "t4-medium", "1h", "never",
                                           "A=1", "<#C1234567|x>", "all", "cancel", "<!channel>", "--", "=", "*"])
_text = st.one_of(st.text(max_size=200), st.lists(st.one_of(_words, st.text(max_size=12)), max_size=8).map(" ".join))


@pytest.mark.slow
@settings(max_examples=3000, deadline=None)
@given(_text)
def test_parser_always_answers(text):
    """Any text gives a Command or a BadInput sentence; nothing else escapes."""
    try:
        result = parse_command(text)
    except BadInput as err:
        assert err.sentence.strip()
        assert "<!" not in err.sentence and "<@" not in err.sentence
    else:
        assert result.name.split(".")[0] in COMMANDS
