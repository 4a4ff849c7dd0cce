"""Untrusted text (ticket text, labels, column, file and run names) made literal for markdown.

Streamlit renders the body of ``st.markdown``/``st.caption``/``st.error``/… and widget labels
as GitHub-flavoured markdown plus its own extensions: links and images, ``$…$`` LaTeX,
``:material/…:`` icons, ``:red[…]`` directives and emoji shortcodes. A file name like
``[click](http://evil)`` or a label like ``![x](http://evil/x.png)`` would become a live link or
an image fetched from another site. :func:`md` backslash-escapes every character with a markdown
meaning, so the analyst sees exactly the text that was in the file.
"""

from __future__ import annotations

import re

#: The ASCII punctuation that can start markdown: emphasis, code, links and images, headings,
#: lists, quotes, tables, HTML and entities, LaTeX ``$``, Streamlit's ``:shortcodes:`` and
#: ``:color[…]`` directives, and GFM autolinks (``www.``, ``http:``, ``a@b.c``). CommonMark
#: takes a backslash before any of them literally. Quotes, commas, slashes… stay as they are.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|$:~&=@])")
_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")
MAX_SHOWN = 5000


def md(value: object, *, max_chars: int = MAX_SHOWN) -> str:
    """``value`` as markdown that renders as exactly that text, on one line.

    Line breaks become spaces (a line that starts with ``#`` or four spaces would otherwise
    turn into a heading or code block), and text longer than ``max_chars`` is cut with "…".
    """
    text = _LINE_BREAKS.sub(" ", str(value))
    if len(text) > max_chars:
        text = text[: max_chars - 1] + "…"
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)
