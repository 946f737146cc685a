"""A run's training corpus, bilingual or multilingual: read, cleaned, tagged and balanced.

A multilingual run (``data.directions``) reads each direction as a bilingual run would
(`corpus.load_splits`), puts the target-language tag in front of every source
(`directions.tag_source`), and joins the directions:
- training pairs: every direction as often as the largest (``data.direction_sampling:
  balanced``, `balance_directions`) or each pair once (``proportional``); the batch sampler cuts
  batches from all of them together, so every batch mixes directions;
- validation pairs: the directions taken in turn (`interleave`), so that the first N pairs
  (``train.valid_max_pairs``) cover every direction, each pair labelled with its direction so
  that validation scores BLEU per direction (`validation_bleu`);
- the vocabulary: one SentencePiece model trained on as many sentences of every language
  (`vocabulary_sentences`), so that no language dominates it, with a tag per language as a
  piece of its own.
A bilingual run's corpus is `corpus.load_splits`'s, unchanged.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from seq2seq.config import CleanConfig, DataConfig, SubwordConfig
from seq2seq.corpus import CleanStats, Pair, load_splits, load_valid_pairs
from seq2seq.directions import (
    Direction,
    languages_of,
    parse_direction,
    split_tag,
    tag_source,
    target_tag,
)
from seq2seq.metrics import score_corpus
from seq2seq.tokenizer import Tokenizer


@dataclass
class TrainingCorpus:
    """What a run trains and validates on, and what its vocabulary is learnt from."""

    train: list[Pair]  # multilingual: sources tagged, directions balanced
    valid: list[Pair]
    stats: CleanStats  # what cleaning kept and dropped, all directions together
    # Per validation pair, its direction ("de-fr"); empty for a bilingual run.
    valid_directions: list[str] = field(default_factory=list)
    # Multilingual: the sentences (untagged) and tags the joint vocabulary is trained on.
    vocabulary: list[str] = field(default_factory=list)
    tags: tuple[str, ...] = ()

    def train_tokenizer(self, cfg: SubwordConfig) -> Tokenizer:
        if not self.tags:
            return Tokenizer.train([s for s, _ in self.train], [t for _, t in self.train], cfg)
        return Tokenizer.train_joint(self.vocabulary, cfg, self.tags)


def run_directions(data: DataConfig) -> tuple[Direction, ...]:
    """The directions a run trains: ``data.directions``, or its one language pair."""
    if not data.multilingual:
        return (Direction(data.src_lang, data.tgt_lang),)
    return tuple(parse_direction(d) for d in data.direction_names)


def direction_data(data: DataConfig, direction: Direction) -> DataConfig:
    """The bilingual settings that read one direction of a multilingual run: its languages, and
    its files with ``{src}`` and ``{tgt}`` filled in."""

    return dataclasses.replace(
        data,
        src_lang=direction.src,
        tgt_lang=direction.tgt,
        train=fill_direction(data.train, direction),
        valid=fill_direction(data.valid, direction),
        directions="",
    )


def fill_direction(spec: str, direction: Direction) -> str:
    """A file spec with ``{src}`` and ``{tgt}`` replaced by the direction's languages."""
    return spec.replace("{src}", direction.src).replace("{tgt}", direction.tgt)


def load_training_corpus(data: DataConfig, clean: CleanConfig, seed: int) -> TrainingCorpus:
    """The run's cleaned training pairs and normalised validation pairs (`corpus.load_splits`
    per direction); ``seed`` draws the repeated pairs of balancing and the vocabulary's
    sentences."""
    if not data.multilingual:
        return TrainingCorpus(*load_splits(data, clean))
    directions = run_directions(data)
    trains, valids, stats = [], [], CleanStats()
    for direction in directions:
        train, valid, direction_stats = load_splits(direction_data(data, direction), clean)
        trains.append(tag_pairs(train, direction.tgt))
        valids.append(tag_pairs(valid, direction.tgt))
        stats = add_stats(stats, direction_stats)
    valid, valid_directions = interleave(valids, [str(d) for d in directions])
    rng = random.Random(seed)
    return TrainingCorpus(
        train=balance_directions(trains, rng, data.direction_sampling == "balanced"),
        valid=valid,
        stats=stats,
        valid_directions=valid_directions,
        vocabulary=vocabulary_sentences(directions, trains, rng),
        tags=tuple(target_tag(lang) for lang in languages_of(directions)),
    )


def load_validation(data: DataConfig) -> tuple[list[Pair], list[str]]:
    """The validation pairs a run scores on (`corpus.load_valid_pairs`), and for a
    multilingual run each pair's direction (else [])."""
    if not data.multilingual:
        return load_valid_pairs(data), []
    directions = run_directions(data)
    valids = [
        tag_pairs(load_valid_pairs(direction_data(data, direction)), direction.tgt)
        for direction in directions
    ]
    return interleave(valids, [str(d) for d in directions])


def tag_pairs(pairs: Sequence[Pair], target_lang: str) -> list[Pair]:
    return [(tag_source(src, target_lang), tgt) for src, tgt in pairs]


def add_stats(a: CleanStats, b: CleanStats) -> CleanStats:
    return CleanStats(**{key: getattr(a, key) + value for key, value in b.to_dict().items()})


def balance_directions(
    per_direction: Sequence[Sequence[Pair]], rng: random.Random, balanced: bool = True
) -> list[Pair]:
    """The directions' pairs together; ``balanced``: each direction with as many pairs as the
    largest, a smaller one's repeated whole and then topped up by pairs drawn without
    replacement, so that no pair is seen twice more often than another of its direction."""
    if not balanced:
        return [pair for pairs in per_direction for pair in pairs]
    most = max(len(pairs) for pairs in per_direction)
    joined: list[Pair] = []
    for pairs in per_direction:
        copies, rest = divmod(most, len(pairs))
        joined += list(pairs) * copies + rng.sample(list(pairs), rest)
    return joined


def interleave(
    per_direction: Sequence[Sequence[Pair]], names: Sequence[str]
) -> tuple[list[Pair], list[str]]:
    """The directions' pairs taken in turn, and each one's direction name; a direction that
    runs out first leaves the turn to the others."""
    pairs: list[Pair] = []
    labels: list[str] = []
    for position in range(max((len(direction) for direction in per_direction), default=0)):
        for name, direction in zip(names, per_direction, strict=True):
            if position < len(direction):
                pairs.append(direction[position])
                labels.append(name)
    return pairs, labels


def vocabulary_sentences(
    directions: Sequence[Direction], tagged: Sequence[Sequence[Pair]], rng: random.Random
) -> list[str]:
    """The same number of distinct training sentences of every language (the fewest any has),
    drawn with ``rng``, untagged: the joint vocabulary's text."""
    by_language: dict[str, dict[str, None]] = {lang: {} for lang in languages_of(directions)}
    for direction, pairs in zip(directions, tagged, strict=True):
        for src, tgt in pairs:
            by_language[direction.src][split_tag(src)[1]] = None
            by_language[direction.tgt][tgt] = None
    each = min(len(sentences) for sentences in by_language.values())
    return [
        sentence
        for sentences in by_language.values()
        for sentence in rng.sample(list(sentences), each)
    ]


def validation_bleu(
    hypotheses: Sequence[str], references: Sequence[str], directions: Sequence[str]
) -> dict[str, float]:
    """BLEU of each direction's validation pairs (``valid_bleu_de-fr``) and their mean
    (``valid_bleu``): every direction counts the same, however many pairs it has."""
    scores: dict[str, float] = {}
    for name in dict.fromkeys(directions):
        rows = [i for i, direction in enumerate(directions) if direction == name]
        hyps, refs = [hypotheses[i] for i in rows], [references[i] for i in rows]
        scores[f"valid_bleu_{name}"] = score_corpus(hyps, refs, n_bootstrap=0)["bleu"].score
    return {"valid_bleu": sum(scores.values()) / len(scores), **scores}
