"""Translation directions of a multilingual model and its target-language tags.

One model translates several directions (Johnson et al. 2017, "Google's Multilingual Neural
Machine Translation System"): the source carries a tag naming the language to translate into,
``<2fr> Ein Mann fährt Fahrrad.``, and nothing else in the model changes. A direction is written
``SRC-TGT`` (``de-fr``). The tag is one SentencePiece user-defined symbol per target language,
so it is never split, and it is the first source token (`Tokenizer.encode_src`).

This module imports nothing of the package: the config validates directions with it, the
tokenizer reads tags with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from itertools import permutations
from typing import NamedTuple

# Multi30k task 1's languages, in the order the 12 directions of ``all`` are listed.
MULTI30K_LANGUAGES = ("en", "de", "fr", "cs")
ALL_DIRECTIONS = "all"
LANGUAGE_CODE = re.compile(r"[a-z]{2,3}")
# A tag at the start of a source sentence, followed by one space (`tag_source`).
LEADING_TAG = re.compile(r"<2([a-z]{2,3})> ")


class Direction(NamedTuple):
    """A source and a target language code."""

    src: str
    tgt: str

    def __str__(self) -> str:
        return f"{self.src}-{self.tgt}"


def parse_direction(text: str) -> Direction:
    """``"de-fr"`` → ``Direction("de", "fr")``; ValueError naming the text if it is not one."""
    src, dash, tgt = text.strip().partition("-")
    if not dash or not LANGUAGE_CODE.fullmatch(src) or not LANGUAGE_CODE.fullmatch(tgt):
        raise ValueError(
            f"direction {text!r} is not SRC-TGT with lowercase language codes, e.g. de-fr"
        )
    if src == tgt:
        raise ValueError(f"direction {text!r} translates {src} into itself")
    return Direction(src, tgt)


def every_direction(languages: Sequence[str] = MULTI30K_LANGUAGES) -> tuple[Direction, ...]:
    """Every ordered pair of distinct ``languages``: 12 for Multi30k's four."""
    return tuple(Direction(src, tgt) for src, tgt in permutations(languages, 2))


def expand_directions(spec: Iterable[str]) -> tuple[str, ...]:
    """Directions as ``SRC-TGT`` strings, in the order given; ``["all"]`` is Multi30k's 12.

    Raises:
        ValueError: a malformed or repeated direction, or ``all`` beside other directions.
    """
    given = [text.strip() for text in spec]
    if ALL_DIRECTIONS in given:
        if len(given) > 1:
            raise ValueError(f"directions: {ALL_DIRECTIONS!r} stands alone, got {given}")
        return tuple(str(d) for d in every_direction())
    directions = [str(parse_direction(text)) for text in given]
    repeated = sorted({d for d in directions if directions.count(d) > 1})
    if repeated:
        raise ValueError(f"directions: {', '.join(repeated)} given more than once")
    return tuple(directions)


def languages_of(directions: Iterable[Direction]) -> tuple[str, ...]:
    """The languages the directions read or write, in order of first appearance."""
    return tuple(dict.fromkeys(lang for d in directions for lang in d))


def target_tag(lang: str) -> str:
    """The token that asks for ``lang``: ``<2fr>``."""
    return f"<2{lang}>"


def tag_source(sentence: str, target_lang: str) -> str:
    """``sentence`` with the tag of ``target_lang`` in front: ``<2fr> Ein Mann.``."""
    return f"{target_tag(target_lang)} {sentence}"


def split_tag(sentence: str) -> tuple[str, str]:
    """(tag, rest) of a sentence `tag_source` tagged; ("", sentence) for an untagged one."""
    match = LEADING_TAG.match(sentence)
    if not match:
        return "", sentence
    return target_tag(match.group(1)), sentence[match.end() :]


def choose_direction(
    trained: Sequence[Direction], target_lang: str, source_lang: str | None = None
) -> Direction:
    """The trained direction into ``target_lang`` (from ``source_lang`` if given, else the first
    trained one into it).

    Raises:
        ValueError: the model was not trained into ``target_lang``, or not from ``source_lang``
            into it; the message lists what it was trained on.
    """
    listed = ", ".join(str(d) for d in trained)
    targets = languages_of(Direction(d.tgt, d.tgt) for d in trained)
    if source_lang is not None and source_lang == target_lang:
        raise ValueError(f"source and target language are both {target_lang!r}")
    if target_lang not in targets:
        raise ValueError(
            f"the model was not trained to translate into {target_lang!r}; its target "
            f"language(s): {', '.join(targets)} (directions: {listed})"
        )
    for direction in trained:
        if direction.tgt == target_lang and source_lang in (None, direction.src):
            return direction
    raise ValueError(
        f"the model was not trained on {source_lang}-{target_lang}; its directions: {listed}"
    )
