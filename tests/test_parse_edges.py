"""Issue 11 review: parsing edges a stranger controls. A raw-UTF-8 RFC 2231 file name, an
encoded-word that decodes to another encoded-word, UTF-7 and the other 7-bit encodings that
can hide ASCII, every label of the WHATWG Encoding Standard, and JIS X 0213 text."""

from __future__ import annotations

import base64
import codecs
import json
import time
from pathlib import Path

import pytest

from mailbot.cli import main
from mailbot.mail.charset import decode_bytes, decode_header_value
from mailbot.mail.labels import CODECS, REFUSED, WHATWG_LABELS, codec_for
from mailbot.mail.parse import parse

HEAD = b"From: taro@example.co.jp\r\nTo: code@occto.or.jp\r\nSubject: s\r\nMIME-Version: 1.0\r\n"


def with_attachment(disposition: bytes) -> bytes:
    return (
        HEAD + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhi\r\n"
        b"--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        b"Content-Disposition: attachment; " + disposition + b"\r\n\r\nJVBERi0=\r\n--b--\r\n"
    )


def b_word(text: str, charset: str = "utf-8") -> str:
    return f"=?{charset}?B?{base64.b64encode(text.encode(charset)).decode()}?="


# --- RFC 2231 names written with raw 8-bit bytes ----------------------------------------------


@pytest.mark.parametrize(
    "disposition",
    [
        "filename*=utf-8''日本.pdf".encode(),
        "filename*=UTF-8''%E6%97%A5本.pdf".encode(),
        "filename*0*=utf-8''日; filename*1*=本.pdf".encode(),
        b"filename*=shift_jis''" + "日本.pdf".encode("cp932"),
        "filename*=utf-8''日本.pdf; x-note=\"ü\"".encode(),
    ],
)
def test_a_raw_8bit_rfc2231_name_parses_with_its_name(disposition: bytes):
    mail = parse(with_attachment(disposition))
    assert not [d for d in mail.defects if d.startswith("unparseable")]
    assert [a.filename for a in mail.attachments] == ["日本.pdf"]


def test_mailbot_parse_reads_a_raw_utf8_rfc2231_name(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    eml = tmp_path / "raw.eml"
    eml.write_bytes(with_attachment("filename*=utf-8''申込書①.pdf".encode()))
    assert main(["--now", "2026-11-25T10:00", "parse", str(eml), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [a["name"] for a in found["attachments"]] == ["申込書①.pdf"]


def test_run_once_files_a_raw_utf8_rfc2231_name_instead_of_quarantining(
    tmp_path: Path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILBOT_NOW", raising=False)
    eml = tmp_path / "raw.eml"
    eml.write_bytes(with_attachment("filename*=utf-8''日本.pdf".encode()))
    assert main(["--now", "2026-11-25T10:00", "deliver", str(eml)]) == 0
    assert main(["--now", "2026-11-25T10:01", "run", "--once"]) == 0
    capsys.readouterr()
    assert main(["--now", "2026-11-25T10:02", "cases", "--json"]) == 0
    [case] = json.loads(capsys.readouterr().out)
    assert case["status"] != "quarantined"


# --- an encoded-word is decoded once ------------------------------------------------------------

INNER = b_word("ceo@victim.example")
OUTER = b_word(INNER)


def test_an_encoded_word_whose_text_is_an_encoded_word_stays_literal():
    assert decode_header_value(OUTER) == INNER
    assert decode_header_value(f"Re: {OUTER} (1)") == f"Re: {INNER} (1)"


@pytest.mark.parametrize("display", [OUTER, b_word("Boss, " + INNER)])
def test_a_doubly_encoded_display_name_is_decoded_once(display: str):
    raw = f"From: {display} <eve@evil.example>\r\nTo: code@occto.or.jp\r\nSubject: {OUTER}\r\n\r\nx\r\n"
    mail = parse(raw.encode())
    assert mail.from_addr == "eve@evil.example"
    assert "ceo@victim.example" not in mail.from_name and INNER in mail.from_name
    assert mail.subject == INNER


def test_a_loose_encoded_word_as_written_is_still_decoded():
    """The one second pass kept: words a Microsoft DSN writes with spaces inside."""
    assert decode_header_value("zum =?iso-8859-1?Q?=DCbermittlung fehlgeschlagen?=") == (
        "zum Übermittlung fehlgeschlagen"
    )


# --- UTF-7 and the 7-bit encodings the standard maps to "replacement" -------------------------


def test_honest_utf7_is_decoded():
    """Old Exchange delivery reports: every base64 run is a non-ASCII character."""
    assert decode_bytes(b"+ANw-bermittlung an Empf+AOQ-nger +- 1", "unicode-1-1-utf-7") == (
        "Übermittlung an Empfänger + 1",
        [],
    )


@pytest.mark.parametrize(
    ("data", "hides"),
    [
        (b"+ADw-ceo+AEA-victim.example+AD4-", "<@>"),
        (b"Name: +ACI-CEO+ACI- +ZeVnLIqe-", '"'),
        (b"=+ADw-script+AD4-", "<>"),
    ],
)
def test_utf7_hiding_ascii_stays_as_written(data: bytes, hides: str):
    text, defects = decode_bytes(data, "utf-7")
    assert text == data.decode("ascii")
    assert not set(hides) & set(text)
    assert defects == ["utf-7 hiding ASCII characters: left as written"]


def test_a_utf7_display_name_cannot_smuggle_an_address():
    word = "=?utf-7?Q?+ADw-ceo+AEA-victim.example+AD4-?="
    mail = parse(f"From: {word} <eve@evil.example>\r\nSubject: s\r\n\r\nx\r\n".encode())
    assert mail.from_addr == "eve@evil.example"
    assert "@" not in mail.from_name and "<" not in mail.from_name


@pytest.mark.parametrize("label", sorted(WHATWG_LABELS["replacement"]))
def test_the_standards_replacement_encodings_are_never_decoded(label: str):
    data = b"~{<:Ky2;S{#,NpJ)GE#,~} \x1b$)C\x0e!!\x0f"
    text, defects = decode_bytes(data, label)
    assert text == data.decode("ascii")
    assert defects[0] == f"charset {label} not decoded (WHATWG: replacement)"


# --- every label of the WHATWG Encoding Standard -----------------------------------------------


def test_the_label_table_is_the_whole_standard():
    """encodings.json as of the standard's current text: 40 encodings, 228 labels."""
    assert len(WHATWG_LABELS) == 40
    assert sum(len(labels) for labels in WHATWG_LABELS.values()) == 228
    assert set(CODECS) == set(WHATWG_LABELS)
    assert WHATWG_LABELS["KOI8-R"] == ("cskoi8r", "koi", "koi8", "koi8-r", "koi8_r")
    assert WHATWG_LABELS["x-mac-cyrillic"] == ("x-mac-cyrillic", "x-mac-ukrainian")
    assert "utf-7" not in {label for labels in WHATWG_LABELS.values() for label in labels}


@pytest.mark.parametrize(
    ("name", "label"),
    [(name, label) for name, labels in WHATWG_LABELS.items() for label in labels],
)
def test_every_label_of_the_standard_reads_as_its_encoding(name: str, label: str):
    codec = CODECS[name]
    if codec is None:
        assert codec_for(label) is None
        return
    assert codecs.lookup(codec_for(label)).name == codecs.lookup(codec).name
    assert label not in REFUSED


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        ("x-cp1251", "cp1251"),
        ("koi8", "koi8_r"),
        ("koi8_r", "koi8_r"),
        ("csKOI8R", "koi8_r"),
        ("KOI", "koi8_r"),
        ("x-mac-cyrillic", "mac_cyrillic"),
        ("x-mac-ukrainian", "mac_cyrillic"),
        ("cp866", "cp866"),
        ("x-cp1250", "cp1250"),
        ("sun_eu_greek", "iso8859_7"),
    ],
)
def test_aliases_python_does_not_know_decode_as_the_standard_says(label: str, codec: str):
    text = {"cp1250": "Přihláška – žádost", "iso8859_7": "Αίτηση υποβολής"}.get(
        codec, "Приложение: заявка"
    )
    assert decode_bytes(text.encode(codec), f" {label} ") == (text, [])


# --- JIS X 0213 ---------------------------------------------------------------------------------

ONLY_0213 = "𠀋俱𩸽"  # in JIS X 0213, in neither JIS X 0208 nor CP932's extensions


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        ("shift_jisx0213", "shift_jis_2004"),
        ("Shift_JIS-2004", "shift_jis_2004"),
        ("euc-jisx0213", "euc_jis_2004"),
        ("iso-2022-jp-3", "iso2022_jp_2004"),
        ("iso-2022-jp-2004", "iso2022_jp_2004"),
        ("shift_jis", "shift_jis_2004"),
        ("euc-jp", "euc_jis_2004"),
    ],
)
def test_characters_only_jis_x_0213_has_are_read(label: str, codec: str):
    text, _ = decode_bytes(f"申込者 {ONLY_0213} です".encode(codec), label)
    assert text == f"申込者 {ONLY_0213} です"


def test_shift_jisx0213_plane_2_is_not_read_as_cp932():
    """0xFA40 is ⅰ in CP932 and a plane-2 kanji in Shift_JISX0213: the label decides."""
    data = "𠂉".encode("shift_jis_2004")
    assert data[:1] >= b"\xf0"
    assert decode_bytes(data, "shift_jisx0213") == ("𠂉", [])


# --- charsets that are no charset --------------------------------------------------------------


@pytest.mark.parametrize(
    "label",
    ["unicode_escape", "raw-unicode-escape", "undefined", "idna", "base64", "rot13", "hz", "utf_7"],
)
def test_a_python_codec_that_is_no_mail_charset_decodes_nothing(label: str):
    """charset=unicode_escape turned the text `\\u003cceo\\u0040…` into `<ceo@…>`; base64,
    rot13 or undefined made the whole mail unparseable."""
    body = r"\u003cceo\u0040victim.example\u003e +ADw- ~{<:Ky2~} 日本".encode()
    raw = HEAD + f"Content-Type: text/plain; charset={label}\r\n\r\n".encode() + body + b"\r\n"
    mail = parse(raw)
    assert mail.text.strip() == body.decode("utf-8")
    assert not [d for d in mail.defects if d.startswith("unparseable")]


def test_a_charset_label_with_a_nul_does_not_make_the_mail_unparseable():
    raw = HEAD + b'Content-Type: text/plain; charset="utf\x00-8"\r\n\r\nhello\r\n'
    mail = parse(raw)
    assert mail.text.strip() == "hello" and mail.subject == "s"


# --- addresses are read from the field as written, encoded-words are display names only -----

VICTIM = "ichiro@takahashi-denryoku.co.jp"
ATTACKER = "eve@evil.example"
Q_VICTIM = VICTIM.replace("@", "=40")


@pytest.mark.parametrize(
    "value",
    [
        f"=?utf-8?q?x=0D=0AFrom:_{VICTIM}?= <{ATTACKER}>",
        f"=?utf-8?q?=0Dg:_{VICTIM};?= <{ATTACKER}>",
        f"=?utf-8?b?DUZyb206IA==?= =?utf-8?q?{VICTIM}?= <{ATTACKER}>",
        f"=?utf-8?q?a?= =?utf-8?q?<{VICTIM}>?= <{ATTACKER}>",
        f"=?utf-8?q?{Q_VICTIM},?= <{ATTACKER}>",
        b_word(f'x" <{VICTIM}>, "') + f" <{ATTACKER}>",
        f"日本 =?utf-8?q?=3C{Q_VICTIM}=3E?= <{ATTACKER}>",
        f"=?utf-8?q?{Q_VICTIM},?= 日本 <{ATTACKER}>",
        f"日本 =?utf-8?q?=0Dg:_{VICTIM};?= <{ATTACKER}>",
    ],
)
def test_an_address_inside_an_encoded_word_is_never_the_sender(value: str):
    """The From address is the one our MTA's DMARC check judged: the address of the field as
    written. Text an encoded-word decodes to is a display name, whatever it holds (a CR, a
    colon, angle brackets), also when the field is raw 8-bit."""
    raw = f"From: {value}\r\nTo: code@occto.or.jp\r\nSubject: s\r\n\r\nbody\r\n".encode()
    mail = parse(raw)
    assert mail.from_addr == ATTACKER, (mail.from_addr, mail.from_name)
    assert not any(ch < " " or ch == "\x7f" for ch in mail.from_name), repr(mail.from_name)


def test_an_encoded_word_with_a_raw_comma_is_still_one_display_name():
    raw = (
        b"From: =?iso-8859-1?q?B=fcrling,=20Andreas?= <andreas@example.de>\r\n"
        b"To: code@occto.or.jp\r\nSubject: s\r\n\r\nbody\r\n"
    )
    mail = parse(raw)
    assert (mail.from_addr, mail.from_name) == ("andreas@example.de", "Bürling, Andreas")


# --- a long header costs linear time -------------------------------------------------------


def folded_words(size: int, unit: str = "=?utf-8?q?x ") -> str:
    """`size` bytes of an encoded-word opening that never closes, folded as an MTA passes it
    (every line under 100 bytes)."""
    words = [unit] * (size // len(unit))
    return "\r\n ".join(" ".join(words[i : i + 6]) for i in range(0, len(words), 6))


@pytest.mark.parametrize("field", ["Subject", "From", "To", "Reply-To"])
def test_a_megabyte_header_parses_in_linear_time(field: str):
    """Before, a folded Subject of repeated `=?utf-8?q?x ` took 37 s at 192 KB and 1 MB never
    finished. The bound is a hang guard only; the field is cut at 16 KB with a defect."""
    other = "Subject: s" if field != "Subject" else "From: a@b.example"
    raw = f"{field}: {folded_words(1024 * 1024)}\r\n{other}\r\n\r\nbody\r\n".encode()
    started = time.perf_counter()
    mail = parse(raw)
    assert time.perf_counter() - started < 5
    assert f"{field} field over 16 KB: read only its start" in mail.defects


def test_a_long_subject_keeps_its_start():
    subject = "件名" + "あ" * 20000
    words = "\r\n ".join(b_word(subject[i : i + 10]) for i in range(0, len(subject), 10))
    raw = f"From: a@b.example\r\nSubject: {words}\r\n\r\nbody\r\n".encode()
    assert parse(raw).subject.startswith("件名あああ")


def test_a_loose_encoded_word_is_found_in_linear_time():
    started = time.perf_counter()
    decode_header_value("=?a?q?" * 50000)
    assert time.perf_counter() - started < 5


# --- raw 8-bit text beside an encoded-word -----------------------------------------------------


def test_a_raw_8bit_display_name_beside_an_encoded_word_reads_as_text():
    """Before, the raw part came out as the literal `\\udce9\\udcab…` and replies greeted it."""
    raw = (
        "From: 高橋 =?utf-8?q?=E4=B8=80=E9=83=8E?= <ichiro@takahashi-denryoku.co.jp>\r\n"
        "Subject: 申込 =?utf-8?b?" + base64.b64encode("について".encode()).decode() + "?=\r\n"
        "\r\nb\r\n"
    ).encode()
    mail = parse(raw)
    assert (mail.from_name, mail.from_addr) == ("高橋 一郎", "ichiro@takahashi-denryoku.co.jp")
    assert mail.subject == "申込 について"


# --- raw 8-bit bytes where only ASCII belongs (found by the hostile corpus's mutations) -------


@pytest.mark.parametrize(
    "from_field",
    [
        "infé@shinki-sannyu.example.jp".encode("latin-1"),
        "jiro@kitaêdr.example.jp".encode("latin-1"),
        "山田 <担当@example.co.jp>".encode(),
    ],
)
def test_a_sender_address_with_8_bit_bytes_names_no_sender(from_field: bytes):
    """No reply can carry such an address (mailbot does not send SMTPUTF8): the mail is held
    for staff with the reason, instead of failing when its receipt is composed."""
    raw = b"From: " + from_field + b"\r\nTo: code@occto.or.jp\r\nSubject: s\r\n\r\nbody\r\n"
    mail = parse(raw)
    assert mail.from_addr == ""
    assert "英数字" in mail.sender_problem


def test_a_message_id_with_8_bit_bytes_is_no_id_and_the_mail_parses():
    raw = (
        b"From: taro@example.co.jp\r\nTo: code@occto.or.jp\r\nSubject: s\r\n"
        b"Message-ID: <a\xe9b@example.co.jp>\r\nIn-Reply-To: <ok@example.co.jp> <x\xfa@y>\r\n"
        b"References: <r\xe9@y> <ok@example.co.jp>\r\n\r\nbody\r\n"
    )
    mail = parse(raw)
    assert not any(d.startswith("unparseable") for d in mail.defects), mail.defects
    assert mail.message_id is None
    assert mail.in_reply_to == "<ok@example.co.jp>"
    assert mail.references == ("<ok@example.co.jp>",)
