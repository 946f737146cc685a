"""The cheap source-language guess: right on plain captions, silent when unsure, and a warning
only for input already in the target language."""

from __future__ import annotations

import pytest

from seq2seq.language_check import guess_language, target_language_warning

CAPTIONS = {
    "en": "A man in a blue shirt is standing on a ladder cleaning windows.",
    "de": "Ein Mann in einem blauen Hemd steht auf einer Leiter und putzt Fenster.",
    "fr": "Un homme en chemise bleue est debout sur une échelle et nettoie des fenêtres.",
    "cs": "Muž v modré košili stojí na žebříku a myje okna.",
}


@pytest.mark.parametrize("lang", sorted(CAPTIONS))
def test_each_language_is_recognised(lang):
    assert guess_language(CAPTIONS[lang]) == lang


def test_the_guess_of_a_multi30k_validation_set_is_never_another_language(multi30k_dir):
    from seq2seq.corpus import read_lines

    for lang in CAPTIONS:
        lines = read_lines(multi30k_dir / f"val.{lang}.gz")
        guesses = [guess_language(line) for line in lines]
        assert not [g for g in guesses if g not in (lang, None)], lang
        assert guesses.count(lang) > 0.8 * len(lines), lang


@pytest.mark.parametrize("text", ["", "OK", "Paris", "12:30", "die"])
def test_too_little_evidence_is_no_guess(text):
    assert guess_language(text) is None


def test_only_input_in_the_target_language_is_warned_about():
    assert "French" in target_language_warning(CAPTIONS["fr"], "fr")
    assert target_language_warning(CAPTIONS["de"], "fr") == ""
    assert target_language_warning("Paris", "fr") == ""  # unsure: silent
    assert target_language_warning(None, "fr") == ""  # not text: the translator says why
