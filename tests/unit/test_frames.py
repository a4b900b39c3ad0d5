"""Delta frames are encoded once for every watcher of an answer (chat.frames)."""

from __future__ import annotations

from chat.frames import KEPT_TEXT_CHARS, Memo
from chat.page import PageEncoder
from chat.render import delta_fragment
from chat.sse import UIMessageStreamEncoder
from providers.events import ReasoningDelta, TextDelta


def test_two_watchers_of_an_answer_share_each_delta_frame():
    deltas = [ReasoningDelta("Let me see."), TextDelta("Hello"), TextDelta(", world")]
    first, second = UIMessageStreamEncoder("m1"), UIMessageStreamEncoder("m1")
    frames: list[list[bytes]] = [[], []]
    for encoder, out in zip((first, second), frames, strict=True):
        for event in deltas:
            if type(event) is TextDelta:
                encoder.text(event.text, out)
            else:
                encoder.reasoning(event.text, out)

    assert frames[0] == frames[1]
    shared = [a for a, b in zip(*frames, strict=True) if a is b]
    assert shared == [
        b'data: {"type":"reasoning-delta","id":"reasoning-1","delta":"Let me see."}\n\n',
        b'data: {"type":"text-delta","id":"text-2","delta":"Hello"}\n\n',
        b'data: {"type":"text-delta","id":"text-2","delta":", world"}\n\n',
    ]
    # The page's fragments likewise: one string object for both sockets.
    fragment = '<span hx-swap-oob="beforeend:#mc-m2">&lt;b&gt;</span>'
    tab, other_tab = PageEncoder("m2"), PageEncoder("m2")
    assert tab.encode([TextDelta("<b>")]) == other_tab.encode([TextDelta("<b>")])
    assert tab.encode([TextDelta("<b>")]) == fragment
    assert delta_fragment("m2", "<b>") is delta_fragment("m2", "<b>")


def test_the_memo_is_bounded_and_keeps_no_long_text():
    made: list[tuple[str, str]] = []

    def encode(where: str, text: str) -> str:
        made.append((where, text))
        return f"{where}:{text}"

    memo = Memo(encode, size=3)
    assert memo("a", "x") == "a:x" and memo("a", "x") == "a:x"
    assert made == [("a", "x")]  # encoded once
    long = "y" * (KEPT_TEXT_CHARS + 1)
    memo("a", long)
    memo("a", long)
    assert made.count(("a", long)) == 2  # never kept
    for i in range(10):
        memo("b", str(i))
    made.clear()
    for i in range(10):
        memo("b", str(i))
    assert len(made) >= 7  # at most 3 were still kept
