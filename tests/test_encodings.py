"""Text encodings: names analysts know, and decoding in a named or a detected encoding.

Detection on real legacy exports is tested through read_table in test_tables.py.
"""

from __future__ import annotations

import codecs

import pytest

from core.encodings import ENCODINGS, canonical_encoding, decode_text, describe_encoding
from core.errors import DataError


def test_decode_text_reports_encoding():
    """decode_text names the encoding it used."""
    assert decode_text("Zoë".encode()) == ("Zoë", "utf-8")


def test_encoding_names_are_pythons_and_described():
    """ENCODINGS uses Python's own codec names (what read_table reports), each with a name
    analysts know."""
    assert all(codecs.lookup(name).name == name for name in ENCODINGS)
    assert describe_encoding("windows-1251") == "Cyrillic (Windows-1251)"
    assert describe_encoding("mac-roman") == "mac-roman"


def test_canonical_encoding_accepts_aliases_and_names_unknown_ones():
    assert canonical_encoding(" Windows-1251 ") == "cp1251"
    assert canonical_encoding("Shift-JIS") == "shift_jis"
    with pytest.raises(DataError, match="does not know the text encoding 'latin-9x'"):
        canonical_encoding("latin-9x")


def test_decode_text_uses_the_named_encoding():
    data = "Żółw".encode("cp1250")
    assert decode_text(data, encoding="cp1250") == ("Żółw", "cp1250")
    assert decode_text("Zoë".encode("utf-8-sig"), encoding="utf-8") == ("Zoë", "utf-8")
