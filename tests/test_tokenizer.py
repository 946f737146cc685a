"""SentencePiece: special ids, exact round trips, unseen scripts, saved with a run."""

from __future__ import annotations

import random

import pytest

from seq2seq.config import SubwordConfig
from seq2seq.corpus import normalize, read_lines
from seq2seq.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer


@pytest.fixture(scope="module")
def multi30k_tokenizer(multi30k_dir):
    de = read_lines(multi30k_dir / "val.de.gz")
    en = read_lines(multi30k_dir / "val.en.gz")
    return Tokenizer.train(de, en, SubwordConfig(vocab_size=1000))


def test_special_ids_are_ours(multi30k_tokenizer):
    sp = multi30k_tokenizer.src
    assert (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) == (PAD_ID, UNK_ID, BOS_ID, EOS_ID)
    assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)


@pytest.mark.parametrize(
    "text",
    [
        "Ein Mann fährt Fahrrad.",
        "Zwei Hunde spielen im Schnee, 2 Katzen schauen zu!",
        "Über 1.234,56 € — „Anführungszeichen“ (und Klammern).",
        "Ελληνικά και 日本語 und Emoji 🚲",  # scripts the corpus never saw
        "crème brûlée",
    ],
)
def test_round_trip_is_exact_for_normalised_text(multi30k_tokenizer, text):
    text = normalize(text)
    ids = multi30k_tokenizer.encode_src([text])[0]
    assert all(i not in (PAD_ID, BOS_ID, EOS_ID) for i in ids)
    assert UNK_ID not in ids  # byte fallback
    assert multi30k_tokenizer.decode_tgt(ids) == text


def test_joint_and_separate_vocabularies_save_and_load(tmp_path):
    src = ["ein hund läuft", "eine katze schläft", "der mann isst"] * 20
    tgt = ["a dog runs", "a cat sleeps", "the man eats"] * 20
    for joint in (True, False):
        tok = Tokenizer.train(
            src, tgt, SubwordConfig(vocab_size=300, joint=joint, model_type="bpe")
        )
        run = tmp_path / f"joint-{joint}"
        run.mkdir()
        tok.save(run)
        loaded = Tokenizer.load(run)
        assert loaded.joint == joint
        assert loaded.encode_tgt(["a dog sleeps"]) == tok.encode_tgt(["a dog sleeps"])
        assert loaded.decode_tgt(loaded.encode_tgt(["a dog sleeps"])[0]) == "a dog sleeps"


def test_missing_model_names_the_folder_and_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="seq2seq train"):
        Tokenizer.load(tmp_path)


@pytest.mark.parametrize("damage", ["random", "truncated", "empty"])
def test_damaged_model_file_is_a_value_error_naming_it(tmp_path, damage):
    src, tgt = ["ein hund läuft", "eine katze schläft"] * 20, ["a dog runs", "a cat sleeps"] * 20
    tok = Tokenizer.train(src, tgt, SubwordConfig(vocab_size=300, model_type="bpe"))
    tok.save(tmp_path)
    path = tmp_path / "spm.model"
    proto = path.read_bytes()
    damaged = {
        "random": random.Random(0).randbytes(len(proto)),
        "truncated": proto[: len(proto) // 2],  # a copy cut short
        "empty": b"",
    }[damage]
    path.write_bytes(damaged)
    with pytest.raises(ValueError, match=r"spm\.model is not a valid SentencePiece model") as err:
        Tokenizer.load(tmp_path)
    assert "\n" not in str(err.value)


def test_a_vocabulary_too_small_for_the_corpus_is_a_value_error():
    with pytest.raises(ValueError, match="subword.vocab_size|vocab_size") as err:
        Tokenizer.train(["ein Hund"] * 20, ["a dog"] * 20, SubwordConfig(vocab_size=120))
    assert "Vocabulary size is smaller than required_chars" in str(err.value)


@pytest.mark.parametrize(("model_type", "alpha", "nbest"), [("unigram", 0.5, -1), ("bpe", 0.1, -1)])
def test_sampled_segmentations_vary_by_seed_and_repeat_under_one(model_type, alpha, nbest):
    sentences = [f"Ein Mann mit Hut {i} fährt Fahrrad auf der Straße." for i in range(200)]
    tok = Tokenizer.train(
        sentences, sentences, SubwordConfig(vocab_size=300, model_type=model_type)
    )
    pairs = [(s, s) for s in sentences[:50]]
    first = tok.encode_sampled(pairs, alpha, nbest, seed=1)
    assert tok.encode_sampled(pairs, alpha, nbest, seed=1) == first
    other = tok.encode_sampled(pairs, alpha, nbest, seed=2)
    assert other != first
    plain = tok.encode_src([s for s, _ in pairs])
    assert first[0] != plain  # sampling changed some segmentations ...
    for ids, sentence in zip(first[1], sentences, strict=False):
        assert tok.decode_tgt(ids) == sentence  # ... never the text
