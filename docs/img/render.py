"""Draws docs/img/slack.png: a crash alert and an approval card as Slack shows them.

The blocks are the bot's own: this runs the `make demo` setup in-process (the Hub emulator with demo Spaces,
a throwaway redis-server), watches `acme/*`, crashes `acme/gpu-demo` in the emulator, asks for paid hardware,
and draws the Block Kit the bot posted. Run it again when the words change:

    .venv/bin/python docs/img/render.py        (from the repository root; about 20 s)
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "slack.png"
SCALE = 2
WIDTH = 760

FONTS = Path("/usr/share/fonts/truetype/dejavu")


def font(name: str, size: int) -> ImageFont.FreeTypeFont:
    for folder in (FONTS, Path(__import__("matplotlib").get_data_path()) / "fonts" / "ttf"):
        if (folder / name).exists():
            return ImageFont.truetype(str(folder / name), size * SCALE)
    raise SystemExit(f"font {name} not found")


REGULAR, BOLD, ITALIC = font("DejaVuSans.ttf", 14), font("DejaVuSans-Bold.ttf", 14), font("DejaVuSans-Oblique.ttf", 14)
MONO, SMALL, TITLE = font("DejaVuSansMono.ttf", 12), font("DejaVuSans.ttf", 12), font("DejaVuSans-Bold.ttf", 15)
INK, GREY, LINK, CODE_INK = (29, 28, 29), (97, 96, 97), (18, 100, 163), (224, 30, 90)
EMOJI = {"red_circle": ((224, 30, 90), "●"), "large_green_circle": ((43, 172, 118), "●"),
         "money_with_wings": ((43, 172, 118), "$"), "zzz": ((97, 96, 97), "z")}


# ---------------------------------------------------------------- capture the bot's blocks


def capture(cleanups: list) -> list[tuple[str, list[dict]]]:
    """(channel, blocks) of the crash alert and the approval request, from the bot itself; what must be
    stopped afterwards is added to `cleanups`."""
    sys.path.insert(0, str(ROOT))
    from bot.app import build_context
    from bot.console import answer
    from bot.core.permissions import Actor
    from bot.core.settings import Settings
    from bot.core.slack import ConsolePoster
    from tests.emulators.hub import HubEmulator, seed_demo, serve
    from tests.emulators.redisserver import RedisServer

    class Recording(ConsolePoster):
        def __init__(self):
            super().__init__(io.StringIO())
            self.posts: list[tuple[str, list[dict]]] = []

        def post(self, channel, text, blocks=None, thread_ts=None, metadata=None):
            self.posts.append((channel, blocks or []))
            return super().post(channel, text, blocks, thread_ts, metadata)

    redis = RedisServer(Path(tempfile.mkdtemp(prefix="spaceops-render-")))
    cleanups.append(redis.stop)
    hub = HubEmulator(token="hf_demo")
    seed_demo(hub)
    _stop, base = serve(hub, port=0)
    settings = Settings.from_env({"HF_ENDPOINT": base, "HF_TOKEN": "hf_demo", "REDIS_URL": redis.url,
                                  "SPACEOPS_POLL_SECONDS": "2", "SPACEOPS_HUB_TIMEOUT": "5"})
    settings = dataclasses.replace(settings, approvers=frozenset({"alice"}), approval_channel="approvals")
    poster = Recording()
    ctx = build_context(settings, poster=poster)
    ctx.watcher.start()
    you = Actor(user="you", channel="ml-alerts")
    answer(ctx, "/space watch acme/*", you)
    time.sleep(5)
    with hub.lock:
        space = hub.spaces["acme/gpu-demo"]
        space["stage"], space["errorMessage"] = "RUNTIME_ERROR", "CUDA out of memory. Tried to allocate 2.00 GiB"
        hub.logs["acme/gpu-demo"] = ["Loading model...", "torch.OutOfMemoryError: CUDA out of memory"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(ch == "ml-alerts" for ch, _ in poster.posts):
        time.sleep(0.5)
    answer(ctx, "/space hw acme/chat a10g-small", you)
    found = [next(p for p in poster.posts if p[0] == "ml-alerts"), next(p for p in poster.posts if p[0] == "approvals")]
    return [(channel, _public(blocks, base)) for channel, blocks in found]


def _public(blocks: list[dict], base: str) -> list[dict]:
    """The emulator's address reads as the Hub's."""
    import json

    return json.loads(json.dumps(blocks).replace(base, "https://huggingface.co"))


# ---------------------------------------------------------------- mrkdwn → styled runs


TOKEN = re.compile(r"```(?P<pre>.*?)```|`(?P<code>[^`]+)`|\*(?P<bold>[^*\n]+)\*|(?<![A-Za-z0-9])_(?P<it>[^_\n]+)_"
                   r"|<!date\^[^|>]*\|(?P<date>[^>]+)>|<@(?P<user>[^>|]+)(?:\|[^>]*)?>|<(?P<url>[^>|]+)\|(?P<label>[^>]+)>"
                   r"|<(?P<bare>https?://[^>]+)>|:(?P<emoji>[a-z_]+):", re.S)


def runs(text: str, style: str = "plain") -> list[tuple[str, str]]:
    """Text with Slack's markup → (text, style) pieces; `pre` pieces are whole code blocks."""
    out, at = [], 0
    for match in TOKEN.finditer(text):
        if match.start() > at:
            out.append((text[at:match.start()], style))
        kind = match.lastgroup
        value = match.group(kind)
        if kind == "bold":
            out += [(t, {"plain": "bold", "link": "boldlink"}.get(s, s)) for t, s in runs(value)]
        elif kind == "label":
            out.append((value, "link"))
        elif kind in ("url", "bare"):
            out.append((match.group("label") or value, "link"))
        elif kind == "user":
            out.append(("@" + value, "mention"))
        elif kind == "it":
            out.append((value, "italic"))
        elif kind == "date":
            out.append((value, style))
        else:
            out.append((value, kind))
        at = match.end()
    if at < len(text):
        out.append((text[at:], style))
    return out


def face(style: str, small: bool):
    if small:
        return MONO if style == "code" else SMALL
    return {"bold": BOLD, "boldlink": BOLD, "italic": ITALIC, "code": MONO, "mention": BOLD}.get(style, REGULAR)


class Canvas:
    def __init__(self, height: int):
        self.image = Image.new("RGB", (WIDTH * SCALE, height * SCALE), "white")
        self.draw = ImageDraw.Draw(self.image)
        self.y = 0

    def px(self, value: float) -> int:
        return int(value * SCALE)

    def text_block(self, text: str, x: int, right: int, small: bool = False) -> None:
        """Draw mrkdwn with wrapping; code blocks as grey boxes."""
        line_h = 19 if not small else 17
        cx, fresh = x, False  # fresh: a code block just ended its line
        for piece, style in runs(text):
            if style == "pre":
                if cx != x:
                    self.y += line_h
                self.pre(piece, x, right)
                cx, fresh = x, True
                continue
            for part in re.split(r"(\n)", piece):
                if part == "\n":
                    if not fresh:
                        self.y += line_h
                    cx, fresh = x, False
                    continue
                if part:
                    fresh = False
                for word in ([part] if style == "code" else re.split(r"(\s+)", part)):
                    if not word:
                        continue
                    f = face(style, small)
                    shown = EMOJI.get(word, (GREY, "•"))[1] + " " if style == "emoji" else word
                    w = self.draw.textlength(shown, font=BOLD if style == "emoji" else f) / SCALE
                    if cx + w > right and word.strip() and cx > x:
                        self.y += line_h
                        cx = x
                    if not word.strip() and cx == x:
                        continue
                    self.word(word, style, f, cx, small)
                    cx += w
        if not fresh:
            self.y += line_h

    def word(self, word, style, f, cx, small):
        y = self.y
        if style == "emoji":
            colour, glyph = EMOJI.get(word, (GREY, "•"))
            self.draw.text((self.px(cx), self.px(y)), glyph, font=BOLD, fill=colour)
            return
        colour = {"link": LINK, "boldlink": LINK, "mention": LINK, "code": CODE_INK}.get(style, GREY if small else INK)
        w = self.draw.textlength(word, font=f)
        if style == "code" and word.strip():
            self.draw.rounded_rectangle((self.px(cx) - 3, self.px(y) - 1, self.px(cx) + w + 3, self.px(y + 17)),
                                        radius=6, fill=(246, 246, 246), outline=(221, 221, 221))
        if style == "mention":
            self.draw.rounded_rectangle((self.px(cx) - 2, self.px(y) - 1, self.px(cx) + w + 2, self.px(y + 18)),
                                        radius=6, fill=(232, 245, 250))
        self.draw.text((self.px(cx), self.px(y + (2 if style == "code" else 0))), word, font=f, fill=colour)

    def pre(self, text: str, x: int, right: int) -> None:
        lines = text.strip("\n").split("\n")
        top = self.y + 4
        height = 10 + 17 * len(lines)
        self.draw.rounded_rectangle((self.px(x), self.px(top), self.px(right), self.px(top + height)), radius=8,
                                    fill=(248, 248, 248), outline=(221, 221, 221))
        for i, line in enumerate(lines):
            self.draw.text((self.px(x + 8), self.px(top + 5 + 17 * i)), line, font=MONO, fill=INK)
        self.y = top + height + 6

    def buttons(self, elements: list[dict], x: int) -> None:
        cx = x
        self.y += 4
        for element in elements:
            label = element["text"]["text"]
            w = self.draw.textlength(label, font=BOLD) / SCALE + 26
            style = element.get("style")
            fill = {"primary": (0, 122, 90), "danger": (224, 30, 90)}.get(style, "white")
            ink = "white" if style else INK
            self.draw.rounded_rectangle((self.px(cx), self.px(self.y), self.px(cx + w), self.px(self.y + 30)),
                                        radius=8, fill=fill, outline=fill if style else (190, 190, 190))
            self.draw.text((self.px(cx + 13), self.px(self.y + 6)), label, font=BOLD, fill=ink)
            cx += w + 8
        self.y += 40


def message(canvas: Canvas, channel: str, blocks: list[dict], clock: str) -> None:
    c = canvas
    c.draw.rectangle((0, c.px(c.y), c.px(WIDTH), c.px(c.y + 40)), fill=(248, 248, 248))
    c.draw.line((0, c.px(c.y + 40), c.px(WIDTH), c.px(c.y + 40)), fill=(221, 221, 221), width=SCALE)
    c.draw.text((c.px(16), c.px(c.y + 10)), f"# {channel}", font=TITLE, fill=INK)
    c.y += 56
    left, right = 72, WIDTH - 20
    c.draw.rounded_rectangle((c.px(20), c.px(c.y), c.px(56), c.px(c.y + 36)), radius=8, fill=(255, 210, 30))
    c.draw.text((c.px(27), c.px(c.y + 7)), "SO", font=BOLD, fill=INK)
    c.draw.text((c.px(left), c.px(c.y - 2)), "Space Ops", font=BOLD, fill=INK)
    name_w = c.draw.textlength("Space Ops", font=BOLD) / SCALE
    c.draw.rounded_rectangle((c.px(left + name_w + 6), c.px(c.y), c.px(left + name_w + 36), c.px(c.y + 15)),
                             radius=3, fill=(232, 232, 232))
    c.draw.text((c.px(left + name_w + 9), c.px(c.y + 1)), "APP", font=font("DejaVuSans-Bold.ttf", 9), fill=GREY)
    c.draw.text((c.px(left + name_w + 44), c.px(c.y)), clock, font=SMALL, fill=GREY)
    c.y += 22
    for block in blocks:
        kind = block["type"]
        if kind == "section":
            c.text_block(block["text"]["text"], left, right)
            c.y += 4
        elif kind == "actions":
            c.buttons([e for e in block["elements"] if e.get("type") == "button"], left)
        elif kind == "context":
            c.text_block(" ".join(e.get("text", "") for e in block["elements"]), left, right, small=True)
        elif kind == "header":
            c.text_block("*" + block["text"]["text"] + "*", left, right)
    c.y += 18


def draw(messages: list[tuple[str, list[dict]]]) -> Image.Image:
    canvas = Canvas(2000)
    for channel, blocks in messages:
        shown = re.search(r"\|\d{4}-\d\d-\d\d (\d\d:\d\d) UTC>", str(blocks))
        message(canvas, channel, blocks, shown.group(1) if shown else "")
    height = canvas.y + 4
    image = canvas.image.crop((0, 0, WIDTH * SCALE, height * SCALE))
    framed = Image.new("RGB", (image.width + 2 * SCALE, image.height + 2 * SCALE), (210, 210, 210))
    framed.paste(image, (SCALE, SCALE))
    return framed


def main() -> int:
    cleanups: list = []
    try:
        draw(capture(cleanups)).save(OUT, optimize=True)
        print(f"wrote {OUT.relative_to(ROOT)}")
    finally:
        for stop in cleanups:
            stop()
        os._exit(0)  # the bot's threads (poller, pool) need not be stopped one by one for a picture


if __name__ == "__main__":
    main()
