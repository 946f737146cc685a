"""SentencePiece subwords: train, encode, decode.

SentencePiece's defaults are unk=0 bos=1 eos=2 and no padding; we set our own ids explicitly and
every module imports these constants instead of repeating the numbers.

A multilingual model's vocabulary holds a target-language tag per language (``<2fr>``, a
user-defined symbol, `directions`); a source sentence that starts with a tag the vocabulary
knows is encoded as the tag's id followed by the rest's pieces, exactly as the untagged rest.
"""

from __future__ import annotations

import hashlib
import io
import itertools
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import sentencepiece as spm

from seq2seq.config import SubwordConfig
from seq2seq.directions import split_tag
from seq2seq.rundir import RunDir

PAD_ID = 0
UNK_ID = 1
BOS_ID = 2
EOS_ID = 3


def train_sentencepiece(
    sentences: Iterable[str],
    cfg: SubwordConfig,
    sample: int = 0,
    user_symbols: Sequence[str] = (),
) -> bytes:
    """Train one SentencePiece model on ``sentences`` (streamed, never all held here) and return
    its serialised proto.

    Args:
        sample: train on this many sentences drawn at random (SentencePiece's own reservoir
            sampling) when there are more; 0 = on all of them.
        user_symbols: pieces of their own, never split (e.g. target-language tags).
    """
    model = io.BytesIO()
    spm.set_random_generator_seed(1)  # the same corpus gives the same vocabulary
    try:
        _train(sentences, cfg, model, sample, user_symbols)
    except RuntimeError as err:  # e.g. a vocabulary smaller than the corpus's characters
        reason = str(err).split("] ", 1)[-1]
        raise ValueError(f"SentencePiece could not train with {cfg}: {reason}") from err
    return model.getvalue()


def _train(
    sentences: Iterable[str],
    cfg: SubwordConfig,
    model: io.BytesIO,
    sample: int,
    user_symbols: Sequence[str],
) -> None:
    # Given only when used: the settings are recorded in the model, so a model trained on all
    # sentences without symbols stays byte for byte the one trained before these existed.
    extra: dict[str, Any] = {}
    if sample:
        extra.update(input_sentence_size=sample, shuffle_input_sentence=True)
    if user_symbols:
        extra.update(user_defined_symbols=list(user_symbols))
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        model_type=cfg.model_type,
        vocab_size=cfg.vocab_size,
        character_coverage=cfg.character_coverage,
        byte_fallback=cfg.byte_fallback,
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        hard_vocab_limit=False,  # small corpora may not fill vocab_size
        normalization_rule_name="identity",  # corpus.normalize already applied NFC
        minloglevel=2,
        num_threads=1,
        **extra,
    )


def encode_tagged(
    processor: spm.SentencePieceProcessor,
    sentences: Sequence[str],
    encode: Callable[[list[str]], list[list[int]]] | None = None,
) -> list[list[int]]:
    """``encode`` of each sentence (by default ``processor``'s plain encoding), a leading tag
    that ``processor`` knows as its own id first: encoded in the text, it would cost a "▁"
    piece before it and change the next word's."""
    encode = encode or (lambda texts: processor.encode(texts, out_type=int))
    tag_ids, rests = [], []
    for sentence in sentences:
        tag, rest = split_tag(sentence)
        known = bool(tag) and processor.piece_to_id(tag) != UNK_ID
        tag_ids.append([processor.piece_to_id(tag)] if known else [])
        rests.append(rest if known else sentence)
    return [tag + list(ids) for tag, ids in zip(tag_ids, encode(rests), strict=True)]


def _load(proto: bytes, source: str = "the SentencePiece model") -> spm.SentencePieceProcessor:
    """Parse a serialised model; ValueError naming ``source`` if it is damaged or not one."""
    processor = spm.SentencePieceProcessor()
    try:
        processor.LoadFromSerializedProto(proto)
    except RuntimeError:  # SentencePiece reports every parse failure so, with a C++ source line
        raise ValueError(
            f"{source} is not a valid SentencePiece model ({len(proto)} bytes that do not "
            "parse): it is damaged or truncated; copy the run directory again or retrain it"
        ) from None
    return processor


class Tokenizer:
    """Source and target SentencePiece models (one shared object when the vocabulary is joint).

    Ids never include BOS/EOS: `data` adds them where the model needs them.
    """

    def __init__(
        self,
        src_proto: bytes,
        tgt_proto: bytes | None = None,
        sources: tuple[str, str] = ("the source model", "the target model"),
    ) -> None:
        """Raises ValueError naming ``sources`` (where each proto came from) if one is damaged."""
        self.joint = tgt_proto is None
        self.src_proto = src_proto
        self.tgt_proto = src_proto if tgt_proto is None else tgt_proto
        self.src = _load(src_proto, sources[0])
        self.tgt = self.src if tgt_proto is None else _load(tgt_proto, sources[1])

    @classmethod
    def train(
        cls,
        src_sentences: Iterable[str],
        tgt_sentences: Iterable[str],
        cfg: SubwordConfig,
        pairs: int | None = None,
    ) -> Tokenizer:
        """Train on the sentences of each side, streamed; with ``pairs`` (how many there are),
        on a random ``cfg.sample_sentences`` per side when there are more."""
        per_side = cfg.sample_sentences if pairs and pairs > cfg.sample_sentences else 0
        if cfg.joint:
            both = itertools.chain(src_sentences, tgt_sentences)
            return cls(train_sentencepiece(both, cfg, 2 * per_side))
        return cls(
            train_sentencepiece(src_sentences, cfg, per_side),
            train_sentencepiece(tgt_sentences, cfg, per_side),
        )

    @property
    def sha256(self) -> str:
        """What identifies the vocabulary: the hash of its model file(s)."""
        digest = hashlib.sha256(self.src_proto)
        if not self.joint:
            digest.update(self.tgt_proto)
        return digest.hexdigest()

    @classmethod
    def train_joint(
        cls, sentences: Iterable[str], cfg: SubwordConfig, user_symbols: Sequence[str]
    ) -> Tokenizer:
        """One vocabulary of ``sentences`` (every language's) with ``user_symbols`` as pieces."""
        return cls(train_sentencepiece(sentences, cfg, user_symbols=user_symbols))

    @property
    def src_vocab_size(self) -> int:
        return int(self.src.get_piece_size())

    @property
    def tgt_vocab_size(self) -> int:
        return int(self.tgt.get_piece_size())

    def encode_src(self, sentences: Sequence[str]) -> list[list[int]]:
        return encode_tagged(self.src, sentences)

    def knows_piece(self, piece: str) -> bool:
        """Whether the source vocabulary holds ``piece`` (a tag, say) as one piece."""
        return bool(self.src.piece_to_id(piece) != UNK_ID)

    def encode_tgt(self, sentences: Sequence[str]) -> list[list[int]]:
        return [list(ids) for ids in self.tgt.encode(list(sentences), out_type=int)]

    def encode_sampled(
        self, pairs: Sequence[tuple[str, str]], alpha: float, nbest_size: int, seed: int
    ) -> tuple[list[list[int]], list[list[int]]]:
        """Source and target ids of ``pairs``, each sentence segmented by sampling: subword
        regularisation for a unigram model (Kudo 2018: one segmentation drawn from the
        ``nbest_size`` best, -1 = all, sharpened by ``alpha``), BPE-dropout for a BPE model
        (Provilkov et al. 2020: each merge skipped with probability ``alpha``; ``nbest_size`` is
        ignored there, though SentencePiece still wants it -1 or > 1).

        The same ``seed`` gives the same segmentations (one thread; SentencePiece's generator).
        """
        spm.set_random_generator_seed(seed)

        def sample(processor: spm.SentencePieceProcessor) -> Callable[[list[str]], list[list[int]]]:
            return lambda texts: processor.encode(
                texts,
                out_type=int,
                enable_sampling=True,
                alpha=alpha,
                nbest_size=nbest_size,
                num_threads=1,
            )

        src = encode_tagged(self.src, [s for s, _ in pairs], sample(self.src))
        tgt = sample(self.tgt)([t for _, t in pairs])
        return src, [list(ids) for ids in tgt]

    def decode_tgt(self, ids: Sequence[int]) -> str:
        """Detokenised text; special ids are dropped."""
        return str(self.tgt.decode([i for i in ids if i > EOS_ID]))

    def src_pieces(self, ids: Sequence[int]) -> list[str]:
        return [str(self.src.id_to_piece(i)) for i in ids]

    def tgt_pieces(self, ids: Sequence[int]) -> list[str]:
        return [str(self.tgt.id_to_piece(i)) for i in ids]

    def save(self, run_dir: Path) -> None:
        """Write the model file(s) into a run directory."""
        files = RunDir(run_dir)
        if self.joint:
            files.joint_tokenizer.write_bytes(self.src_proto)
        else:
            files.src_tokenizer.write_bytes(self.src_proto)
            files.tgt_tokenizer.write_bytes(self.tgt_proto)

    @classmethod
    def load(cls, run_dir: Path) -> Tokenizer:
        """The model file(s) of a run directory.

        Raises:
            FileNotFoundError: no model file (names the command that creates one).
            ValueError: a model file is damaged or not a SentencePiece model (names the file).
        """
        files = RunDir(run_dir)
        joint = files.joint_tokenizer
        if joint.is_file():
            return cls(joint.read_bytes(), sources=(str(joint), str(joint)))
        src, tgt = files.src_tokenizer, files.tgt_tokenizer
        for path in (src, tgt):
            if not path.is_file():
                raise FileNotFoundError(
                    f"no SentencePiece model in {run_dir} (expected {joint.name}, or {src.name} "
                    f"and {tgt.name}); train a run with `seq2seq train` to create one"
                )
        return cls(src.read_bytes(), tgt.read_bytes(), sources=(str(src), str(tgt)))
