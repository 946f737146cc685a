"""Tests for seq2seq.corpus: readers of parallel text, counted cleaning, and prepare."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
from pathlib import Path

import pytest

from seq2seq.config import CleanConfig, DataConfig
from seq2seq.corpus import (
    CleanStats,
    clean_pairs,
    counts_path,
    normalize,
    normalize_pairs,
    prepare_corpus,
    read_lines,
    read_pairs,
    read_parallel_files,
    read_text_lines,
    read_tsv,
    to_tsv,
)


def write_gzip(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode("utf-8")))
    return path


# --- Readers ------------------------------------------------------------------------------------


def test_read_lines_plain_and_gzip(tmp_path):
    raw = "\ufeffa b  \r\nc\rd\n\n\u00e9\n".encode()
    expected = ["a b  ", "c\rd", "", "\u00e9"]  # only the line ending (and the BOM) goes
    (tmp_path / "plain.txt").write_bytes(raw)
    (tmp_path / "packed.txt").write_bytes(gzip.compress(raw))  # detected by content, not name
    assert read_lines(tmp_path / "plain.txt") == expected
    assert read_lines(tmp_path / "packed.txt") == expected


def test_read_lines_real_multi30k(multi30k_dir):
    lines = read_lines(multi30k_dir / "val.en.gz")
    assert len(lines) == 1014
    assert all(line and "\n" not in line for line in lines)


def test_undecodable_bytes_name_the_file_and_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("ok\nfine\ncaf\u00e9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt, line 3: not valid UTF-8"):
        read_lines(path)


# Characters that str.splitlines() (and text-mode stdin split with it) takes for line breaks.
NOT_NEWLINES = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\r"


def read_through_pipe(data: bytes) -> tuple[list[str], list[str]]:
    """`read_text_lines` on a real, unseekable pipe, as stdin is when a program pipes into it."""
    read_fd, write_fd = os.pipe()
    os.write(write_fd, data)  # small enough for the pipe's buffer
    os.close(write_fd)
    with open(read_fd, "rb") as pipe:
        return read_text_lines(pipe)


def test_text_lines_split_on_newline_only_the_same_from_file_stream_and_pipe(tmp_path):
    text = "".join(f"vor{ch}nach {i}\n" for i, ch in enumerate(NOT_NEWLINES)) + "last\r\n"
    data = ("\ufeff" + text).encode()
    expected = [f"vor{ch}nach {i}" for i, ch in enumerate(NOT_NEWLINES)] + ["last"]
    (tmp_path / "in.txt").write_bytes(data)
    (tmp_path / "in.gz").write_bytes(gzip.compress(data))
    for source in (tmp_path / "in.txt", str(tmp_path / "in.gz"), io.BytesIO(data)):
        assert read_text_lines(source) == (expected, [""] * len(expected))
    assert read_through_pipe(data) == (expected, [""] * len(expected))
    assert read_through_pipe(gzip.compress(data)) == (expected, [""] * len(expected))
    assert read_lines(tmp_path / "in.txt") == expected  # the corpus reader splits the same way


def test_undecodable_line_is_kept_empty_with_its_reason(tmp_path):
    data = b"Ein Hund.\nEine Katze \xff\xfe.\n\xe9t\xe9\r\nEin Mann.\n"
    path = tmp_path / "latin1.txt"
    path.write_bytes(data)
    expected_lines = ["Ein Hund.", "", "", "Ein Mann."]
    expected_errors = [
        "",
        "not valid UTF-8 (byte 0xff at offset 11)",  # after "Eine Katze "
        "not valid UTF-8 (byte 0xe9 at offset 0)",
        "",
    ]
    assert read_text_lines(path) == (expected_lines, expected_errors)
    assert read_through_pipe(data) == (expected_lines, expected_errors)
    with pytest.raises(ValueError, match=r"latin1\.txt, line 2: not valid UTF-8"):
        read_lines(path)  # corpora stay strict: a training pair must not silently vanish


def test_damaged_gzip_is_a_value_error(tmp_path):
    path = tmp_path / "cut.gz"
    text = "".join(f"sentence {i}\n" for i in range(2000))
    path.write_bytes(gzip.compress(text.encode())[:-20])  # a download cut short
    with pytest.raises(ValueError, match=r"cut\.gz: damaged gzip"):
        read_lines(path)


def test_missing_file_is_named(tmp_path):
    (tmp_path / "src.txt").write_text("a\n")
    with pytest.raises(FileNotFoundError, match=r"tgt\.txt"):
        read_parallel_files(tmp_path / "src.txt", tmp_path / "tgt.txt")


def test_sides_of_different_length_name_both_files_and_counts(tmp_path):
    (tmp_path / "src.de").write_text("a\nb\nc\n")
    (tmp_path / "tgt.en").write_text("x\ny\n")
    with pytest.raises(ValueError, match=r"src\.de has 3 lines, .*tgt\.en has 2"):
        read_parallel_files(tmp_path / "src.de", tmp_path / "tgt.en")


def test_tsv_ignores_extra_columns_and_blank_lines(tmp_path):
    path = tmp_path / "fra.tsv"
    path.write_text("Go.\tVa !\tCC-BY 2.0 (France) #2877272\n\nHi.\tSalut !\n")
    assert read_tsv(path) == [("Go.", "Va !"), ("Hi.", "Salut !")]
    path.write_text("Go.\tVa !\nno tab here\n")
    with pytest.raises(ValueError, match=r"fra\.tsv, line 2: .*no tab"):
        read_tsv(path)


def test_tsv_text_reads_back_as_its_pairs(tmp_path):
    pairs = [("Ein Hund.", "A dog."), ("", "only a target"), ("Zwei  Leerzeichen", "é ü ß")]
    path = tmp_path / "pairs.tsv"
    path.write_text(to_tsv(pairs), encoding="utf-8")
    assert read_tsv(path) == pairs
    for bad in [("a\tb", "c"), ("a", "b\nc"), ("a\r", "b"), (" ", "")]:
        with pytest.raises(ValueError, match="pair 2 cannot be a TSV line"):
            to_tsv([("ok", "ok"), bad])


def test_read_pairs_dispatches_on_the_spec(tmp_path):
    (tmp_path / "a.de").write_text("Hallo\nDanke\n")
    (tmp_path / "a.en").write_text("Hello\nThanks\n")
    write_gzip(tmp_path / "a,b.tsv.gz", "Hallo\tHello\n")
    expected = [("Hallo", "Hello"), ("Danke", "Thanks")]
    assert read_pairs(f"{tmp_path / 'a.de'}, {tmp_path / 'a.en'}") == expected
    assert read_pairs(str(tmp_path / "a,b.tsv.gz")) == expected[:1]
    with pytest.raises(ValueError, match="SRC_PATH,TGT_PATH"):
        read_pairs(f"{tmp_path / 'a.de'},{tmp_path / 'a.en'},x")


# --- Cleaning -----------------------------------------------------------------------------------


def test_clean_pairs_counts_each_reason_and_keeps_order():
    cfg = CleanConfig(max_words=5, min_words=2, max_ratio=2.0)
    pairs = [
        ("a b", "x y"),  # kept
        ("", "x y"),  # empty
        ("a b", " \t "),  # empty once normalised
        ("a b c d e f", "u v w x y z"),  # too long: 6 > 5
        ("a b c d e", "v w x y z"),  # kept: exactly max_words
        ("a", "x"),  # too short: 1 < 2
        ("a b c", "x"),  # too short, though also over the ratio: the first reason counts
        ("a b", "v w x y z"),  # ratio 2.5 > 2
        ("a b", "w x y z"),  # kept: ratio exactly 2
        ("a \u00a0 b", "x\ty"),  # kept, normalised
    ]
    kept, stats = clean_pairs(pairs, cfg)
    assert kept == [
        ("a b", "x y"),
        ("a b c d e", "v w x y z"),
        ("a b", "w x y z"),
        ("a b", "x y"),
    ]
    assert stats == CleanStats(
        total=10, kept=4, dropped_empty=2, dropped_too_long=1, dropped_too_short=2, dropped_ratio=1
    )
    assert stats.to_dict()["dropped_too_short"] == 2
    assert stats.summary() == (
        "kept 4 of 10 pairs (40.0%); dropped 2 empty, 1 too long, 2 too short, "
        "1 over the length ratio"
    )


def test_normalize_composes_and_collapses_whitespace():
    assert normalize("caf" + "e\u0301") == "caf\u00e9"
    assert normalize("  a\u00a0\u00a0b\t c\n") == "a b c"


def test_normalize_pairs_never_drops():
    pairs = [("", "x"), ("e\u0301  e", "a" * 500)]
    assert normalize_pairs(pairs) == [("", "x"), ("\u00e9 e", "a" * 500)]


# --- prepare --------------------------------------------------------------------------------------


def test_prepare_saves_settings_and_counts_per_split_and_says_each(tmp_path):
    (tmp_path / "train.tsv").write_text(
        "ein Hund\ta dog\nein\t\nzwei große Hunde laufen\ttwo\ndrei Katzen\tthree cats\n",
        encoding="utf-8",
    )
    (tmp_path / "dev.src").write_text("eins\n \n", encoding="utf-8")
    (tmp_path / "dev.tgt").write_text("one\n \n", encoding="utf-8")
    data = DataConfig(
        corpus="files",
        data_dir=str(tmp_path / "out"),
        train=str(tmp_path / "train.tsv"),
        valid=f"{tmp_path / 'dev.src'},{tmp_path / 'dev.tgt'}",
    )
    clean = CleanConfig(max_ratio=2.0)
    said: list[str] = []
    saved = prepare_corpus(data, clean, ["train", "val"], say=said.append)

    assert saved == counts_path(data) == tmp_path / "out" / "files-de-en.clean.json"
    summary = json.loads(saved.read_text(encoding="utf-8"))
    assert summary["data"] == dataclasses.asdict(data)
    assert summary["clean"] == dataclasses.asdict(clean)
    train_stats = CleanStats(total=4, kept=2, dropped_empty=1, dropped_ratio=1)
    assert summary["train"] == train_stats.to_dict()
    assert summary["val"] == {"total": 2}  # validation keeps every line, blank ones too
    assert said == [f"train: {train_stats.summary()}", "val: 2 pairs (normalised, none dropped)"]
