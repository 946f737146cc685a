"""SentencePiece subwords: train, encode, decode.

SentencePiece's defaults are unk=0 bos=1 eos=2 and no padding; we set our own ids explicitly and
every module imports these constants instead of repeating the numbers.
"""

from __future__ import annotations

PAD_ID = 0
UNK_ID = 1
BOS_ID = 2
EOS_ID = 3
