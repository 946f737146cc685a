"""Multilingual data: directions and tags, the settings that ask for them, balanced directions,
interleaved validation, the vocabulary's even sample, per-direction BLEU, files corpora."""

from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter
from pathlib import Path

import pytest

from seq2seq.cli import build_parser, config_from_args
from seq2seq.config import DataConfig, RunConfig, SubwordConfig
from seq2seq.directions import (
    Direction,
    choose_direction,
    expand_directions,
    split_tag,
    tag_source,
)
from seq2seq.multilingual import (
    balance_directions,
    interleave,
    load_training_corpus,
    load_validation,
    validation_bleu,
    vocabulary_sentences,
)
from seq2seq.prepare import prepare
from seq2seq.session import resumed_config
from seq2seq.tokenizer import Tokenizer
from seq2seq.training_data import with_prepared_settings

# --- Directions and tags ------------------------------------------------------------------------


def test_all_is_the_twelve_directions_between_multi30k_languages():
    every = expand_directions(["all"])
    assert len(every) == len(set(every)) == 12
    assert {d.split("-")[0] for d in every} == {"en", "de", "fr", "cs"}
    assert "de-de" not in every and "fr-cs" in every and "cs-fr" in every


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        (["de-de"], "into itself"),
        (["de_en"], "SRC-TGT"),
        (["DE-EN"], "lowercase"),
        (["de-en", "de-en"], "more than once"),
        (["all", "de-en"], "stands alone"),
    ],
)
def test_bad_directions_are_refused_naming_them(spec, needle):
    with pytest.raises(ValueError, match=needle):
        expand_directions(spec)


def test_a_tag_goes_in_front_and_comes_off_again():
    tagged = tag_source("Ein Mann.", "fr")
    assert tagged == "<2fr> Ein Mann."
    assert split_tag(tagged) == ("<2fr>", "Ein Mann.")
    assert split_tag("Ein <2fr> Mann.") == ("", "Ein <2fr> Mann.")  # only a leading tag


def test_choose_direction_takes_a_trained_direction_or_names_them():
    trained = [Direction("de", "en"), Direction("fr", "en"), Direction("en", "fr")]
    assert choose_direction(trained, "en") == Direction("de", "en")  # the first into en
    assert choose_direction(trained, "en", "fr") == Direction("fr", "en")
    with pytest.raises(ValueError, match="into 'cs'.*en, fr"):
        choose_direction(trained, "cs")
    with pytest.raises(ValueError, match="not trained on de-fr.*de-en, fr-en, en-fr"):
        choose_direction(trained, "fr", "de")
    with pytest.raises(ValueError, match="both 'en'"):
        choose_direction(trained, "en", "en")


# --- Settings -----------------------------------------------------------------------------------


def test_directions_come_from_yaml_lists_flags_and_saved_configs(tmp_path: Path):
    yaml_file = tmp_path / "multi.yaml"
    yaml_file.write_text("data:\n  directions: [en-de, de-en, en-fr]\n", encoding="utf-8")
    args = build_parser().parse_args(["train", "--config", str(yaml_file)])
    assert config_from_args(args, ("data",)).data.directions == "en-de,de-en,en-fr"
    args = build_parser().parse_args(["train", "--data.directions", "fr-cs,cs-fr"])
    assert config_from_args(args, ("data",)).data.direction_names == ("fr-cs", "cs-fr")
    args = build_parser().parse_args(["train", "--data.directions", "all"])
    cfg = config_from_args(args, ("data",))
    # Stored expanded, so that a saved run lists its directions, and read back equal.
    assert cfg.data.direction_names == expand_directions(["all"])
    saved = json.loads(json.dumps(cfg.to_dict()))  # what config.json holds
    assert saved["data"] == dataclasses.asdict(cfg.data)
    assert RunConfig.from_dict(saved) == cfg


def test_a_config_saved_before_directions_is_bilingual():
    saved = RunConfig().to_dict()
    for key in ("directions", "direction_sampling"):
        del saved["data"][key]
    data = RunConfig.from_dict(saved).data
    assert not data.multilingual and data.direction_names == ()


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"directions": "en-it"}, "Multi30k has no it"),
        ({"direction_sampling": "uniform"}, "direction_sampling"),
        (
            {
                "corpus": "files",
                "train": "a.de,a.en",
                "valid": "b.de,b.en",
                "directions": "de-en",
            },
            r"\{src\} and \{tgt\}",
        ),
    ],
)
def test_bad_multilingual_settings_name_the_field(changes, needle):
    with pytest.raises(ValueError, match=needle):
        DataConfig(**changes)


def test_a_resumed_run_keeps_its_directions():
    saved = RunConfig(data=DataConfig(directions="all"))
    with pytest.raises(ValueError, match="--data.directions"):
        resumed_config(saved, dataclasses.replace(saved, data=DataConfig()))


def test_a_multilingual_run_needs_a_joint_vocabulary():
    with pytest.raises(ValueError, match="subword.joint"):
        RunConfig(data=DataConfig(directions="all"), subword=SubwordConfig(joint=False))


# --- Balancing, interleaving, the vocabulary's sample -------------------------------------------


def pairs_of(name: str, count: int) -> list[tuple[str, str]]:
    return [(f"{name} source {i}", f"{name} target {i}") for i in range(count)]


def test_balanced_directions_are_seen_evenly_and_small_ones_repeat_evenly():
    big, small = pairs_of("big", 10), pairs_of("small", 4)
    joined = balance_directions([big, small], random.Random(1))
    by_direction = Counter(src.split()[0] for src, _ in joined)
    assert by_direction == {"big": 10, "small": 10}
    repeats = Counter(pair for pair in joined if pair[0].startswith("small"))
    assert set(repeats) == set(small)  # every pair of the small direction is used
    assert max(repeats.values()) - min(repeats.values()) <= 1  # and none much more than another
    assert Counter(pair for pair in joined if pair[0].startswith("big")) == Counter(big)


def test_proportional_directions_take_every_pair_once():
    big, small = pairs_of("big", 10), pairs_of("small", 4)
    assert balance_directions([big, small], random.Random(1), balanced=False) == big + small


def test_validation_takes_the_directions_in_turn_so_its_first_pairs_cover_them_all():
    pairs, labels = interleave([pairs_of("a", 3), pairs_of("b", 1), pairs_of("c", 2)], "abc")
    assert labels == ["a", "b", "c", "a", "c", "a"]
    assert [src.split()[0] for src, _ in pairs] == labels
    assert pairs[3] == ("a source 1", "a target 1")


def test_the_vocabulary_sees_as_many_untagged_sentences_of_every_language():
    directions = [Direction("de", "en"), Direction("en", "fr")]
    de_en = [(tag_source(f"de {i}", "en"), f"en {i}") for i in range(30)]
    en_fr = [(tag_source(f"en {i}", "fr"), f"fr {i}") for i in range(5)]
    sample = vocabulary_sentences(directions, [de_en, en_fr], random.Random(1))
    by_language = Counter(sentence.split()[0] for sentence in sample)
    # en has 30 distinct sentences (the same 5 on both sides count once), fr has 5: the fewest
    assert by_language == {"de": 5, "en": 5, "fr": 5}
    assert not any(sentence.startswith("<2") for sentence in sample)


def test_validation_bleu_is_the_mean_of_the_directions_whatever_their_sizes():
    refs = ["a man rides a red bike down the street"] * 3 + ["two dogs play in the snow"]
    hyps = refs[:3] + ["completely unrelated words here"]
    scores = validation_bleu(hyps, refs, ["de-en", "de-en", "de-en", "fr-en"])
    assert scores["valid_bleu_de-en"] == pytest.approx(100.0)
    assert scores["valid_bleu_fr-en"] == pytest.approx(0.0)
    assert scores["valid_bleu"] == pytest.approx(50.0)  # not 75: directions count the same


# --- A files corpus of several directions -------------------------------------------------------


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


@pytest.fixture
def three_way_files(tmp_path: Path) -> DataConfig:
    """A tiny de/en/fr multi-way corpus as files named by language; de-en is the largest."""
    sentences = {
        "de": ["ein hund läuft", "eine katze schläft", "der mann isst", "die frau singt"],
        "en": ["a dog runs", "a cat sleeps", "the man eats", "the woman sings"],
        "fr": ["un chien court", "un chat dort", "l'homme mange", "la femme chante"],
    }
    for lang, lines in sentences.items():
        write_lines(tmp_path / f"train.{lang}", lines * 5)
        write_lines(tmp_path / f"valid.{lang}", lines[:2])
    return DataConfig(
        corpus="files",
        train=str(tmp_path / "train.{src}") + "," + str(tmp_path / "train.{tgt}"),
        valid=str(tmp_path / "valid.{src}") + "," + str(tmp_path / "valid.{tgt}"),
        directions="de-en,en-fr,fr-de",
    )


def test_a_files_corpus_reads_each_direction_and_tags_its_sources(three_way_files, clean_cfg):
    corpus = load_training_corpus(three_way_files, clean_cfg, seed=1)
    assert ("<2en> ein hund läuft", "a dog runs") in corpus.train
    assert ("<2fr> a dog runs", "un chien court") in corpus.train
    assert ("<2de> un chien court", "ein hund läuft") in corpus.train
    assert Counter(split_tag(src)[0] for src, _ in corpus.train) == {
        "<2en>": 20,
        "<2fr>": 20,
        "<2de>": 20,
    }
    assert corpus.stats.kept == 60
    assert corpus.valid_directions == ["de-en", "en-fr", "fr-de"] * 2
    assert corpus.valid[1] == ("<2fr> a dog runs", "un chien court")
    assert (corpus.valid, corpus.valid_directions) == load_validation(three_way_files)
    assert corpus.tags == ("<2de>", "<2en>", "<2fr>")


def test_a_missing_direction_file_names_it(three_way_files, clean_cfg, tmp_path):
    (tmp_path / "train.fr").unlink()
    with pytest.raises(FileNotFoundError, match=r"train\.fr"):
        load_training_corpus(three_way_files, clean_cfg, seed=1)


def test_the_joint_vocabulary_keeps_every_tag_whole(three_way_files, clean_cfg):
    corpus = load_training_corpus(three_way_files, clean_cfg, seed=1)
    tokenizer = corpus.train_tokenizer(SubwordConfig(vocab_size=320))
    for tag in corpus.tags:
        assert tokenizer.knows_piece(tag)
    tagged, untagged = tokenizer.encode_src(["<2fr> ein hund läuft", "ein hund läuft"])
    assert tokenizer.src_pieces(tagged)[0] == "<2fr>"
    assert tagged[1:] == untagged  # the rest segmented exactly as without the tag
    # Subword sampling segments the rest anew, never the tag.
    sampled, _ = tokenizer.encode_sampled([("<2fr> ein hund läuft", "x")] * 20, 0.1, 64, 7)
    assert all(tokenizer.src_pieces(ids)[0] == "<2fr>" for ids in sampled)


def test_a_bilingual_vocabulary_reads_a_leading_tag_as_plain_text():
    tokenizer = Tokenizer.train(["ein hund"] * 20, ["a dog"] * 20, SubwordConfig(vocab_size=280))
    assert not tokenizer.knows_piece("<2fr>")
    text = "<2fr> ein hund"
    assert tokenizer.encode_src([text]) == [list(tokenizer.src.encode(text, out_type=int))]


def test_prepare_stores_tagged_directions_their_validation_labels_and_one_vocabulary(
    three_way_files, clean_cfg, tmp_path
):
    data = dataclasses.replace(three_way_files, data_dir=str(tmp_path / "cache"))
    subword = SubwordConfig(vocab_size=320)
    prepared = prepare(data, clean_cfg, subword, workers=1, say=lambda _: None)
    corpus = load_training_corpus(data, clean_cfg, seed=1)
    assert sorted(prepared.text_pairs("train")) == sorted(corpus.train)
    assert list(prepared.text_pairs("valid")) == corpus.valid
    assert prepared.directions("valid") == ["de-en", "en-fr", "fr-de"] * 2
    assert prepared.directions("train") == []  # training pairs carry their tag instead
    tokenizer = prepared.tokenizer()
    train = prepared.dataset("train")
    first_pieces = {tokenizer.src_pieces(ids)[0] for ids in train.src.to_lists()}
    assert first_pieces == set(corpus.tags) == {"<2de>", "<2en>", "<2fr>"}
    assert prepared.root.name.startswith("files-multi-")

    # A run on the prepared folder learns its directions from it.
    cfg = with_prepared_settings(RunConfig(data=DataConfig(prepared=str(prepared.root))))
    assert cfg.data.direction_names == ("de-en", "en-fr", "fr-de")

    # Validation is cut per direction; fewer directions are another corpus.
    one_each = prepare(
        dataclasses.replace(data, max_valid_pairs=1), clean_cfg, subword, workers=1, say=print
    )
    assert one_each.directions("valid") == ["de-en", "en-fr", "fr-de"]
    two = prepare(
        dataclasses.replace(data, directions="de-en,fr-de"), clean_cfg, subword, workers=1,
        say=print,
    )  # fmt: skip
    assert two.pairs("train") == 40 and len({prepared.root, one_each.root, two.root}) == 3


def test_prepare_command_counts_the_directions_together_and_other_splits_by_direction(
    three_way_files, tmp_path, capsys
):
    from seq2seq import cli

    data = three_way_files
    write_lines(tmp_path / "test.de", ["ein hund"])
    write_lines(tmp_path / "test.en", ["a dog"])
    write_lines(tmp_path / "test.fr", ["un chien"])
    cli.main([
        "prepare", "--data.corpus", "files", "--data.directions", data.directions,
        "--data.train", data.train, "--data.valid", data.valid, "--data.data_dir",
        str(tmp_path / "cache"), "--subword.vocab_size", "320", "--workers", "1",
        "--splits", "train", "val", f"{tmp_path / 'test.{src}'},{tmp_path / 'test.{tgt}'}",
    ])  # fmt: skip
    saved = json.loads((tmp_path / "cache" / "files-multi.clean.json").read_text())
    assert saved["train"]["kept"] == 60 and saved["val"] == {"total": 6}
    for src, tgt in ("de", "en"), ("en", "fr"), ("fr", "de"):
        counts = json.loads((tmp_path / "cache" / f"files-{src}-{tgt}.clean.json").read_text())
        test_files = f"{tmp_path / f'test.{src}'},{tmp_path / f'test.{tgt}'}"
        assert counts[test_files] == {"total": 1} and "train" not in counts
    assert "en-fr: counts saved to" in capsys.readouterr().out


@pytest.fixture
def clean_cfg():
    from seq2seq.config import CleanConfig

    return CleanConfig()


def test_the_multilingual_config_trains_all_twelve_directions_and_fits_30_mb_in_float16():
    from seq2seq.config import load_yaml
    from seq2seq.model import Seq2Seq

    repo = Path(__file__).resolve().parents[1]
    cfg = RunConfig.from_dict(load_yaml(repo / "configs" / "multi30k-multi.yaml"))
    assert len(cfg.data.direction_names) == 12 and cfg.data.direction_sampling == "balanced"
    assert cfg.model.attention == "bahdanau" and cfg.train.lr_schedule == "cosine"
    assert cfg.train.max_steps > 0 and cfg.train.average_last > 0
    vocab = cfg.subword.vocab_size
    model = Seq2Seq(dataclasses.replace(cfg.model, src_vocab_size=vocab, tgt_vocab_size=vocab))
    assert model.num_parameters() * 2 <= 30 * 2**20
