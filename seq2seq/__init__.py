"""Attentional RNN encoder-decoder translation.

Prepare a parallel corpus, train GRU/LSTM/tanh-RNN encoder-decoders with Bahdanau or Luong
attention, decode greedily, with batched beam search or by sampling, score with sacreBLEU, and
serve a demo.
`Translator.from_run("checkpoints/NAME").translate([...])` is the one door to a trained model.
"""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Translator"]

if TYPE_CHECKING:
    from seq2seq.translate import Translator


def __getattr__(name: str) -> Any:
    # Lazy, so that `seq2seq --help` and light modules don't import torch and the model.
    if name == "Translator":
        from seq2seq.translate import Translator

        return Translator
    raise AttributeError(name)
