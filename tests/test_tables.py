"""Reading uploaded tables: formats, encodings, delimiters, and every way a file can be wrong."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from core.errors import DataError
from core.tables import (
    SUPPORTED_EXTENSIONS,
    TableShape,
    read_table,
    read_table_details,
    sniff_delimiter,
)

CSV = "id,subject,label\n1,Refund for order 12,billing\n2,Cannot log in,login\n"


def test_reads_csv_bytes_as_strings_with_attrs():
    """A plain UTF-8 CSV comes back as str cells, stripped column names and format attrs."""
    df = read_table(b" id , subject ,label\n1,Refund,billing\n2,,login\n", filename="t.csv")
    assert list(df.columns) == ["id", "subject", "label"]
    assert df.to_numpy().tolist() == [["1", "Refund", "billing"], ["2", "", "login"]]
    assert all(isinstance(v, str) for v in df.to_numpy().ravel())
    assert df.attrs["format"] == "csv"
    assert df.attrs["delimiter"] == ","
    assert df.attrs["encoding"] == "utf-8"


def test_reads_from_path(tmp_path: Path):
    """A path works like bytes, and the file name gives the extension."""
    path = tmp_path / "tickets.csv"
    path.write_text(CSV, encoding="utf-8")
    df = read_table(path)
    assert df["subject"].tolist() == ["Refund for order 12", "Cannot log in"]


def test_missing_cells_become_empty_strings():
    """Short rows and empty cells become "" rather than NaN or 'nan'."""
    df = read_table(b"a,b,c\n1,,3\n4\n", filename="t.csv")
    assert df.to_numpy().tolist() == [["1", "", "3"], ["4", "", ""]]


def test_quoted_multiline_cells_survive():
    """A body with commas and line breaks inside quotes stays one cell."""
    df = read_table(b'subject,body\nHi,"Line one, still one\nline two"\n', filename="t.csv")
    assert df["body"].tolist() == ["Line one, still one\nline two"]


@pytest.mark.parametrize(
    ("delimiter", "extension", "expected_format"),
    [(";", ".csv", "csv"), ("\t", ".txt", "tsv"), ("|", ".csv", "csv"), ("\t", ".tsv", "tsv")],
)
def test_delimiters_are_sniffed(delimiter, extension, expected_format):
    """Semicolon, tab and pipe files split into the right columns, even with commas in text."""
    text = delimiter.join(["id", "body", "label"]) + "\n"
    text += delimiter.join(["1", "Hello, I was charged twice", "billing"]) + "\n"
    text += delimiter.join(["2", "Cannot log in, help", "login"]) + "\n"
    df = read_table(text.encode(), filename="t" + extension)
    assert list(df.columns) == ["id", "body", "label"]
    assert df["body"].tolist() == ["Hello, I was charged twice", "Cannot log in, help"]
    assert df.attrs["delimiter"] == delimiter
    assert df.attrs["format"] == expected_format


def test_single_column_falls_back_to_comma():
    """With no delimiter to find, the file is one column (comma assumed)."""
    assert sniff_delimiter("body\nhello there\nbye now\n") == ","


def test_utf8_bom_is_stripped_from_first_column():
    """Excel's UTF-8 BOM does not end up in the first column name."""
    df = read_table("\ufeffid,text\n1,Zoë\n".encode(), filename="t.csv")
    assert list(df.columns) == ["id", "text"]
    assert df["text"].tolist() == ["Zoë"]
    assert df.attrs["encoding"] == "utf-8-sig"


def test_gbk_chinese_comes_back_right():
    """A GBK-encoded Chinese export is decoded as Chinese, not as Western mojibake."""
    text = "编号,内容,类别\n1,登录失败，请帮忙处理。,账户\n2,发票金额错误，多扣了一次款,账单\n"
    df = read_table(text.encode("gbk"), filename="t.csv")
    assert list(df.columns) == ["编号", "内容", "类别"]
    assert df["内容"].tolist() == ["登录失败，请帮忙处理。", "发票金额错误，多扣了一次款"]
    assert df.attrs["encoding"] == "gb18030"


def test_cp1252_western_comes_back_right():
    """A Windows-1252 file with accents and curly quotes is decoded as Western text."""
    text = "name;body;label\nMüller;Café order “late” – naïve Zoë;shipping\n"
    text += "José;Reçu manquant;billing\n"
    df = read_table(text.encode("cp1252"), filename="t.csv")
    assert df["name"].tolist() == ["Müller", "José"]
    assert df["body"].tolist() == ["Café order “late” – naïve Zoë", "Reçu manquant"]
    assert df.attrs["encoding"] == "cp1252"


#: Ticket exports as legacy Windows/Unix tools write them: (encoding, codecs that read the same
#: text, rows). Short files are the hard case for detection: few bytes to go on.
LEGACY_EXPORTS = {
    "russian": (
        "cp1251",
        {"cp1251"},
        [
            ("id", "тема", "описание", "категория"),
            ("1", "Принтер не печатает", "Принтер на третьем этаже не печатает с утра.", "железо"),
            (
                "2",
                "Не могу войти в почту",
                "После смены пароля почта пишет, что он неверный.",
                "доступ",
            ),
            (
                "3",
                "Счёт за март",
                "Прошу выслать копию счёта, бухгалтерия его не получила.",
                "оплата",
            ),
        ],
    ),
    "japanese": (
        "shift_jis",
        {"shift_jis", "cp932"},
        [
            ("id", "件名", "本文", "カテゴリ"),
            ("1", "プリンターが動かない", "三階のプリンターが朝から印刷できません。", "機器"),
            (
                "2",
                "メールにログインできない",
                "パスワードを変更した後、ログインできません。",
                "アクセス",
            ),
            ("3", "請求書について", "三月分の請求書の写しを送ってください。", "請求"),
        ],
    ),
    "chinese": (
        "gb18030",
        {"gb18030", "gbk"},
        [
            ("id", "主题", "内容", "类别"),
            ("1", "打印机无法打印", "三楼的打印机从早上开始就无法打印，红灯一直在闪。", "硬件"),
            ("2", "无法登录邮箱", "修改密码后，邮箱一直提示密码错误，请帮忙处理。", "账号"),
            ("3", "三月份发票", "请重新发送三月份的发票副本，财务部没有收到。", "付款"),
        ],
    ),
    "french_german": (
        "cp1252",
        {"cp1252"},
        [
            ("id", "sujet", "message", "catégorie"),
            (
                "1",
                "Imprimante en panne",
                "L'imprimante du troisième étage n'imprime plus.",
                "matériel",
            ),
            (
                "2",
                "Passwort vergessen",
                "Nach der Änderung kann ich mich nicht anmelden, Grüße.",
                "zugang",
            ),
            (
                "3",
                "Facture de mars",
                "Pourriez-vous renvoyer la facture ? La comptabilité l'attend.",
                "facturation",
            ),
        ],
    ),
    "polish_czech_latin2": (
        "iso8859-2",
        {"iso8859-2"},
        [
            ("id", "temat", "treść", "kategoria"),
            (
                "1",
                "Drukarka nie działa",
                "Drukarka na trzecim piętrze nie drukuje, świeci się lampka.",
                "sprzęt",
            ),
            (
                "2",
                "Nemohu se přihlásit",
                "Po změně hesla mi e-mail hlásí, že heslo je špatné.",
                "přístup",
            ),
            (
                "3",
                "Faktura za marzec",
                "Proszę o ponowne przesłanie faktury, księgowość jej nie ma.",
                "płatności",
            ),
        ],
    ),
    "polish_czech_windows": (
        "cp1250",
        {"cp1250"},
        [
            ("id", "temat", "treść", "kategoria"),
            (
                "1",
                "Źle naliczona opłata",
                "Proszę o korektę faktury, opłata naliczona dwa razy.",
                "płatności",
            ),
            (
                "2",
                "Tiskárna netiskne",
                "Tiskárna ve třetím patře netiskne, svítí červená kontrolka.",
                "hardware",
            ),
            (
                "3",
                "Drukarka nie działa",
                "Drukarka na trzecim piętrze od rana nie drukuje.",
                "sprzęt",
            ),
        ],
    ),
}


def legacy_export(language: str) -> tuple[bytes, pd.DataFrame]:
    """The bytes of a legacy export, and the table they hold."""
    encoding, _, rows = LEGACY_EXPORTS[language]
    table = pd.DataFrame(rows[1:], columns=pd.Index(rows[0], dtype=object), dtype=object)
    return table.to_csv(index=False).encode(encoding), table


@pytest.mark.parametrize("language", sorted(LEGACY_EXPORTS))
def test_legacy_encodings_are_detected_and_reported(language):
    """Russian, Japanese, Chinese, French/German and Polish/Czech exports in their Windows (or
    ISO) code pages come back as the text that was written, not mojibake, and the encoding used
    is reported as guessed."""
    data, table = legacy_export(language)
    read = read_table_details(data, filename="tickets.csv")
    pd.testing.assert_frame_equal(read.frame, table)
    assert read.encoding in LEGACY_EXPORTS[language][1]
    assert read.encoding_guessed
    assert read.frame.attrs["encoding"] == read.encoding


def test_chosen_encoding_overrides_the_guess():
    """An analyst's choice is used as given (even a wrong one) and reported as chosen."""
    data, table = legacy_export("polish_czech_latin2")
    wrong = read_table_details(data, filename="t.csv", encoding="Windows-1252")
    assert (wrong.encoding, wrong.encoding_guessed) == ("cp1252", False)
    assert wrong.frame.columns[2] == "tre¶æ", "ś and ć are other letters in Windows-1252"
    right = read_table(data, filename="t.csv", encoding="ISO-8859-2")
    pd.testing.assert_frame_equal(right, table)
    assert right.attrs["encoding"] == "iso8859-2"


def test_unknown_encoding_name_is_a_clear_error():
    with pytest.raises(DataError, match=r"does not know the text encoding 'klingon'.*cp1251"):
        read_table(CSV.encode(), filename="t.csv", encoding="klingon")


def test_bytes_that_do_not_decode_in_the_chosen_encoding_are_a_clear_error():
    """Shift-JIS bytes read as UTF-8: the message names the encoding, the place, what to do."""
    data, _ = legacy_export("japanese")
    with pytest.raises(DataError, match=r"cannot be read as Unicode \(UTF-8\).*position") as info:
        read_table(data, filename="t.csv", encoding="utf-8")
    assert "Pick another encoding" in str(info.value)


def test_utf8_is_not_reported_as_guessed():
    read = read_table_details("id,body\n1,Zoë\n".encode(), filename="t.csv")
    assert (read.encoding, read.encoding_guessed, read.format, read.delimiter) == (
        "utf-8",
        False,
        "csv",
        ",",
    )


def test_utf16_with_bom_is_read():
    """Excel's 'Unicode text' export (UTF-16 with BOM, tab-separated) is readable."""
    df = read_table("id\tbody\n1\tSøren\n".encode("utf-16"), filename="t.txt")
    assert df["body"].tolist() == ["Søren"]


@pytest.mark.parametrize("content", [b"", b"   \n\r\n  ", b"\xef\xbb\xbf\n"])
def test_empty_file_is_rejected(content):
    """0 bytes, only whitespace or only a BOM: the message says the file is empty."""
    with pytest.raises(DataError, match="is empty"):
        read_table(content, filename="t.csv")


def test_header_only_is_rejected():
    """A header row without tickets gets the 'column names but no tickets' message."""
    with pytest.raises(DataError, match="column names but no tickets") as info:
        read_table(b"id,subject,label\n", filename="t.csv")
    assert "id, subject, label" in str(info.value)


def test_header_with_only_empty_rows_is_rejected():
    """Rows in which every cell is empty do not count as tickets."""
    with pytest.raises(DataError, match="no tickets"):
        read_table(b"id,subject\n,\n , \n", filename="t.csv")


def test_missing_header_is_detected():
    """A file that starts with a ticket instead of column names is told to add a header."""
    content = (
        b"1001,My card was charged twice,billing\n1002,Cannot log in,login\n1003,Refund,billing\n"
    )
    with pytest.raises(DataError, match="looks like a ticket, not column names") as info:
        read_table(content, filename="t.csv")
    assert "header row" in str(info.value)


def test_nul_bytes_are_rejected_as_binary():
    """NUL bytes mean binary content, not a table."""
    with pytest.raises(DataError, match="binary data"):
        read_table(b"id,text\n1,abc\x00\x01\x02def\n", filename="t.csv")


def test_png_renamed_to_csv_is_recognised():
    """A PNG image renamed to .csv is named as an image."""
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
    with pytest.raises(DataError, match="PNG image"):
        read_table(png, filename="tickets.csv")


def test_zip_renamed_to_csv_is_recognised():
    """An .xlsx (a ZIP) renamed to .csv is named as a ZIP archive."""
    with pytest.raises(DataError, match="ZIP archive"):
        read_table(b"PK\x03\x04" + b"\x14" * 50, filename="tickets.csv")


def test_undecodable_garbage_is_rejected():
    """Bytes that are no known text encoding get a 'save it as CSV UTF-8' message."""
    garbage = bytes(range(1, 256)) * 4
    with pytest.raises(DataError, match="Could not read the text") as info:
        read_table(garbage, filename="t.csv")
    assert "CSV UTF-8" in str(info.value)


@pytest.mark.parametrize("filename", ["tickets.pdf", "tickets.xls", "tickets"])
def test_unknown_extension_lists_supported_ones(filename):
    """Unsupported or missing extensions are refused with the list of supported ones."""
    with pytest.raises(DataError, match="cannot read") as info:
        read_table(CSV.encode(), filename=filename)
    for extension in SUPPORTED_EXTENSIONS:
        assert extension in str(info.value)


def test_file_over_size_limit_is_rejected(tmp_path: Path):
    """Too-big files report their size and the limit in MB and suggest splitting."""
    content = b"id,text\n" + b"1,hello world\n" * 20000
    with pytest.raises(DataError, match=r"over the 0\.2 MB limit") as info:
        read_table(content, filename="t.csv", max_bytes=200 * 1024)
    message = str(info.value)
    assert "0.3 MB" in message
    assert "Split" in message and "raise" in message
    path = tmp_path / "big.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match="MB limit"):
        read_table(path, max_bytes=200 * 1024)


def test_duplicate_column_names_are_named():
    """Two columns with the same name (after stripping) are refused, naming the column."""
    with pytest.raises(DataError, match="more than once: 'body'"):
        read_table(b"id,body, body\n1,a,b\n", filename="t.csv")


def test_blank_column_name_with_values_is_named():
    """A nameless column that holds values is refused, saying which column it is."""
    with pytest.raises(DataError, match=r"Column 2 .* has no name"):
        read_table(b"id,,label\n1,hello,billing\n", filename="t.csv")


def test_nameless_empty_trailing_column_is_ignored():
    """Spreadsheet exports often end rows with a comma: an empty, nameless column is dropped."""
    df = read_table(b"id,body,\n1,hello,\n2,bye,\n", filename="t.csv")
    assert list(df.columns) == ["id", "body"]


def test_repeated_header_rows_are_skipped():
    """Copies of the header row (from pasting exports together) are not read as tickets."""
    df = read_table(b"id,body\n1,hello\nid,body\n2,bye\n", filename="t.csv")
    assert df["body"].tolist() == ["hello", "bye"]


def test_table_shape_shapes_later_rows_like_the_first():
    """The header helper read_table and the streaming reader share: later rows (a chunk) are
    cleaned by the rules the first rows set — str cells, padding, header copies and empty rows
    out, the empty nameless column dropped."""
    shape, body = TableShape.from_rows([[" id ", "body", None], [1, "hello", None]], "t.csv")
    assert shape.columns == ["id", "body"] and body == [["1", "hello"]]
    later = [[2, " bye ", ""], ["id", "body", ""], [None, "", ""], [3.0, "short"]]
    assert shape.body(later) == [["2", " bye "], ["3", "short"]]
    assert list(shape.frame(shape.body(later)).columns) == ["id", "body"]


def test_table_shape_refuses_later_values_in_a_column_without_a_name():
    """A nameless column dropped for being empty so far is an error once it holds a value,
    the same error read_table gives for the whole file."""
    shape, _ = TableShape.from_rows([["id", "body", ""], ["1", "hello", ""]], "t.csv")
    with pytest.raises(DataError, match=r"Column 3 of 't\.csv' has no name"):
        shape.body([["2", "bye", "stray value"]])
    with pytest.raises(DataError, match=r"Column 3 of 't\.csv' has no name"):
        read_table(b"id,body,\n1,hello,\n2,bye,stray value\n", filename="t.csv")


def test_table_shape_checks_the_header_with_read_tables_rules():
    with pytest.raises(DataError, match="more than once: 'body'"):
        TableShape.from_rows([["id", "body", " body"], ["1", "a", "b"]], "t.csv")
    with pytest.raises(DataError, match="looks like a ticket"):
        TableShape.from_rows([["Printer broken", "hardware"], ["Laptop dead", "hardware"]], "t.csv")
    with pytest.raises(DataError, match="is empty"):
        TableShape.from_rows([[None, ""], ["", " "]], "t.csv")


def test_ragged_rows_say_which_line():
    """A row with more values than the header is reported with its line number."""
    with pytest.raises(DataError, match="line 3 has 3 values but the first row has 2") as info:
        read_table(b"id,body\n1,hello\n2,hello,extra\n", filename="t.csv")
    assert "double quotes" in str(info.value)


def test_jsonl_reads_objects_and_unions_keys():
    """JSON Lines: one object per line, blank lines skipped, missing keys become ""."""
    content = b'{"id": 1, "body": "hi"}\n\n{"id": 2.0, "label": null, "tags": ["a"]}\n'
    df = read_table(content, filename="t.jsonl")
    assert list(df.columns) == ["id", "body", "label", "tags"]
    assert df.to_numpy().tolist() == [["1", "hi", "", ""], ["2", "", "", '["a"]']]
    assert df.attrs["format"] == "jsonl"
    assert df.attrs["delimiter"] is None


def test_json_array_of_objects_is_accepted():
    """A .json file holding a list of objects reads like JSON Lines."""
    content = json.dumps([{"body": "hi", "label": "a"}, {"body": "yo", "label": "b"}])
    df = read_table(content.encode(), filename="t.json")
    assert df["label"].tolist() == ["a", "b"]


def test_json_wrapped_list_and_single_object():
    """{"tickets": [...]} and a single pretty-printed object are read too."""
    wrapped = b'{"tickets": [{"body": "hi", "label": "a"}, {"body": "yo", "label": "b"}]}'
    assert read_table(wrapped, filename="t.json")["body"].tolist() == ["hi", "yo"]
    single = b'{\n  "body": "hi",\n  "label": "a"\n}\n'
    assert read_table(single, filename="t.json").to_numpy().tolist() == [["hi", "a"]]


def test_malformed_json_array_gives_line():
    """A broken JSON list is reported with the line where it breaks."""
    with pytest.raises(DataError, match="malformed at line 2"):
        read_table(b'[{"body": "hi"},\n {"body": "yo"]', filename="t.json")


def test_malformed_jsonl_line_is_numbered():
    """A broken JSON line is reported with its line number."""
    content = b'{"body": "ok"}\n{"body": "ok"}\n{"body": "broken"\n'
    with pytest.raises(DataError, match=r"Line 3 .* not valid JSON"):
        read_table(content, filename="t.jsonl")


def test_jsonl_line_that_is_not_an_object_is_numbered():
    """A JSON line holding a list instead of an object is reported by number."""
    with pytest.raises(DataError, match=r"Line 2 .* not a JSON object"):
        read_table(b'{"body": "ok"}\n[1, 2]\n', filename="t.jsonl")


def test_xlsx_round_trip(tmp_path: Path):
    """An .xlsx written by pandas/openpyxl reads back as strings; numbers lose no digits."""
    source = pd.DataFrame(
        {"id": [1001, 1002], "body": ["Zoë was charged twice", None], "amount": [12.5, 3.0]}
    )
    path = tmp_path / "tickets.xlsx"
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        source.to_excel(writer, index=False, sheet_name="Tickets")
        pd.DataFrame({"x": [1]}).to_excel(writer, index=False, sheet_name="Other")
    df = read_table(path)
    assert df.to_numpy().tolist() == [["1001", "Zoë was charged twice", "12.5"], ["1002", "", "3"]]
    assert df.attrs["format"] == "excel"
    assert df.attrs["encoding"] is None


def test_corrupt_xlsx_is_rejected():
    """A damaged .xlsx (or a CSV renamed to .xlsx) gets a 'damaged' message."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "not a workbook")
    for content in (buffer.getvalue(), CSV.encode()):
        with pytest.raises(DataError, match=r"damaged or is not really an \.xlsx"):
            read_table(content, filename="t.xlsx")


def test_missing_path_is_a_data_error(tmp_path: Path):
    """A path that does not exist is reported as such."""
    with pytest.raises(DataError, match="no file at"):
        read_table(tmp_path / "nope.csv")
