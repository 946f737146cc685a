"""Configuration as frozen dataclasses: defaults live here, YAML files and CLI flags override them.

Every field carries what it means (`setting`), which ``seq2seq COMMAND --help`` shows with its
default and, for a ``Literal`` type, its choices (`choices`). Every field is validated in
``__post_init__`` so that a bad value fails at the edge with a message that names it, not deep
inside a training run.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from seq2seq.directions import MULTI30K_LANGUAGES, expand_directions, parse_direction

CellType = Literal["rnn", "gru", "lstm"]
AttentionType = Literal["none", "bahdanau", "dot", "general", "scaled_dot", "scaled_general"]
DecoderType = Literal["luong", "cgru"]
SubwordType = Literal["unigram", "bpe"]
DecodeMethod = Literal["greedy", "beam", "sample"]
# "auto", the default, is what every run saved before there was a choice of method meant: beam
# search when beam_size > 1, greedy search when it is 1.
DecodeMethodSetting = Literal["auto", DecodeMethod]
LRScheduleType = Literal["plateau", "linear", "cosine", "inverse_sqrt"]  # see `schedule`
DirectionSampling = Literal["balanced", "proportional"]  # see `multilingual.balance_directions`

CELL_TYPES: tuple[str, ...] = get_args(CellType)
ATTENTION_TYPES: tuple[str, ...] = get_args(AttentionType)
DECODER_TYPES: tuple[str, ...] = get_args(DecoderType)
SUBWORD_TYPES: tuple[str, ...] = get_args(SubwordType)
DECODE_METHODS: tuple[str, ...] = get_args(DecodeMethod)
DECODE_METHOD_SETTINGS: tuple[str, ...] = get_args(DecodeMethodSetting)
LR_SCHEDULES: tuple[str, ...] = get_args(LRScheduleType)
DIRECTION_SAMPLINGS: tuple[str, ...] = get_args(DirectionSampling)
# In a files corpus with several directions, data.train and data.valid name each direction's
# files through these placeholders.
DIRECTION_PLACEHOLDERS = ("{src}", "{tgt}")


# GNMT's alpha: Wu et al. (2016, §7) tuned it in [0, 1] and shipped runs use up to 1.4. Above 1,
# lp(n) grows faster than a log-probability of a roughly constant cost per token falls, so every
# extra token already raises the score; by 2 the ranking is all but "longest first", and beyond it
# only ((5 + n) / 6) ** alpha grows towards float overflow (alpha 1000 raised OverflowError).
# The demo's slider stops at the same value.
MAX_LENGTH_PENALTY = 2.0


def setting(default: Any, help: str) -> Any:
    """A config field and what it means: ``seq2seq COMMAND --help`` shows the text (and, for a
    ``Literal`` type, the choices). Example: ``lr: float = setting(2e-3, "peak learning rate")``.
    """
    return field(default=default, metadata={"help": help})


def section(settings: type, help: str) -> Any:
    """A section of `RunConfig` (its defaults: ``settings()``) and what it holds; ``--help``
    shows the text above the section's flags."""
    return field(default_factory=settings, metadata={"help": help})


def choices(settings: type, name: str) -> tuple[str, ...]:
    """The values a ``Literal``-typed field of dataclass ``settings`` takes (() for other types),
    read from its type so that they cannot drift from it."""
    kind = get_type_hints(settings)[name]
    return get_args(kind) if get_origin(kind) is Literal else ()


def _check_finite(obj: object) -> None:
    """NaN passes every comparison and inf breaks ceil(): refuse both in every float field."""
    for f in fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{f.name} must be a finite number, got {value!r}")


def _check_choice(name: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(options)}")


def _check_positive(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value!r}")


def _check_fraction(name: str, value: float, *, closed: bool = False) -> None:
    upper_ok = value <= 1.0 if closed else value < 1.0
    if not (0.0 <= value and upper_ok):
        bound = "[0, 1]" if closed else "[0, 1)"
        raise ValueError(f"{name} must be in {bound}, got {value!r}")


@dataclass(frozen=True)
class CleanConfig:
    """What `corpus.clean_pairs` keeps: lengths are counted in whitespace-separated words."""

    max_words: int = setting(80, "drop a training pair with a side of more words than this")
    max_ratio: float = setting(
        3.0,
        "drop a training pair whose longer side has more than this many times the words of "
        "its shorter side",
    )
    min_words: int = setting(1, "drop a training pair with a side of fewer words than this")

    def __post_init__(self) -> None:
        _check_finite(self)
        _check_positive(self, "max_words", "min_words")
        if self.max_ratio < 1.0:
            raise ValueError(f"max_ratio must be >= 1, got {self.max_ratio!r}")
        if self.min_words > self.max_words:
            raise ValueError(f"min_words={self.min_words} exceeds max_words={self.max_words}")


# How training sentences are segmented: training policy, which a resumed run may change, and
# no part of the vocabulary or of a prepared corpus.
SUBWORD_SAMPLING_FIELDS = ("sampling_alpha", "nbest_size")


@dataclass(frozen=True)
class SubwordConfig:
    """SentencePiece settings; trained on the training split only."""

    model_type: SubwordType = setting(
        "unigram", "SentencePiece's segmentation: a unigram language model (Kudo 2018) or BPE"
    )
    vocab_size: int = setting(8000, "subword pieces per vocabulary")
    joint: bool = setting(
        True, "one vocabulary for both languages (what model.share_embeddings needs)"
    )
    character_coverage: float = setting(
        1.0, "share of the training text's characters that get their own piece, in [0, 1]"
    )
    byte_fallback: bool = setting(
        True, "spell characters outside the vocabulary as bytes, so that none becomes <unk>"
    )
    sample_sentences: int = setting(
        1_000_000,
        "SentencePiece trains on this many training sentences per side, drawn at random, when "
        "the corpus has more (its input_sentence_size); 0 = on all of them",
    )
    # How the training sentences are segmented: training policy, not the vocabulary, so a
    # resumed run may change it (`session.resumed_config`).
    sampling_alpha: float = setting(
        0.0,
        "subword regularisation: 0 = off; else every epoch the training sentences are segmented "
        "anew by sampling (never for validation or decoding). unigram: segmentations are drawn "
        "with probability p**alpha (Kudo 2018), so a smaller alpha gives more varied and longer "
        "ones (0.1 with nbest_size 64, or about 0.5 with nbest_size -1, keep the length close "
        "to the plain one); bpe: the probability of skipping each merge (BPE-dropout, 0.1 usual)",
    )
    nbest_size: int = setting(
        -1,
        "subword regularisation with unigram: draw from the nbest_size best segmentations "
        "(-1 = all of them, else > 1); bpe ignores it",
    )

    def __post_init__(self) -> None:
        _check_finite(self)
        _check_choice("model_type", self.model_type, SUBWORD_TYPES)
        if self.vocab_size < 16:
            raise ValueError(f"vocab_size must be at least 16, got {self.vocab_size}")
        if self.sample_sentences < 0:
            raise ValueError(f"sample_sentences must be >= 0, got {self.sample_sentences}")
        _check_fraction("character_coverage", self.character_coverage, closed=True)
        if self.sampling_alpha < 0 or (self.model_type == "bpe" and self.sampling_alpha > 1):
            bound = "in [0, 1] with bpe (a probability)" if self.model_type == "bpe" else ">= 0"
            raise ValueError(f"sampling_alpha must be {bound}, got {self.sampling_alpha!r}")
        if not (self.nbest_size == -1 or self.nbest_size > 1):  # 0 and 1 would not sample
            raise ValueError(
                f"nbest_size must be -1 (all segmentations) or > 1, got {self.nbest_size}"
            )


@dataclass(frozen=True)
class DataConfig:
    """Where the parallel text comes from.

    ``corpus="multi30k"`` downloads Multi30k task 1; ``corpus="files"`` reads ``train``/``valid``
    as ``SRC_PATH,TGT_PATH`` pairs or as one TSV path each.
    """

    corpus: Literal["multi30k", "files"] = setting(
        "multi30k", "multi30k downloads Multi30k task 1; files reads data.train and data.valid"
    )
    src_lang: str = setting("de", "source language code, e.g. de")
    tgt_lang: str = setting("en", "target language code, e.g. en")
    data_dir: str = setting(
        "data", "folder of the downloaded corpus, of prepare's counts and of prepared corpora"
    )
    train: str = setting(
        "", "training pairs for corpus files: SRC_PATH,TGT_PATH (line-aligned) or one .tsv"
    )
    valid: str = setting(
        "", "validation pairs for corpus files: SRC_PATH,TGT_PATH (line-aligned) or one .tsv"
    )
    mirror: str = setting("", "fetch Multi30k from this base URL or local folder instead")
    max_train_pairs: int = setting(
        0, "train on the first N cleaned pairs only, for quick runs; 0 = all"
    )
    max_valid_pairs: int = setting(0, "validate on the first N pairs only; 0 = all")
    # A string (comma-separated) rather than a tuple, so that a saved config reads back equal
    # from JSON; YAML may give a list (`_coerce`).
    directions: str = setting(
        "",
        "one multilingual model for several directions, SRC-TGT each, comma-separated or a YAML "
        "list (e.g. en-de,de-en,en-fr), or all (Multi30k's 12 between en, de, fr, cs); the "
        "source gets a <2TGT> token "
        "(Johnson et al. 2017) and src_lang/tgt_lang are not used; with corpus files, "
        "data.train and data.valid name each direction's files with {src} and {tgt} "
        "(train.{src},train.{tgt} or pairs.{src}-{tgt}.tsv); max_train_pairs and "
        "max_valid_pairs count per direction. Empty: the one direction src_lang-tgt_lang",
    )
    direction_sampling: DirectionSampling = setting(
        "balanced",
        "with directions: balanced trains on as many pairs of every direction as the largest "
        "has (a smaller direction's pairs repeat, drawn with a fixed seed), so each direction is "
        "seen evenly; proportional trains on every pair once. Either way the batches are cut "
        "from all directions together, so each batch mixes them",
    )
    prepared: str = setting(
        "",
        "a prepared corpus folder: seq2seq prepare writes it, seq2seq train trains on it (its "
        "corpus, languages and vocabulary) without reading the text; empty: a folder in "
        "data_dir/prepared named by the input files and settings, prepared when not up to date",
    )

    def __post_init__(self) -> None:
        _check_finite(self)
        _check_choice("corpus", self.corpus, ("multi30k", "files"))
        if self.corpus == "files" and not (self.train and self.valid) and not self.prepared:
            raise ValueError("corpus='files' needs train and valid paths (SRC,TGT or a .tsv)")
        if self.src_lang == self.tgt_lang:
            raise ValueError(f"src_lang and tgt_lang are both {self.src_lang!r}")
        if self.max_train_pairs < 0 or self.max_valid_pairs < 0:
            raise ValueError("max_train_pairs and max_valid_pairs must be >= 0")
        _check_choice("direction_sampling", self.direction_sampling, DIRECTION_SAMPLINGS)
        # Stored expanded ("all" becomes its 12), so a saved run lists what it was trained on.
        if not isinstance(self.directions, str):
            raise ValueError(
                f"directions must be text such as 'en-de,de-en' or 'all', got {self.directions!r}"
            )
        given = [part for part in self.directions.split(",") if part.strip()]
        object.__setattr__(self, "directions", ",".join(expand_directions(given)))
        if self.directions:
            self._check_directions()

    @property
    def direction_names(self) -> tuple[str, ...]:
        """``directions`` one by one (``("en-de", "de-en")``); () for a bilingual run."""
        return tuple(self.directions.split(",")) if self.directions else ()

    def _check_directions(self) -> None:
        languages = {lang for d in self.direction_names for lang in parse_direction(d)}
        if self.corpus == "multi30k":
            unknown = sorted(languages - set(MULTI30K_LANGUAGES))
            if unknown:
                raise ValueError(
                    f"directions: Multi30k has no {', '.join(unknown)}; its languages are "
                    f"{', '.join(MULTI30K_LANGUAGES)}"
                )
            return
        for name in ("train", "valid"):
            spec = getattr(self, name)
            if not all(placeholder in spec for placeholder in DIRECTION_PLACEHOLDERS):
                raise ValueError(
                    f"{name}={spec!r} must name each direction's files with {{src}} and {{tgt}} "
                    "when directions are given, e.g. train.{src},train.{tgt} or "
                    "pairs.{src}-{tgt}.tsv"
                )

    @property
    def multilingual(self) -> bool:
        """Whether the run trains one model for ``directions`` (with target-language tags)."""
        return bool(self.directions)


@dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters of `model.Seq2Seq`; saved in every checkpoint and used to rebuild it."""

    cell: CellType = setting(
        "gru", "recurrent cell of encoder and decoder: tanh RNN (Elman), GRU or LSTM"
    )
    attention: AttentionType = setting(
        "bahdanau",
        "how the decoder looks at the source: none (the encoder's final state only, a "
        "baseline), bahdanau (additive, Bahdanau et al. 2015), dot or general (multiplicative, "
        "Luong et al. 2015), scaled_dot or scaled_general (the same scores divided by "
        "sqrt(hidden_size), Vaswani et al. 2017, so that wide states do not saturate the softmax)",
    )
    decoder: DecoderType = setting(
        "luong",
        "luong: the RNN step, then attention, then the attentional vector (Luong et al. 2015); "
        "cgru: the conditional GRU of Nematus and Marian (Sennrich et al. 2017): a GRU "
        "transition, attention queried with its state, a second GRU transition fed the "
        "attention's context, and a deep output; it needs cell gru, an attention other than "
        "none and input_feeding false, and stacks num_layers - 1 plain GRU layers on top",
    )
    embed_size: int = setting(256, "width of the word embeddings")
    hidden_size: int = setting(
        512, "width of the decoder state; a bidirectional encoder has half of it per direction"
    )
    num_layers: int = setting(1, "stacked RNN layers in the encoder and in the decoder")
    bidirectional: bool = setting(True, "the encoder reads the source in both directions")
    dropout: float = setting(
        0.3, "dropout rate of the embeddings, RNN outputs and output layer, in [0, 1)"
    )
    embed_dropout: float = setting(
        0.0, "probability of dropping a whole word's embedding (Gal & Ghahramani 2016), in [0, 1)"
    )
    input_feeding: bool = setting(
        True,
        "feed the last attentional vector into the next step (Luong et al. 2015, §3.3); the "
        "luong decoder only",
    )
    tie_embeddings: bool = setting(
        True, "the output layer shares the target embedding matrix (Press & Wolf 2017)"
    )
    share_embeddings: bool = setting(
        True, "source and target share one embedding matrix (joint vocabulary only)"
    )
    src_vocab_size: int = setting(8000, "source vocabulary size; set from the tokenizer")
    tgt_vocab_size: int = setting(8000, "target vocabulary size; set from the tokenizer")

    def __post_init__(self) -> None:
        _check_finite(self)
        _check_choice("cell", self.cell, CELL_TYPES)
        _check_choice("attention", self.attention, ATTENTION_TYPES)
        _check_choice("decoder", self.decoder, DECODER_TYPES)
        if self.decoder == "cgru":
            self._check_conditional_gru()
        _check_positive(
            self, "embed_size", "hidden_size", "num_layers", "src_vocab_size", "tgt_vocab_size"
        )
        _check_fraction("dropout", self.dropout)
        _check_fraction("embed_dropout", self.embed_dropout)
        if self.bidirectional and self.hidden_size % 2:
            raise ValueError(
                f"hidden_size={self.hidden_size} must be even with a bidirectional encoder"
            )
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError(
                "share_embeddings needs one joint vocabulary, but "
                f"src_vocab_size={self.src_vocab_size} != tgt_vocab_size={self.tgt_vocab_size}"
            )

    def _check_conditional_gru(self) -> None:
        if self.cell != "gru":
            raise ValueError(
                f"decoder='cgru' is a conditional GRU: it needs cell='gru', got {self.cell!r} "
                "(or choose decoder='luong')"
            )
        if self.attention == "none":
            raise ValueError(
                "decoder='cgru' feeds the attention's context to its second GRU transition: it "
                f"needs an attention other than 'none' (one of {', '.join(ATTENTION_TYPES[1:])})"
            )
        if self.input_feeding:
            raise ValueError(
                "decoder='cgru' has no input feeding (its second transition already carries the "
                "context forward): set input_feeding to false (--model.input_feeding false)"
            )

    @property
    def encoder_hidden_size(self) -> int:
        """Per direction, so that the encoder's output is always hidden_size wide."""
        return self.hidden_size // 2 if self.bidirectional else self.hidden_size


def _check_run_name(name: str) -> None:
    """The run directory is out_dir/name: a name must stay one folder inside out_dir."""
    example = "for example --train.name de-en-gru"
    if not name.strip():
        raise ValueError(f"train.name must not be empty ({example})")
    if name != name.strip():
        raise ValueError(f"train.name must not start or end with spaces, got {name!r}")
    if any(sep in name for sep in ("/", "\\", "\0")) or ".." in name or name == ".":
        raise ValueError(
            f"train.name={name!r} must name one folder inside train.out_dir, without '/', '\\' "
            f"or '..' ({example})"
        )


@dataclass(frozen=True)
class TrainConfig:
    """The training loop's policy: optimisation, batching, validation, stopping."""

    name: str = setting("run", "the run's folder name, inside out_dir")
    out_dir: str = setting("checkpoints", "folder that holds the run folders")
    seed: int = setting(1, "seed of the initial weights, the batch order and dropout")
    max_tokens: int = setting(
        3000,
        "tokens per batch and process: sentences x longest side, padding included (as fairseq)",
    )
    max_epochs: int = setting(30, "stop after this many passes over the training data")
    max_steps: int = setting(0, "stop after this many optimiser steps; 0 = no limit")
    max_minutes: float = setting(0.0, "stop after this many minutes of training; 0 = no limit")
    lr: float = setting(2e-3, "Adam's learning rate (the peak, after any warm-up)")
    weight_decay: float = setting(0.0, "Adam's L2 penalty on the weights")
    lr_patience: int = setting(
        2, "plateau schedule: validations without a BLEU gain before the learning rate is cut"
    )
    lr_factor: float = setting(
        0.5, "plateau schedule: the learning rate is multiplied by this when cut, in [0, 1)"
    )
    min_lr: float = setting(
        1e-5, "the learning rate's floor, where the linear and cosine schedules end"
    )
    warmup_steps: int = setting(
        0, "raise the learning rate linearly from 0 over this many steps; 0 = no warm-up"
    )
    lr_schedule: LRScheduleType = setting(
        "plateau",
        "the learning rate after warm-up: plateau multiplies it by lr_factor when validation "
        "BLEU has not risen for lr_patience validations; linear and cosine bring it down to "
        "min_lr exactly at the end of the budget (max_steps if set, else the share of "
        "max_minutes trained, else max_epochs); inverse_sqrt falls as 1/sqrt(step) from the "
        "end of warm-up, never below min_lr",
    )
    clip_norm: float = setting(
        1.0, "clip the gradients' global norm to this before each step; 0 = no clipping"
    )
    label_smoothing: float = setting(
        0.1, "probability mass spread over the vocabulary in the loss, in [0, 1)"
    )
    teacher_forcing: float = setting(
        1.0,
        "probability of feeding the reference token rather than the model's own (below 1: "
        "scheduled sampling), in [0, 1]",
    )
    valid_every: int = setting(0, "steps between validations; 0 = once per epoch")
    checkpoint_every: int = setting(
        500, "steps between resumable checkpoints (at most this many are lost to a crash)"
    )
    log_every: int = setting(50, "steps between log lines")
    patience: int = setting(
        5, "stop after this many validations without a BLEU gain; 0 = never stop early"
    )
    valid_max_pairs: int = setting(
        0, "validation pairs translated for BLEU; 0 = the whole validation set"
    )
    valid_beam: int = setting(1, "beam size of validation's translations; 1 = greedy")
    threads: int = setting(0, "torch's intra-op threads; 0 = torch's default")
    device: str = setting("auto", "auto (CUDA if available), cpu or cuda")
    amp: bool = setting(True, "mixed precision (float16) on a GPU; ignored on a CPU")
    cpu_bf16: bool = setting(
        False,
        "bfloat16 autocast on a CPU: matrix products in bfloat16, weights, Adam and the loss in "
        "float32; 1.3-1.9x faster steps on a CPU with native bfloat16 (AVX512-BF16 or AMX), "
        "slower on one without; ignored on a GPU",
    )
    progress: Literal["auto", "bar", "log"] = setting(
        "auto", "a progress bar, log lines, or auto: a bar on a terminal, log lines otherwise"
    )
    average_last: int = setting(
        5,
        "weight snapshots kept, one per validation; at the end of training their mean replaces "
        "the best weights if it scores higher on validation (0 = off)",
    )

    def __post_init__(self) -> None:
        _check_finite(self)
        _check_run_name(self.name)
        _check_positive(self, "max_tokens", "max_epochs", "lr", "checkpoint_every", "log_every")
        _check_fraction("label_smoothing", self.label_smoothing)
        _check_fraction("teacher_forcing", self.teacher_forcing, closed=True)
        _check_fraction("lr_factor", self.lr_factor)
        _check_choice("progress", self.progress, ("auto", "bar", "log"))
        _check_choice("device", self.device, ("auto", "cpu", "cuda"))
        _check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        if self.lr_schedule != "plateau" and self.min_lr > self.lr:
            raise ValueError(
                f"min_lr={self.min_lr!r} exceeds lr={self.lr!r}: lr_schedule={self.lr_schedule} "
                "would raise the rate instead of annealing it"
            )
        for name in (
            "max_steps",
            "max_minutes",
            "valid_every",
            "patience",
            "clip_norm",
            "warmup_steps",
            "threads",
            "valid_max_pairs",
            "weight_decay",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.valid_beam < 1:
            raise ValueError(f"valid_beam must be >= 1, got {self.valid_beam}")
        if self.average_last < 0 or self.average_last == 1:
            raise ValueError(
                f"average_last must be 0 (off) or at least 2 snapshots, got {self.average_last}"
            )


@dataclass(frozen=True)
class DecodeConfig:
    """How `search` turns a model into output ids: which method, and its settings."""

    method: DecodeMethodSetting = setting(
        "auto",
        "greedy search, beam search or random sampling; auto: beam search if beam_size > 1, "
        "else greedy",
    )
    beam_size: int = setting(5, "hypotheses kept per sentence in beam search")
    nbest: int = setting(1, "hypotheses returned per sentence, best first")
    length_penalty: float = setting(
        1.0,
        "GNMT's alpha (Wu et al. 2016, §7): scores are divided by ((5 + length) / 6) ** alpha; "
        f"0 = raw log-probability; in [0, {MAX_LENGTH_PENALTY:g}]",
    )
    max_length_ratio: float = setting(
        2.0, "an output has at most this many times its source's tokens, plus max_length_offset"
    )
    max_length_offset: int = setting(
        10, "tokens an output may have beyond max_length_ratio times its source's"
    )
    # Stopping at beam_size finished hypotheses is what fairseq and GNMT do; the exact stop is
    # kept for comparison, since with a length penalty it usually runs to the length limit.
    exhaustive: bool = setting(
        False,
        "beam search: stop a sentence only once no active hypothesis can beat its finished "
        "ones, rather than at beam_size finished ones",
    )
    temperature: float = setting(
        1.0, "sampling: divide the log-probabilities by this; below 1 sharper, above 1 flatter"
    )
    top_k: int = setting(0, "sampling: draw from the K likeliest tokens only; 0 = all")
    top_p: float = setting(
        1.0,
        "sampling: draw from the smallest set of likeliest tokens whose probability reaches P "
        "(nucleus sampling, Holtzman et al. 2020), in (0, 1]",
    )
    num_samples: int = setting(1, "sampling: outputs drawn per sentence; nbest of them returned")
    seed: int = setting(0, "sampling: the same seed and input give the same samples")

    def __post_init__(self) -> None:
        _check_finite(self)
        _check_choice("method", self.method, DECODE_METHOD_SETTINGS)
        _check_positive(
            self, "beam_size", "nbest", "max_length_ratio", "temperature", "num_samples"
        )
        if not 0.0 <= self.length_penalty <= MAX_LENGTH_PENALTY:
            raise ValueError(
                f"length_penalty must be in [0, {MAX_LENGTH_PENALTY:g}], got "
                f"{self.length_penalty!r} (0 ranks by log-probability; 0.6-1.4 are usual)"
            )
        if self.max_length_offset < 0:
            raise ValueError(f"max_length_offset must be >= 0, got {self.max_length_offset}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 keeps every token), got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1] (1 keeps every token), got {self.top_p!r}")
        if not 0 <= self.seed < 2**63:  # what torch.Generator.manual_seed takes
            raise ValueError(f"seed must be from 0 to 2**63 - 1, got {self.seed}")
        if self.nbest > self.rows_per_sentence:
            raise ValueError(f"nbest={self.nbest} exceeds {self._most_hypotheses()}")

    @property
    def resolved_method(self) -> DecodeMethod:
        """The method `search` runs: ``method``, with ``auto`` resolved by the beam size."""
        if self.method == "auto":
            return "greedy" if self.beam_size == 1 else "beam"
        return self.method

    @property
    def rows_per_sentence(self) -> int:
        """Decoder rows a sentence takes in a search batch: 1 (greedy), beam_size (beam) or
        num_samples (sample); also the most hypotheses its method returns."""
        rows = {"greedy": 1, "beam": self.beam_size, "sample": self.num_samples}
        return rows[self.resolved_method]

    def _most_hypotheses(self) -> str:
        if self.resolved_method == "sample":
            return f"num_samples={self.num_samples}"
        if self.method == "greedy":
            return "1: greedy search gives one hypothesis"
        return f"beam_size={self.beam_size}"

    def override(self, **changes: Any) -> DecodeConfig:
        """These settings with ``changes`` (field names; a None value keeps the setting).

        A beam size given without a method means beam search of that width (greedy at 1), as
        the beam size alone always has: ``method`` becomes ``auto``.

        Raises:
            ValueError: an unknown setting, or a value or combination that is not valid.
        """
        known = [f.name for f in fields(self)]
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise ValueError(
                f"unknown decoding setting(s) {', '.join(unknown)}; valid: {', '.join(known)}"
            )
        given = {name: value for name, value in changes.items() if value is not None}
        if "beam_size" in given and "method" not in given:
            given["method"] = "auto"
        return dataclasses.replace(self, **given)


@dataclass(frozen=True)
class ShipConfig:
    """What `ship` tries on a finished run, and what it may cost to ship smaller or faster."""

    beams: tuple[int, ...] = setting((1, 5, 10), "beam sizes scored on the validation set")
    length_penalties: tuple[float, ...] = setting(
        (0.6, 1.0, 1.4),
        "the length-penalty grid, increasing; while its largest value scores best it grows by "
        f"its last step, up to {MAX_LENGTH_PENALTY:g}",
    )
    choice_tolerance: float = setting(
        0.1, "BLEU: the smallest beam within this of the best validation score is chosen"
    )
    fp16_tolerance: float = setting(
        0.1, "BLEU: float16 weights may lose this much on validation and still be stored"
    )
    test_sets: tuple[str, ...] = setting(
        (),
        "test sets scored once all is chosen, in every direction of a multilingual run; none "
        "given: Multi30k's that have the language pair",
    )
    valid_pairs: int = setting(0, "the first N validation pairs choose the decoding; 0 = all")
    mirror: str = setting("", "Multi30k: another base URL or a folder; empty: the run's")
    n_bootstrap: int = setting(1000, "bootstrap resamples of the test scores' intervals")

    def __post_init__(self) -> None:
        _check_finite(self)
        if not self.beams or min(self.beams) < 1:
            raise ValueError(f"beams must be at least 1, got {self.beams}")
        grid = self.length_penalties
        if not grid or list(grid) != sorted(set(grid)):
            raise ValueError(f"length_penalties must be distinct and increasing, got {grid}")
        if not (0.0 <= grid[0] and grid[-1] <= MAX_LENGTH_PENALTY):
            raise ValueError(f"length_penalties must be in [0, {MAX_LENGTH_PENALTY:g}], got {grid}")
        for name in ("choice_tolerance", "fp16_tolerance", "valid_pairs", "n_bootstrap"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")

    def as_flags(self) -> list[str]:
        """The `seq2seq ship` flags that give these settings where they differ from the
        defaults, ``mirror`` left out (where the data comes from changes no choice)."""
        flags = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "mirror" or value == f.default:
                continue
            values = value if isinstance(value, tuple) else (value,)
            flags.append(" ".join([f"--{f.name.replace('_', '-')}", *map(str, values)]))
        return flags


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs; saved in its run directory (`RunDir.config`)."""

    data: DataConfig = section(DataConfig, "where the parallel text comes from")
    clean: CleanConfig = section(
        CleanConfig, "which training pairs are kept (lengths in whitespace-separated words)"
    )
    subword: SubwordConfig = section(SubwordConfig, "the SentencePiece vocabulary")
    model: ModelConfig = section(ModelConfig, "the encoder-decoder's architecture")
    train: TrainConfig = section(
        TrainConfig, "the training loop: optimisation, batching, validation, stopping"
    )
    decode: DecodeConfig = section(
        DecodeConfig, "how translate and evaluate decode by default (their flags change it)"
    )

    def __post_init__(self) -> None:
        if self.data.multilingual and not self.subword.joint:
            raise ValueError(
                "data.directions needs one joint vocabulary (subword.joint true): every language "
                "is read and written by the same model"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        return build(cls, raw, where="config")


T = TypeVar("T")


def build(cls: type[T], raw: dict[str, Any], where: str) -> T:
    """Build dataclass ``cls`` from a (nested) dict; an unknown key is an error naming it."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be a mapping, got {type(raw).__name__}")
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ValueError(
            f"unknown key(s) in {where}: {', '.join(unknown)}; valid keys: {', '.join(known)}"
        )
    kwargs: dict[str, Any] = {}
    for name, value in raw.items():
        default = getattr(cls(), name) if _has_defaults(cls) else None
        if dataclasses.is_dataclass(default):
            kwargs[name] = build(type(default), value, where=f"{where}.{name}")
        else:
            kwargs[name] = _coerce(value, default, f"{where}.{name}")
    return cls(**kwargs)


def _has_defaults(cls: type) -> bool:
    try:
        cls()
        return True
    except TypeError:
        return False


def _coerce(value: Any, default: Any, where: str) -> Any:
    """Accept ints for floats; otherwise the value must have the default's type."""
    if default is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false, got {value!r}")
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, str) and isinstance(value, list):  # directions: [en-de, de-en]
        if not all(isinstance(item, str) for item in value):
            raise ValueError(f"{where} must be text or a list of texts, got {value!r}")
        return ",".join(value)
    if not isinstance(value, type(default)) or isinstance(value, bool) != isinstance(default, bool):
        raise ValueError(f"{where} must be {type(default).__name__}, got {value!r}")
    return value


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config (sections: data, clean, subword, model, train, decode) into a dict."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        with path.open(encoding="utf-8") as f:
            raw = yaml.safe_load(f) or {}
    except yaml.YAMLError as err:
        # str(err) spans lines (the offending text with a caret); its problem and place suffice
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or type(err).__name__
        raise ValueError(f"{path} is not valid YAML: {problem}{where}") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text (byte offset {err.start})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: top level must be a mapping of sections")
    return raw
