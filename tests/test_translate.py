"""Translator and `seq2seq translate` on a short real training run."""

from __future__ import annotations

import dataclasses
import io
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import seq2seq.search as search_module
from seq2seq import checkpoint
from seq2seq.cli import main
from seq2seq.config import DecodeConfig, RunConfig
from seq2seq.rundir import RunInfo
from seq2seq.tokenizer import BOS_ID, EOS_ID, UNK_ID
from seq2seq.translate import MAX_INPUT_CHARS, MAX_INPUT_TOKENS, Translator


@pytest.fixture(scope="module")
def translator(trained_run):
    return Translator.from_run(trained_run, device="cpu")


def test_translates_in_order_with_empty_lines(translator):
    results = translator.translate(["Ein Mann.", "", "   ", "Zwei Hunde spielen im Schnee."])
    assert [bool(r.text) for r in results] == [True, False, False, True]
    assert results[0].text == translator.translate(["Ein Mann."])[0].text  # batch = alone


def test_nbest_is_sorted_and_attention_has_the_right_shape(translator):
    (result,) = translator.translate(["Ein Hund läuft."], beam_size=4, nbest=3, with_attention=True)
    scores = [s for _, s in result.nbest]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    assert result.attention.shape == (len(result.output_pieces), len(result.source_pieces))


def test_bad_input_is_a_clear_value_error(translator):
    with pytest.raises(ValueError, match="list of strings"):
        translator.translate("Ein Mann.")
    with pytest.raises(ValueError, match="sentence 1 is int"):
        translator.translate(["a", 3])
    with pytest.raises(ValueError, match=f"limit is {MAX_INPUT_CHARS}"):
        translator.translate(["x" * (MAX_INPUT_CHARS + 1)])
    with pytest.raises(ValueError, match=f"limit is {MAX_INPUT_TOKENS}"):
        translator.translate(["🚲 " * 300])  # byte fallback: several tokens a character
    skipped = translator.translate(["x" * (MAX_INPUT_CHARS + 1), "Ein Mann."], skip_invalid=True)
    assert skipped[0].text == "" and "limit" in skipped[0].error
    assert skipped[1].text and not skipped[1].error


def test_unseen_scripts_fall_back_to_bytes_and_control_characters_are_dropped(translator):
    unseen = "日本語 🚲 Ελληνικά"  # no character of it is in the German-English training text
    tokenizer = translator.tokenizer
    ids = tokenizer.encode_src([unseen])[0]
    pieces = tokenizer.src_pieces(ids)
    assert UNK_ID not in ids
    assert all(p == "▁" or re.fullmatch(r"<0x[0-9A-F]{2}>", p) for p in pieces), pieces
    byte_values = bytes(int(p[3:5], 16) for p in pieces if p != "▁")
    assert byte_values == unseen.replace(" ", "").encode("utf-8")
    # The vocabulary is joint: the same bytes decode back to the exact string on the target side.
    assert tokenizer.decode_tgt(tokenizer.encode_tgt([unseen])[0]) == unseen

    results = translator.translate([unseen, "Ein\x00 Mann\x07.", "Ein Mann."])
    assert results[0].source_pieces == pieces
    assert results[0].text and not any(u in results[0].text for u in ("⁇", "<unk>"))
    # Control characters are dropped before encoding: the sentence reads as without them.
    assert results[1].source_pieces == results[2].source_pieces
    assert results[1].text == results[2].text


def test_perplexity_is_exp_of_the_mean_token_cross_entropy(translator):
    # Lengths differ, so the batch is padded and a per-sentence mean would differ from this one.
    sources = [
        "Ein Mann fährt Fahrrad.",
        "Zwei kleine Hunde spielen zusammen im tiefen Schnee.",
        "Eine Frau liest.",
    ]
    references = [
        "A man rides a bike.",
        "Two small dogs are playing together in the deep snow.",
        "A woman reads.",
    ]
    tokenizer, model = translator.tokenizer, translator.model
    nll, tokens = 0.0, 0
    with torch.inference_mode():  # teacher forcing, one token at a time, one sentence at a time
        for source, reference in zip(sources, references, strict=True):
            src_ids = torch.tensor([tokenizer.encode_src([source])[0]])
            enc = model.encode(src_ids, torch.tensor([src_ids.size(1)]))
            state, prev = model.initial_state(enc), BOS_ID
            for gold in [*tokenizer.encode_tgt([reference])[0], EOS_ID]:
                log_probs, state, _ = model.decode_step(torch.tensor([prev]), state, enc)
                nll -= float(log_probs[0, gold])
                tokens += 1
                prev = gold
    expected = math.exp(nll / tokens)
    assert translator.perplexity(sources, references) == pytest.approx(expected, rel=1e-4)


def test_missing_run_names_the_path_and_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="seq2seq train"):
        Translator.from_run(tmp_path / "nothing-here")


def run_translate(run, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "seq2seq", "translate", "--checkpoint", str(run), *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=300)


def test_cli_keeps_line_count_and_order(trained_run, tmp_path):
    too_long = "🚲 " * 300  # within the character limit, over the token limit
    lines = [
        "Ein Mann fährt Fahrrad.",
        "",
        "Ein Hund.",
        " ".join(["sehr"] * 120),
        too_long,
        "Eine Frau.",
    ]
    source = tmp_path / "in.de"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = run_translate(trained_run, "--input", str(source), "--beam", "3", "--batch-size", "2")
    assert out.returncode == 0, out.stderr
    translated = out.stdout.split("\n")[:-1]
    assert len(translated) == len(lines)
    assert translated[1] == "" and translated[4] == ""
    assert translated[0] and translated[2] and translated[3] and translated[5]
    assert "line 5 not translated" in out.stderr


def test_cli_nbest_lines_are_index_score_text(trained_run):
    out = run_translate(trained_run, "--beam", "3", "--nbest", "2", stdin="Ein Mann.\nEine Frau.\n")
    assert out.returncode == 0, out.stderr
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    assert [r[0] for r in rows] == ["0", "0", "1", "1"]
    assert all(float(r[1]) <= 0 for r in rows)


def test_cli_int8_translates_every_line(trained_run):
    out = run_translate(trained_run, "--int8", "--beam", "2", stdin="Ein Mann.\n\nEine Frau.\n")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")[:-1]
    assert len(lines) == 3 and lines[0] and lines[1] == "" and lines[2]


def test_facts_are_describe_typed(translator, trained_run):
    facts, described = translator.facts(), translator.describe()
    assert facts.config == translator.cfg == RunConfig.from_dict(described["config"])
    assert facts.training == RunInfo.from_dict(described["training"])
    assert facts.training.step == described["training"]["step"] > 0
    assert facts.training.train_pairs == described["training"]["train_pairs"] > 0
    assert facts.checkpoint == trained_run and described["checkpoint"] == str(trained_run)
    assert facts.parameters == described["parameters"] == translator.model.num_parameters()
    assert facts.language_pair == ("de", "en") and described["language_pair"] == "de-en"
    assert facts.device == described["device"] == "cpu"


# --- decoding methods: sampling, and the run's settings as the defaults -------------------------

SENTENCES = ["Ein Mann fährt mit dem Fahrrad.", "Zwei Hunde spielen im Schnee.", "Eine Frau singt."]


def nbest_lists(results):
    return [result.nbest for result in results]


def test_translator_samples_ranked_outputs_reproducibly(translator):
    decode = translator.decode_config(
        method="sample", num_samples=4, nbest=4, temperature=1.5, seed=1
    )
    first = translator.translate(SENTENCES, decode=decode)
    for result in first:
        scores = [score for _, score in result.nbest]
        assert len(scores) == 4 and scores == sorted(scores, reverse=True)
        assert (result.text, result.score) == result.nbest[0]
    assert nbest_lists(translator.translate(SENTENCES, decode=decode)) == nbest_lists(first)
    other = translator.translate(SENTENCES, decode=dataclasses.replace(decode, seed=2))
    assert nbest_lists(other) != nbest_lists(first)


def test_sampling_only_the_likeliest_token_translates_as_greedy(translator):
    greedy = translator.translate(SENTENCES, beam_size=1)
    decode = translator.decode_config(method="sample", num_samples=3, nbest=3, top_k=1)
    for result, expected in zip(
        translator.translate(SENTENCES, decode=decode), greedy, strict=True
    ):
        assert [text for text, _ in result.nbest] == [expected.text] * 3
        assert [score for _, score in result.nbest] == pytest.approx([expected.score] * 3, abs=1e-4)


def test_a_beam_size_asks_for_beam_search_whatever_the_run_saved(translator):
    cfg = translator.cfg
    sampler = Translator(
        translator.model,
        translator.tokenizer,
        dataclasses.replace(cfg, decode=dataclasses.replace(cfg.decode, method="sample")),
    )
    got = sampler.translate(SENTENCES, beam_size=3, nbest=3)
    assert nbest_lists(got) == nbest_lists(translator.translate(SENTENCES, beam_size=3, nbest=3))


def cli_translate(monkeypatch, capsys, *args: str, stdin: str = "") -> str:
    """`seq2seq translate ARGS` in this process; its standard output."""
    monkeypatch.setattr(
        sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode()), encoding="utf-8")
    )
    capsys.readouterr()
    main(["translate", *args])
    return capsys.readouterr().out


def record_searches(monkeypatch) -> list[DecodeConfig]:
    """Every DecodeConfig that search is called with from now on."""
    used: list[DecodeConfig] = []
    real_search = search_module.search

    def recording_search(model, src_ids, src_lengths, cfg):
        used.append(cfg)
        return real_search(model, src_ids, src_lengths, cfg)

    monkeypatch.setattr(search_module, "search", recording_search)
    return used


def test_cli_sample_mode_prints_ranked_samples_reproducibly(trained_run, monkeypatch, capsys):
    used = record_searches(monkeypatch)
    flags = ["--checkpoint", str(trained_run), "--method", "sample", "--samples", "3"]
    flags += ["--nbest", "3", "--temperature", "1.5", "--topk", "50", "--topp", "0.95"]
    stdin = "Ein Mann fährt Fahrrad.\nZwei Hunde spielen im Schnee.\n"
    first = cli_translate(monkeypatch, capsys, *flags, "--seed", "1", stdin=stdin)
    rows = [line.split("\t") for line in first.splitlines()]
    assert [row[0] for row in rows] == ["0"] * 3 + ["1"] * 3
    for index in ("0", "1"):
        scores = [float(row[1]) for row in rows if row[0] == index]
        assert scores == sorted(scores, reverse=True) and all(score <= 0 for score in scores)
    settings = {(c.resolved_method, c.num_samples, c.temperature, c.top_k, c.top_p) for c in used}
    assert settings == {("sample", 3, 1.5, 50, 0.95)}
    assert cli_translate(monkeypatch, capsys, *flags, "--seed", "1", stdin=stdin) == first
    assert cli_translate(monkeypatch, capsys, *flags, "--seed", "2", stdin=stdin) != first


@pytest.fixture
def tuned_run(trained_run, tmp_path):
    """A copy of the trained run whose saved decoding is beam 3 with length penalty 0.6."""
    run = Path(
        shutil.copytree(trained_run, tmp_path / "run", ignore=shutil.ignore_patterns("last.pt"))
    )
    cfg, info = checkpoint.load_config(run)
    decode = dataclasses.replace(cfg.decode, beam_size=3, length_penalty=0.6)
    checkpoint.save_config(run, dataclasses.replace(cfg, decode=decode), info)
    return run


def test_cli_beam_and_length_penalty_default_to_the_runs(tuned_run, tmp_path, monkeypatch, capsys):
    used = record_searches(monkeypatch)

    def searched() -> set[tuple[str, int, float]]:
        settings = {(c.resolved_method, c.beam_size, c.length_penalty) for c in used}
        used.clear()
        return settings

    cli_translate(monkeypatch, capsys, "--checkpoint", str(tuned_run), stdin="Ein Hund.\n")
    assert searched() == {("beam", 3, 0.6)}
    flags = ["--beam", "2", "--length-penalty", "1.0"]
    cli_translate(monkeypatch, capsys, "--checkpoint", str(tuned_run), *flags, stdin="Ein Hund.\n")
    assert searched() == {("beam", 2, 1.0)}

    src, ref = tmp_path / "test.de", tmp_path / "test.en"
    src.write_text("Ein Hund läuft.\nEine Frau singt.\n", encoding="utf-8")
    ref.write_text("A dog runs.\nA woman sings.\n", encoding="utf-8")
    report = ["--report-dir", str(tmp_path / "report"), "--bootstrap", "0"]
    main(
        ["evaluate", "--checkpoint", str(tuned_run), "--src", str(src), "--ref", str(ref), *report]
    )
    assert searched() == {("greedy", 1, 0.6), ("beam", 3, 0.6)}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--temperature", "0"], "--temperature: temperature must be positive"),
        (["--temperature", "nan"], "--temperature: temperature must be a finite number"),
        (["--topp", "1.5"], "--topp: top_p must be in (0, 1]"),
        (["--topk", "-1"], "--topk: top_k must be >= 0"),
        (["--seed", "-3"], "--seed: seed must be from 0"),
        (["--samples", "65"], "--samples must be from 1 to 64, got 65"),
    ],
)
def test_bad_sampling_flags_are_refused_before_anything_is_loaded(tmp_path, flags, message):
    missing = tmp_path / "no-such-run"
    with pytest.raises(SystemExit) as exit_info:
        main(["translate", "--checkpoint", str(missing), "--method", "sample", *flags])
    assert message in str(exit_info.value.code)


def test_more_hypotheses_than_the_method_returns_are_refused(trained_run, monkeypatch, capsys):
    # The run saved one sample per sentence: three cannot be printed.
    with pytest.raises(SystemExit) as exit_info:
        cli_translate(
            monkeypatch,
            capsys,
            "--checkpoint",
            str(trained_run),
            "--method",
            "sample",
            "--nbest",
            "3",
            stdin="Ein Hund.\n",
        )
    assert "nbest=3 exceeds num_samples=1" in str(exit_info.value.code)
