"""The try-it word highlights: untrusted ticket text is escaped; weak words stay plain."""

from __future__ import annotations

from core.inference import WordContribution
from ui.html import MIN_SHOWN, highlight_words


def word(text: str, target: str, weight: float) -> WordContribution:
    start = text.index(target)
    return WordContribution(word=target, start=start, end=start + len(target), weight=weight)


def test_ticket_text_is_escaped_inside_and_outside_highlights():
    """Markup in a ticket (highlighted or not) reaches the page as text, never as tags."""
    text = "<script>alert(1)</script> refund <b>now</b>"
    html = highlight_words(text, [word(text, "<script>alert(1)</script>", 1.0)])
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;now&lt;/b&gt;" in html


def test_strong_words_are_coloured_by_direction_and_weak_ones_left_plain():
    """The strongest word for the label is green, one against it red, a near-zero one plain."""
    text = "refund my broken printer please"
    weak = MIN_SHOWN / 2
    html = highlight_words(
        text,
        [word(text, "refund", 1.0), word(text, "printer", -0.5), word(text, "please", weak)],
    )
    assert html.count("<span") == 2
    assert 'title="for the label (+1.000)"' in html
    assert 'title="against the label (-0.500)"' in html
    assert "please</div>" in html
