"""Escaped HTML for the word highlights of the try-it box (pure: no Streamlit).

Ticket text is untrusted: every piece of it goes through ``html.escape`` before it is wrapped
in a tag, so the result is safe for ``st.markdown(..., unsafe_allow_html=True)``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.inference import WordContribution

TOWARDS = "22, 163, 74"  # green: pushed towards the predicted label
AGAINST = "220, 38, 38"  # red: argued against it
MIN_SHOWN = 0.15  # relative weight below which a word is left plain (noise, not signal)


def highlight_words(text: str, contributions: Sequence[WordContribution]) -> str:
    """The text with each influential word on a green (for) or red (against) background."""
    strongest = max((abs(c.weight) for c in contributions), default=0.0)
    pieces: list[str] = []
    position = 0
    for word in sorted(contributions, key=lambda c: c.start):
        if word.start < position:
            continue
        pieces.append(_plain(text[position : word.start]))
        pieces.append(_marked(text[word.start : word.end], word.weight, strongest))
        position = word.end
    pieces.append(_plain(text[position:]))
    return '<div style="line-height: 2; white-space: pre-wrap">' + "".join(pieces) + "</div>"


def _plain(part: str) -> str:
    return html.escape(part)


def _marked(word: str, weight: float, strongest: float) -> str:
    share = abs(weight) / strongest if strongest > 0 else 0.0
    if share < MIN_SHOWN:
        return html.escape(word)
    colour = TOWARDS if weight > 0 else AGAINST
    alpha = round(0.15 + 0.6 * share, 2)
    direction = "for" if weight > 0 else "against"
    title = html.escape(f"{direction} the label ({weight:+.3f})", quote=True)
    return (
        f'<span title="{title}" style="background: rgba({colour}, {alpha}); '
        f'border-radius: 3px; padding: 1px 2px">{html.escape(word)}</span>'
    )


def legend() -> str:
    return (
        f'<span style="background: rgba({TOWARDS}, 0.6); padding: 1px 4px">green</span> words '
        f'pushed towards the label, <span style="background: rgba({AGAINST}, 0.6); '
        'padding: 1px 4px">red</span> words against it.'
    )


def label_block(label: str) -> str:
    """A predicted label in large type that wraps instead of being cut off (st.metric cuts long
    label names with "…")."""
    return f'<div style="font-size: 1.75rem; overflow-wrap: anywhere;">{html.escape(label)}</div>'
