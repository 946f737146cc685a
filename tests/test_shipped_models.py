"""The models shipped in checkpoints/ load and score test_2016_flickr above their floors."""

from __future__ import annotations

from pathlib import Path

import pytest

from seq2seq.corpus import read_lines
from seq2seq.metrics import score_corpus
from seq2seq.translate import Translator

REPO = Path(__file__).resolve().parents[1]
FLOORS = {"multi30k-de-en": 36.0, "multi30k-en-de": 32.0}  # sacreBLEU, cased, beam search


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FLOORS))
def test_shipped_model_scores_above_its_floor(name, multi30k_dir):
    run_dir = REPO / "checkpoints" / name
    assert (run_dir / "model.safetensors").is_file(), f"{run_dir} is not shipped"
    translator = Translator.from_run(run_dir, device="cpu")
    src_lang, tgt_lang = translator.language_pair
    sources = read_lines(multi30k_dir / f"test_2016_flickr.{src_lang}.gz")
    references = read_lines(multi30k_dir / f"test_2016_flickr.{tgt_lang}.gz")
    beam = translator.cfg.decode.beam_size
    assert beam > 1, "shipped models decode with beam search"
    hyps = [t.text for t in translator.translate(sources, beam_size=beam)]
    bleu = score_corpus(hyps, references, n_bootstrap=0)["bleu"].score
    assert bleu >= FLOORS[name], f"{name}: BLEU {bleu:.2f} under the floor {FLOORS[name]}"
