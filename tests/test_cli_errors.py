"""`seq2seq` given bad flags, damaged files and odd input, as a careless or hostile user gives them.

Each expected failure is one ``error: ...`` line and a non-zero exit (a traceback only with
``--debug``); an existing output file is never damaged; every input line keeps its output line.
Most cases call `seq2seq.cli.main` in this process, where such an error is the ``SystemExit``
that Python prints as that one line; a subprocess checks what a shell sees, and memory.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import seq2seq.search as search_module
from seq2seq.cli import MAX_BEAM, main
from seq2seq.config import MAX_LENGTH_PENALTY, DecodeConfig, ModelConfig, SubwordConfig
from seq2seq.model import Seq2Seq
from seq2seq.search import MAX_DECODE_ROWS, decode_corpus
from seq2seq.tokenizer import Tokenizer
from seq2seq.translate import MAX_INPUT_TOKENS, Translator

TOO_MANY_TOKENS = "🚲 " * 300  # within the character limit, over the subword limit (bytes)


@pytest.fixture
def run_copy(trained_run: Path, tmp_path: Path) -> Path:
    """A copy of the trained run that a test may damage (without its resumable state)."""
    return Path(
        shutil.copytree(trained_run, tmp_path / "run", ignore=shutil.ignore_patterns("last.pt"))
    )


@pytest.fixture
def one_line(tmp_path: Path) -> Path:
    """An input file of one sentence, so that a command gets as far as decoding."""
    path = tmp_path / "one.de"
    path.write_text("Ein Hund läuft.\n", encoding="utf-8")
    return path


def translate(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *args: str,
    stdin: bytes = b"",
) -> tuple[str, str]:
    """Run `seq2seq translate ARGS` in this process with ``stdin`` as its standard input.

    Returns (stdout, stderr).
    """
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    capsys.readouterr()
    main(["translate", *args])
    return capsys.readouterr()


def refused(argv: list[str]) -> str:
    """The one-line message `main(argv)` exits with; fails if it exits otherwise."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    message = exit_info.value.code
    assert isinstance(message, str), f"exit code {message!r}, not an error message"
    assert message.startswith("error: ") and "\n" not in message, message
    return message


# --- translate --output: checked first, written atomically ----------------------------------


@pytest.mark.parametrize(
    "flags",
    [
        ["--beam", "0"],
        ["--beam", "2", "--nbest", "3"],
        ["--batch-size", "0"],
        ["--length-penalty", "-1"],
    ],
    ids=["beam-0", "nbest-over-beam", "batch-0", "negative-penalty"],
)
def test_bad_flags_leave_the_output_file_untouched(trained_run, tmp_path, flags):
    # The reproduction: input and output the same file, and a flag that is refused.
    path = tmp_path / "f.txt"
    path.write_text("Ein Hund.\nEine Katze.\n", encoding="utf-8")
    argv = ["translate", "--checkpoint", str(trained_run), "--input", str(path)]
    refused([*argv, "--output", str(path), *flags])
    assert path.read_text(encoding="utf-8") == "Ein Hund.\nEine Katze.\n"


def test_a_failure_while_translating_leaves_the_output_file_untouched(
    trained_run, tmp_path, monkeypatch
):
    source, output = tmp_path / "in.de", tmp_path / "out.en"
    source.write_text("Ein Hund.\nEine Katze.\n", encoding="utf-8")
    output.write_text("yesterday's translations\n", encoding="utf-8")

    def failing_search(*args, **kwargs):
        raise RuntimeError("decoding failed")  # as an out-of-memory error would, mid-run

    monkeypatch.setattr(search_module, "search", failing_search)
    argv = ["translate", "--checkpoint", str(trained_run), "--input", str(source)]
    with pytest.raises(RuntimeError, match="decoding failed"):
        main([*argv, "--output", str(output)])
    assert output.read_text(encoding="utf-8") == "yesterday's translations\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.de", "out.en"]  # no temp file


def test_output_may_be_the_input_file(trained_run, tmp_path):
    source, same = tmp_path / "in.de", tmp_path / "same.txt"
    source.write_text("Ein Hund.\n\nEine Katze.\n", encoding="utf-8")
    shutil.copy(source, same)
    argv = ["translate", "--checkpoint", str(trained_run), "--beam", "2"]
    main([*argv, "--input", str(source), "--output", str(tmp_path / "other.txt")])
    main([*argv, "--input", str(same), "--output", str(same)])
    assert same.read_text(encoding="utf-8") == (tmp_path / "other.txt").read_text(encoding="utf-8")
    lines = same.read_text(encoding="utf-8").split("\n")
    assert len(lines) == 4 and lines[0] and lines[1] == "" and lines[2] and lines[3] == ""


def test_output_in_a_missing_folder_is_refused_before_translating(tmp_path):
    message = refused(
        ["translate", "--checkpoint", str(tmp_path), "--output", str(tmp_path / "no" / "out")]
    )
    assert f"{tmp_path / 'no'} does not exist" in message


# --- stdin and --input: one reader --------------------------------------------------------------


def test_stdin_splits_on_newlines_only_like_an_input_file(
    trained_run, tmp_path, monkeypatch, capsys
):
    # Each of these split a line in two when stdin was read with str.splitlines().
    text = "Ein\x0cHund.\nEine\x1cKatze.\nZwei\u2028Männer.\nEin\x85Kind.\r\n"
    path = tmp_path / "in.de"
    path.write_bytes(text.encode())
    flags = ["--checkpoint", str(trained_run), "--beam", "1"]
    from_stdin, _ = translate(monkeypatch, capsys, *flags, stdin=text.encode())
    from_file, _ = translate(monkeypatch, capsys, *flags, "--input", str(path))
    assert len(from_stdin.split("\n")) == 5 and from_stdin.endswith("\n")  # 4 lines
    assert all(from_stdin.split("\n")[:4])
    assert from_stdin == from_file


def test_undecodable_bytes_warn_and_keep_the_line_on_both_paths(
    trained_run, tmp_path, monkeypatch, capsys
):
    data = b"Ein Hund.\nEine Katze \xff\xfe.\nEin Mann.\n"
    path = tmp_path / "in.de"
    path.write_bytes(data)
    flags = ["--checkpoint", str(trained_run), "--beam", "1"]
    runs = [
        translate(monkeypatch, capsys, *flags, stdin=data),
        translate(monkeypatch, capsys, *flags, "--input", str(path)),
    ]
    for out, err in runs:
        lines = out.split("\n")[:-1]
        assert len(lines) == 3 and lines[0] and lines[1] == "" and lines[2]
        assert (
            err.strip()
            == "warning: line 2 not translated: not valid UTF-8 (byte 0xff at offset 11)"
        )
    assert runs[0] == runs[1]


# --- --nbest K > 1 and the numbering of warnings ---------------------------------------------


def test_nbest_gives_k_lines_for_every_input_line(trained_run, monkeypatch, capsys):
    source = f"Ein Mann.\n\n{TOO_MANY_TOKENS}\nEine Frau.\n".encode()
    flags = ["--checkpoint", str(trained_run), "--beam", "3", "--nbest", "2"]
    out, err = translate(monkeypatch, capsys, *flags, stdin=source)
    rows = [line.split("\t") for line in out.split("\n")[:-1]]
    assert [r[0] for r in rows] == ["0", "0", "1", "1", "2", "2", "3", "3"]
    for index, score, text in rows:
        if index in ("1", "2"):  # blank, refused: a slot without a hypothesis
            assert (score, text) == ("-inf", "")
        else:
            assert math.isfinite(float(score)) and float(score) <= 0 and text
    assert "line 3 not translated" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["translate", "--help"])
    assert exit_info.value.code == 0
    assert "INDEX<TAB>-inf<TAB>" in capsys.readouterr().out  # the format is documented


def test_warnings_number_lines_from_one_and_only_so(trained_run, monkeypatch, capsys):
    source = f"Ein Mann.\n\n{TOO_MANY_TOKENS}\n{'x' * 2001}\nEine Frau.\n".encode()
    _, err = translate(monkeypatch, capsys, "--checkpoint", str(trained_run), stdin=source)
    warnings = err.strip().split("\n")
    assert len(warnings) == 2
    for warning, line in zip(warnings, ("3", "4"), strict=True):
        # "line 3 not translated: sentence 2 has ..." mixed two numberings of one line
        assert re.findall(r"(?:line|sentence) (\d+)", warning) == [line], warning
    assert f"the limit is {MAX_INPUT_TOKENS}" in warnings[0]


# --- beam size and memory --------------------------------------------------------------------


def test_beam_above_the_cap_is_refused_before_anything_is_loaded(tmp_path):
    missing = str(tmp_path / "no-such-run")
    message = refused(["translate", "--checkpoint", missing, "--beam", "1000"])
    assert f"--beam must be from 1 (greedy) to {MAX_BEAM}, got 1000" in message
    message = refused(["evaluate", "--checkpoint", missing, "--beam", str(MAX_BEAM + 1)])
    assert "--beam" in message


@pytest.fixture
def wide_model() -> Seq2Seq:
    """An untrained model, tiny but for its vocabulary: the (rows, V) log-probs dominate."""
    torch.manual_seed(0)
    cfg = ModelConfig(
        embed_size=8, hidden_size=8, dropout=0.0, src_vocab_size=2000, tgt_vocab_size=2000
    )
    return Seq2Seq(cfg).eval()


def test_a_large_beam_decodes_fewer_sentences_at_a_time(wide_model, monkeypatch):
    calls: list[tuple[int, int]] = []
    real_search = search_module.search

    def recording_search(model, src_ids, src_lengths, cfg):
        calls.append((src_ids.size(0), cfg.beam_size))
        return real_search(model, src_ids, src_lengths, cfg)

    monkeypatch.setattr(search_module, "search", recording_search)
    sources = [[4 + (7 * i + j) % 1990 for j in range(1 + i % 3)] for i in range(150)]
    cfg = DecodeConfig(beam_size=MAX_BEAM, nbest=2, max_length_ratio=1.0, max_length_offset=1)
    hyps = decode_corpus(wide_model, sources, cfg, "cpu", batch_size=64)
    assert all(sentences * beam <= MAX_DECODE_ROWS for sentences, beam in calls), calls
    assert sum(sentences for sentences, _ in calls) == len(sources)
    # every sentence got its own hypotheses back, in input order
    for ids, sentence_hyps in zip(sources, hyps, strict=True):
        assert len(sentence_hyps) == 2
        assert all(h.attention.shape == (len(h.token_ids), len(ids)) for h in sentence_hyps)
    calls.clear()
    decode_corpus(wide_model, sources[:10], DecodeConfig(beam_size=5), "cpu", batch_size=64)
    assert calls == [(10, 5)]  # a usual beam keeps the batch size asked for


MEMORY_CHILD = textwrap.dedent(
    """
    import resource, torch
    from seq2seq.config import DecodeConfig, ModelConfig
    from seq2seq.model import Seq2Seq
    from seq2seq.search import decode_corpus

    torch.set_num_threads(1)
    torch.manual_seed(0)
    V = {vocab}
    model = Seq2Seq(ModelConfig(embed_size=8, hidden_size=8, dropout=0.0,
                                src_vocab_size=V, tgt_vocab_size=V)).eval()
    sources = [[4 + (7 * i + j) % (V - 4) for j in range(3)] for i in range(70)]
    cfg = DecodeConfig(beam_size={beam}, max_length_ratio=1.0, max_length_offset=0)
    decode_corpus(model, sources[:1], DecodeConfig(beam_size=2), "cpu")  # warm up the allocator
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    decode_corpus(model, sources, cfg, "cpu", batch_size=64)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)  # KiB on Linux
    """
)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux only")
def test_a_large_beam_on_many_lines_stays_under_a_memory_ceiling():
    vocab, beam = 16000, MAX_BEAM
    code = MEMORY_CHILD.format(vocab=vocab, beam=beam)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert child.returncode == 0, child.stderr
    growth = int(child.stdout.strip()) * 1024
    # A step holds a few float32 (rows, V) tensors: log-probs, their masked copy, the scores of
    # all extensions. 64 sentences x 64 beams at once (4096 rows) grew the process by 600-800
    # MiB; the row budget allows a quarter of the rows.
    ceiling = 5 * MAX_DECODE_ROWS * vocab * 4
    assert growth < ceiling, f"peak memory grew by {growth / 2**20:.0f} MiB"


# --- one line instead of a traceback -------------------------------------------------------


@pytest.mark.parametrize("damage", ["random", "truncated"])
def test_damaged_sentencepiece_model_is_one_line(run_copy, damage):
    path = run_copy / "spm.model"
    proto = path.read_bytes()
    path.write_bytes(os.urandom(len(proto)) if damage == "random" else proto[: len(proto) // 2])
    message = refused(["translate", "--checkpoint", str(run_copy)])
    assert f"{path} is not a valid SentencePiece model" in message


def test_sentencepiece_model_of_another_run_is_refused(run_copy):
    # Loads fine, but its ids mean other pieces: translations would be silently wrong.
    other = Tokenizer.train(
        ["ein hund läuft"] * 30, ["a dog runs"] * 30, SubwordConfig(vocab_size=300)
    )
    other.save(run_copy)
    message = refused(["translate", "--checkpoint", str(run_copy)])
    assert "do not belong together" in message and "1000" in message


@pytest.mark.parametrize("value", ["1000", "nan", "inf", "-inf", "2.5"])
def test_length_penalty_out_of_range_is_one_line(trained_run, one_line, value):
    # 1000 raised OverflowError; nan and inf gave nan scores and another translation.
    argv = ["translate", "--checkpoint", str(trained_run), "--input", str(one_line)]
    message = refused([*argv, f"--length-penalty={value}"])
    assert "--length-penalty" in message and value in message
    assert "finite" in message or f"[0, {MAX_LENGTH_PENALTY:g}]" in message


def test_translator_refuses_a_nan_length_penalty(trained_run):
    # The check lives in DecodeConfig, so the API and the demo refuse it as the CLI does.
    translator = Translator.from_run(trained_run, device="cpu")
    with pytest.raises(ValueError, match="length_penalty must be a finite number"):
        translator.translate(["Ein Hund."], length_penalty=float("nan"))


def test_malformed_yaml_is_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  lr: [0.001\n  name: x\n")
    message = refused(["train", "--config", str(path)])
    assert f"{path} is not valid YAML" in message and "line" in message


@pytest.mark.parametrize("device", ["tpu", "meta", "cuda:0", "cuda:x", "cuda:99"])
def test_unknown_or_missing_device_is_one_line(trained_run, one_line, device):
    if device == "cuda:0" and torch.cuda.is_available():
        pytest.skip("cuda:0 exists here")
    argv = ["translate", "--checkpoint", str(trained_run), "--input", str(one_line)]
    message = refused([*argv, "--device", device])
    assert repr(device) in message
    assert "auto, cpu, cuda or cuda:N" in message or "CUDA device" in message


def dead_url() -> str:
    """A URL on this machine where nothing listens: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.mark.parametrize("mirror", ["corrupted", "missing", "dead-url"])
def test_prepare_download_failures_are_one_line(tmp_path, mirror):
    folder = tmp_path / "mirror"
    if mirror == "corrupted":
        folder.mkdir()
        for lang in ("de", "en"):
            (folder / f"val.{lang}.gz").write_bytes(gzip.compress(b"Kein Multi30k.\n"))
    location = {"corrupted": str(folder), "missing": str(folder), "dead-url": dead_url()}[mirror]
    data_dir = tmp_path / "data"
    message = refused(
        ["prepare", "--data.mirror", location, "--data.data_dir", str(data_dir), "--splits", "val"]
    )
    expected = {
        "corrupted": "checksum mismatch for val.de.gz",
        "missing": f"mirror folder {folder} not found",
        "dead-url": f"could not download {location}val.de.gz",
    }[mirror]
    assert expected in message
    assert not list((data_dir / "multi30k").glob("val.*"))  # nothing half-fetched left behind


def test_empty_run_name_is_refused_before_anything_is_written(tmp_path):
    out_dir = tmp_path / "runs"
    message = refused(
        [
            "train",
            "--train.name",
            "",
            "--train.out_dir",
            str(out_dir),
            "--data.mirror",
            str(tmp_path / "no-mirror"),
        ]
    )
    assert "train.name must not be empty" in message
    assert not out_dir.exists()


def test_debug_shows_the_traceback(trained_run):
    argv = ["translate", "--checkpoint", str(trained_run), "--device", "tpu"]
    refused(argv)
    with pytest.raises(ValueError, match="'tpu'"):
        main([*argv, "--debug"])


def test_a_shell_sees_one_error_line_and_exit_status_1(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: {cell: gru\n")
    process = subprocess.run(
        [sys.executable, "-m", "seq2seq", "train", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 1
    assert "Traceback" not in process.stderr
    assert process.stderr.count("\n") == 1 and process.stderr.startswith("error: ")
