"""Text encodings: turn a file's bytes into text, in the encoding named or the one detected.

UTF-8 (with or without BOM) and UTF-16 with a BOM are unambiguous. Other files carry no label
saying which legacy code page wrote them; charset-normalizer proposes candidates and the letters
they decode to decide (see :func:`_guessed_encodings`). A guess can still be wrong on a short file,
so callers report it and let the analyst name the encoding instead.
"""

from __future__ import annotations

import codecs
import functools
from itertools import combinations

from charset_normalizer import from_bytes

from core.errors import DataError

#: Encodings an analyst can pick, by Python's codec name, with the name people know them by.
#: After UTF-8 and UTF-16 these are also what detection chooses from, the more common first.
ENCODINGS: dict[str, str] = {
    "utf-8": "Unicode (UTF-8)",
    "utf-16": "Unicode (UTF-16)",
    "cp1252": "Western European (Windows-1252)",
    "iso8859-15": "Western European (ISO-8859-15)",
    "cp1250": "Central European (Windows-1250)",
    "iso8859-2": "Central European (ISO-8859-2)",
    "cp1251": "Cyrillic (Windows-1251)",
    "koi8-r": "Cyrillic (KOI8-R)",
    "cp1253": "Greek (Windows-1253)",
    "cp1254": "Turkish (Windows-1254)",
    "cp1257": "Baltic (Windows-1257)",
    "cp1255": "Hebrew (Windows-1255)",
    "cp1256": "Arabic (Windows-1256)",
    "shift_jis": "Japanese (Shift-JIS)",
    "cp932": "Japanese (Windows Shift-JIS)",
    "euc_jp": "Japanese (EUC-JP)",
    "gb18030": "Chinese, simplified (GB18030 / GBK)",
    "big5": "Chinese, traditional (Big5)",
    "euc_kr": "Korean (EUC-KR)",
    "utf-8-sig": "Unicode (UTF-8 with BOM)",
}
_DETECTABLE = tuple(c for c in ENCODINGS if not c.startswith("utf"))
_RANK_SAMPLE_BYTES = 64 * 1024
#: Each language more that a decoding's letters need weighs like 5% of messy characters.
_EXTRA_LANGUAGE_ODDNESS = 0.05
#: The accented letters of languages written in the Latin single-byte code pages above.
_ALPHABETS = {
    "French": "àâæçéèêëîïôœùûüÿ",
    "German": "äöüß",
    "Spanish": "áéíñóúü",
    "Portuguese": "áâãàçéêíóôõú",
    "Italian": "àèéìíîòóùú",
    "Dutch": "áéëíïóöúü",
    "Nordic": "åäöæøéáíóúýðþ",
    "Polish": "ąćęłńóśźż",
    "Czech": "áčďéěíňóřšťúůýž",
    "Slovak": "áäčďéíĺľňóôŕšťúýž",
    "Hungarian": "áéíóöőúüű",
    "Croatian/Slovene": "čćđšž",
    "Romanian": "ăâîșțşţ",
    "Turkish": "çğıöşü",
    "Baltic": "ąčęėįšųūžāēģīķļņõä",
}
#: Symbols that do sit next to letters in real text (quotes, degrees, ordinals, currency).
_PLAIN_SYMBOLS = frozenset("«»°ºª€£¥§©®™·")
_SCRIPTS = (
    (0x41, 0x24F, "latin"),
    (0x370, 0x3FF, "greek"),
    (0x400, 0x52F, "cyrillic"),
    (0x590, 0x5FF, "hebrew"),
    (0x600, 0x6FF, "arabic"),
    (0x1100, 0x11FF, "hangul"),
    (0x3130, 0x318F, "hangul"),
    (0x3400, 0x4DBF, "han"),
    (0x4E00, 0x9FFF, "han"),
    (0xAC00, 0xD7AF, "hangul"),
    (0xF900, 0xFAFF, "han"),
)
_ALPHABETIC = ("latin", "greek", "cyrillic", "hebrew", "arabic")
#: Scripts whose letters real text does not write inside one word.
_NEVER_TOUCHING = frozenset(
    [frozenset(pair) for pair in combinations(_ALPHABETIC, 2)] + [frozenset(("hangul", "han"))]
)


def decode_text(
    data: bytes, name: str = "the file", encoding: str | None = None
) -> tuple[str, str]:
    """Decode the bytes of a text file; return the text and the name of the encoding used.

    ``encoding`` (any name Python knows, e.g. "cp1251") is used as given; None detects it.
    """
    text, used, _guessed = decode_bytes(data, name, encoding)
    return text, used


def decode_bytes(data: bytes, name: str, encoding: str | None) -> tuple[str, str, bool]:
    """(text, codec name, whether the codec was guessed from the bytes); see :func:`decode_text`."""
    if encoding is not None and str(encoding).strip():
        return (*_decode_as(data, canonical_encoding(encoding), name), False)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return (*_checked(_decode_or_none(data, "utf-16"), "utf-16", name), False)
    utf8 = _decode_or_none(data, "utf-8-sig")
    if utf8 is not None:
        used = "utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8"
        return (*_checked(utf8, used, name), False)
    for codec in _guessed_encodings(data):
        text = _decode_or_none(data, codec)
        if text is not None:
            return (*_checked(text, codec, name), True)
    raise DataError(
        f"Could not read the text in '{name}': it is not UTF-8 or another text encoding "
        "TicketTune recognises, or it is not a text file at all. Open it in Excel or a text "
        "editor and save it as 'CSV UTF-8', or pick its encoding."
    )


def canonical_encoding(encoding: str) -> str:
    """Python's own name for an encoding ("Windows-1251" → "cp1251"); DataError if unknown."""
    try:
        return codecs.lookup(str(encoding).strip()).name
    except LookupError:
        known = ", ".join(ENCODINGS)
        raise DataError(
            f"TicketTune does not know the text encoding '{encoding}'. Use one of {known} "
            "(or another name Python knows), or leave the encoding out to detect it."
        ) from None


def describe_encoding(encoding: str | None) -> str:
    """The name analysts know an encoding by, e.g. "Cyrillic (Windows-1251)"."""
    if not encoding:
        return "not a text file"
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        return encoding
    return ENCODINGS.get(codec, codec)


def _decode_as(data: bytes, codec: str, name: str) -> tuple[str, str]:
    """Decode with the encoding the analyst chose; a byte it cannot read is a clear error."""
    decoder = "utf-8-sig" if codec == "utf-8" else codec
    try:
        text = data.decode(decoder)
    except UnicodeDecodeError as exc:
        shown = data[exc.start : exc.start + 4].hex(" ")
        raise DataError(
            f"'{name}' cannot be read as {describe_encoding(codec)}: the bytes at position "
            f"{exc.start:,} ({shown}) mean nothing in that encoding. Pick another encoding, or "
            "let TicketTune detect it."
        ) from None
    except UnicodeError as exc:
        raise DataError(
            f"'{name}' cannot be read as {describe_encoding(codec)} ({exc}). Pick another "
            "encoding, or let TicketTune detect it."
        ) from None
    return _checked(text, codec, name)


def _guessed_encodings(data: bytes) -> list[str]:
    """Candidate encodings, most likely first, for bytes that are not UTF-8.

    charset-normalizer proposes them, measuring how messy each decoding reads. On short files it
    cannot tell the single-byte code pages of Latin languages apart (French read as Windows-1250
    or Czech read as Windows-1252 look tidy to it), so its proposals are re-ranked by what the
    decoded letters say too: symbols inside words ("dzia³a" is Polish "działa" read in the wrong
    code page) and accented letters that no one language uses together. Then charset-normalizer's
    coherence (how like a known language the letters are), then the order of :data:`ENCODINGS`
    (the more common first).
    """
    sample = data[:_RANK_SAMPLE_BYTES]
    ranked = []
    for match in from_bytes(data, cp_isolation=list(_DETECTABLE)):
        for name in match.could_be_from_charset or [match.encoding]:
            codec = codecs.lookup(name).name
            if codec in _DETECTABLE:
                decoded = sample.decode(codec, errors="ignore")
                oddness = match.chaos + _misplaced_symbols(decoded)
                oddness += _EXTRA_LANGUAGE_ODDNESS * _extra_languages(decoded)
                rank = (round(oddness, 3), -round(match.coherence, 3), _DETECTABLE.index(codec))
                ranked.append((*rank, codec))
    return list(dict.fromkeys(codec for *_, codec in sorted(ranked)))


def _extra_languages(text: str) -> int:
    """How many languages beyond one it takes to use every accented Latin letter of ``text``.

    French read in the Central European code page turns "à" and "è" into "ŕ" and "č": text that
    would need Slovak and Czech letters in French words. Counted up to 3.
    """
    letters = {c.lower() for c in text if "\xc0" <= c <= "\u024f" and c.isalpha()}
    if not letters:
        return 0
    alphabets = [set(alphabet) for alphabet in _ALPHABETS.values()]
    for size in (1, 2, 3):
        for chosen in combinations(alphabets, size):
            if letters <= set().union(*chosen):
                return size - 1
    return 3


def _misplaced_symbols(text: str) -> float:
    """Share of non-ASCII characters that sit where real text has a letter of its own script.

    Two kinds: a symbol from the Latin-1/Latin Extended range touching a letter (¶ and ³ in
    "¶wieci", "dzia³a": Polish read in the wrong code page), and a letter touching a letter of
    a script it is not written next to ("ؤnderung": German "Änderung" read as Arabic; Hangul
    inside Chinese characters: Chinese read as Korean).
    """
    non_ascii = misplaced = 0
    for i, char in enumerate(text):
        if char < "\x80":
            continue
        non_ascii += 1
        before = text[i - 1] if i else " "
        after = text[i + 1] if i + 1 < len(text) else " "
        if char.isalpha():
            script = _script(char)
            misplaced += any(
                frozenset((script, _script(other))) in _NEVER_TOUCHING for other in (before, after)
            )
        elif char <= "\u02ff" and char not in _PLAIN_SYMBOLS:
            misplaced += before.isalpha() or after.isalpha()
    return misplaced / non_ascii if non_ascii else 0.0


@functools.lru_cache(maxsize=8192)
def _script(char: str) -> str:
    """The writing system of a letter, as far as telling code pages apart needs."""
    if not char.isalpha():
        return ""
    code = ord(char)
    for start, end, script in _SCRIPTS:
        if start <= code <= end:
            return script
    return "other"


def _decode_or_none(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return None


def _checked(text: str | None, encoding: str, name: str) -> tuple[str, str]:
    if text is None:
        raise DataError(
            f"Could not read the text in '{name}' as {encoding}. Save it as 'CSV UTF-8' and retry."
        )
    sample = text[:65536]
    controls = sum(1 for char in sample if ord(char) < 32 and char not in "\t\n\r")
    if controls > max(2, len(sample) // 100):
        raise DataError(
            f"The file '{name}' contains binary data (control characters), so it is not a text "
            "table. Export your tickets as CSV (UTF-8) or .xlsx and upload that."
        )
    return text, encoding
