"""The README and docs/ stay true to the code: every relative link (and anchor) resolves, every command, alias,
run mode and setting the code knows is in docs/reference.md, and the README stays short and starts with
`make demo`. The lists come from the code, so a new command or setting without documentation fails here,
named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_deploy import settings_variables  # what Settings.from_env asks the environment for

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]  # docs/incoming/ holds drafts the lead folds in
REFERENCE = DOCS / "reference.md"

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)


def prose(text: str) -> str:
    """Markdown without its fenced code blocks (a link-looking thing in a code sample is not a link)."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|<[^>]+>", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    for line in prose(path.read_text()).splitlines():
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            base = slug(heading.group(1))
            n = counts.get(base, 0)
            counts[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def relative_links(path: Path) -> list[str]:
    return [target for target in LINK.findall(prose(path.read_text()))
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I)]  # http:, https:, mailto:…


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_at_a_file_and_anchor_that_exist(page):
    broken = []
    for target in relative_links(page):
        file_part, _, anchor = target.partition("#")
        where = (page.parent / file_part).resolve() if file_part else page
        if not where.exists():
            broken.append(f"{target}: no file {where.relative_to(ROOT) if where.is_relative_to(ROOT) else where}")
        elif anchor and where.suffix == ".md" and anchor not in anchors(where):
            broken.append(f"{target}: no heading #{anchor} in {where.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)} has broken links:\n  " + "\n  ".join(broken)


def test_the_docs_pages_are_linked_from_the_readme():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in relative_links(ROOT / "README.md")}
    missing = [p.name for p in DOCS.glob("*.md") if p.resolve() not in linked]
    assert not missing, f"docs pages the README does not link to: {missing}"


# ---------------------------------------------------------------- what the code knows


def settings_names() -> set[str]:
    source = (ROOT / "bot" / "core" / "settings.py").read_text()
    named = set(re.findall(r"""["']((?:SPACEOPS|SLACK|HF)_[A-Z0-9_]+)["']""", source))
    return settings_variables() | named


def command_forms() -> dict[str, str]:
    """Every way the grammar and the features know to type a command → what the reference must show."""
    import bot.app  # noqa: F401 — wiring imports every feature, and each declares its commands
    from bot.commands.grammar import ALIASES, COMMANDS, SUBCOMMANDS
    from bot.core.permissions import CHANGES, READS, SELF_CHECKED

    forms = {verb: f"/space {verb}" for verb in COMMANDS}
    for verb, subs in SUBCOMMANDS.items():
        for sub in subs:
            forms[f"{verb}.{sub}"] = f"/space {verb} {sub}"
    for alias in ALIASES:
        forms[f"alias {alias}"] = f"`{alias}`"
    for name in READS | CHANGES | SELF_CHECKED:
        verb, _, sub = name.partition(".")
        assert verb in COMMANDS, f"{name} is declared by a feature but the grammar has no command {verb!r}"
        if sub and name not in forms:
            usage, _, summary = COMMANDS[verb]
            # A word typed after the verb (`webhook enable`, `schedule pause|resume ID` in the summary); otherwise
            # (`scope.set`, `budget.set`) the form is the verb with its arguments, which the verb's entry covers.
            typed = set(re.findall(r"\b[a-z][\w-]*\b", usage))
            for alternatives in re.findall(rf"\b{verb} ((?:[a-z][\w-]*\|)*[a-z][\w-]*)", summary):
                typed |= set(alternatives.split("|"))
            if sub in typed:
                forms[name] = sub
    return forms


def run_modes() -> dict[str, set[str]]:
    """`python -m bot MODE` → its options, from the command line's own parser."""
    import argparse

    from bot.__main__ import _parser

    parser = _parser()
    modes: dict[str, set[str]] = {"": {o for a in parser._actions for o in a.option_strings if o != "-h" and o != "--help"}}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                modes[name] = {o for a in sub._actions for o in a.option_strings if o not in ("-h", "--help")}
    return modes


def make_targets() -> set[str]:
    phony = re.search(r"^\.PHONY:(.*)$", (ROOT / "Makefile").read_text(), re.M)
    return set(phony.group(1).split())


def test_every_setting_is_in_the_reference():
    text = REFERENCE.read_text()
    missing = sorted(name for name in settings_names() if f"`{name}`" not in text)
    assert not missing, f"settings read in bot/core/settings.py but not in docs/reference.md: {missing}"


def test_every_command_subcommand_and_alias_is_in_the_reference():
    text = REFERENCE.read_text()
    missing = []
    for name, form in sorted(command_forms().items()):
        if name.startswith("alias ") or form.startswith("/space"):
            if not re.search(re.escape(form) + r"(?![\w-])", text):
                missing.append(f"{name} ({form})")
        else:  # a sub-word: on a line that shows its command
            verb = name.partition(".")[0]
            if not re.search(rf"/space {verb}\b[^\n]*\b{form}\b", text):
                missing.append(f"{name} (/space {verb} … {form})")
    assert not missing, "commands the code knows but docs/reference.md does not show:\n  " + "\n  ".join(missing)


def test_every_run_mode_and_option_is_in_the_reference():
    text = REFERENCE.read_text()
    missing = []
    for mode, options in run_modes().items():
        rows = [line for line in text.splitlines() if f"python -m bot {mode}".rstrip() in line]
        if not rows:
            missing.append(f"python -m bot {mode}")
            continue
        missing += [f"python -m bot {mode} {option}".replace("  ", " ") for option in sorted(options)
                    if not any(option in row for row in rows)]
    assert not missing, f"run modes or options not in docs/reference.md's running modes: {missing}"


def test_every_make_target_is_documented():
    text = "\n".join(page.read_text() for page in PAGES)
    missing = sorted(t for t in make_targets() if f"make {t}" not in text)
    assert not missing, f"Makefile targets no page mentions: {missing}"


# ---------------------------------------------------------------- the README's shape


def test_readme_is_short_and_starts_with_make_demo():
    text = (ROOT / "README.md").read_text()
    lines = text.splitlines()
    assert len(lines) < 250, f"README.md has {len(lines)} lines; keep it under 250 and move detail to docs/"
    first = re.search(r"^```[^\n]*\n(.*?)^```", text, re.S | re.M)
    assert first and "make demo" in first.group(1), "the README's first command block must contain `make demo`"
    commands = [line.split("#")[0].strip() for line in first.group(1).splitlines() if line.strip()]
    assert commands == ["make demo", "make run", "make test"], commands
    assert re.search(r"make test\s+#.*about \d+ min", first.group(1)), "say how long `make test` takes"
    assert text.index("make demo") < text.index("make run"), "the demo comes before the Slack app"
    assert (ROOT / "docs" / "img" / "slack.png").exists()


def test_readme_times_are_said_once():
    """The test-suite time lives in one place (the first command block), so updating it is one edit."""
    pages = "\n".join(page.read_text() for page in PAGES)
    assert len(re.findall(r"about \d+ min(?:utes)?\b[^\n]*", re.search(r"```.*?```", pages, re.S).group(0))) == 1
    assert len(re.findall(r"`make test`[^\n.]*about \d+ min", pages)) == 0, "say the suite's time only in the README's command block"
