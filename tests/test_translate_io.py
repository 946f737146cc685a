"""The translate command's lines in and out: a line per input line, warnings numbered from 1,
the n-best format, and the output file replaced whole."""

from __future__ import annotations

from seq2seq.config import DecodeConfig
from seq2seq.translate import Translation
from seq2seq.translate_io import format_translations, translate_lines, write_translations


class ScriptedTranslator:
    """Upper-cases each line; refuses the line "too long" as a Translator with skip_invalid."""

    def __init__(self) -> None:
        self.calls: list[dict[str, object]] = []

    def translate(self, lines, **settings):
        self.calls.append({"lines": lines, **settings})
        refused = "the sentence has 2400 characters; the limit is 2000"
        return [
            Translation("", [], [], [], None, error=refused)
            if line == "too long"
            else Translation(line.upper(), [(line.upper(), -0.5)] if line else [], [], [], None)
            for line in lines
        ]


def test_translate_lines_keeps_every_line_and_warns_by_line_number(tmp_path):
    source = tmp_path / "in.txt"
    source.write_bytes(b"ein\n\xff\ntoo long\n\nzwei\n")
    fake = ScriptedTranslator()
    decode = DecodeConfig(beam_size=3)
    done = translate_lines(fake, source, decode, batch_size=7)  # type: ignore[arg-type]
    assert fake.calls == [
        {
            "lines": ["ein", "", "too long", "", "zwei"],
            "decode": decode,
            "batch_size": 7,
            "skip_invalid": True,
        }
    ]
    assert [r.text for r in done.results] == ["EIN", "", "", "", "ZWEI"]
    assert done.warnings == [
        "line 2 not translated: not valid UTF-8 (byte 0xff at offset 0)",
        "line 3 not translated: the sentence has 2400 characters; the limit is 2000",
    ]
    assert format_translations(done.results, 1) == "EIN\n\n\n\nZWEI\n"
    assert format_translations(done.results[:2], 2) == (
        "0\t-0.5000\tEIN\n0\t-inf\t\n1\t-inf\t\n1\t-inf\t\n"
    )


def test_write_translations_replaces_a_file_or_writes_stdout(tmp_path, capsys):
    out = tmp_path / "out.txt"
    out.write_text("old\n", encoding="utf-8")
    write_translations("new\n", out)
    assert out.read_text(encoding="utf-8") == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no temporary file left
    write_translations("to stdout\n", None)
    assert capsys.readouterr().out == "to stdout\n"
