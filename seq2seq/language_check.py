"""A cheap guess of a sentence's language among Multi30k's four, to warn when an input looks like
the language it is about to be translated into (a user who picked the wrong direction).

Counts frequent function words and letters that only one of the languages writes; no model, no
dependency. It guesses only when one language clearly leads, and says nothing otherwise: a
missed warning costs little, a false one misleads.
"""

from __future__ import annotations

import re

from seq2seq.download import language_name

# Frequent words of each language that the others do not write (German "in" and English "in",
# French "a" and Czech "a" are left out for that reason).
FUNCTION_WORDS = {
    "en": frozenset(
        "the and is are of with while his her on at two who this that wearing some man woman "
        "men women people boy girl dog through from their".split()
    ),
    "de": frozenset(
        "der die das und ein eine einem einen einer mit ist sind auf im den dem zwei von sich "
        "vor bei".split()
    ),
    "fr": frozenset(
        "le la les un une des et est sont dans sur avec du deux au qui son sa pour devant".split()
    ),
    "cs": frozenset("je jsou na se v ve s muž žena dva dvě který která své do před u za".split()),
}
# Letters that one of the four languages writes and the others do not.
OWN_LETTERS = {
    "en": "",
    "de": "äöüß",
    "fr": "èêàçœëîôûù",
    "cs": "ěščřžůťďň",
}
WORD = re.compile(r"\w+")
MIN_EVIDENCE = 2  # words or letters: one "die" or one "é" proves nothing


def guess_language(text: str) -> str | None:
    """The language code ``text`` most looks written in, or None when no language clearly leads
    (fewer than `MIN_EVIDENCE` clues, or a tie)."""
    lowered = text.lower()
    words = WORD.findall(lowered)
    evidence = {
        lang: sum(word in FUNCTION_WORDS[lang] for word in words)
        + sum(lowered.count(letter) for letter in OWN_LETTERS[lang])
        for lang in FUNCTION_WORDS
    }
    ranked = sorted(evidence.items(), key=lambda item: item[1], reverse=True)
    (best, most), (_, second) = ranked[0], ranked[1]
    return best if most >= MIN_EVIDENCE and most > second else None


def target_language_warning(sentence: object, target_lang: str) -> str:
    """A warning if ``sentence`` looks written in ``target_lang`` already, else ""."""
    if not isinstance(sentence, str) or guess_language(sentence) != target_lang:
        return ""
    name = language_name(target_lang)
    return f"the input looks like {name} already, the language it is translated into"
