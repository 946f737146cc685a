"""`Translator`: a trained run, or an ensemble of runs, as text in, text out — the one door for
the CLI and the demo."""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from seq2seq import checkpoint
from seq2seq.config import DecodeConfig, RunConfig
from seq2seq.corpus import normalize
from seq2seq.data import ParallelDataset
from seq2seq.directions import Direction, choose_direction, tag_source
from seq2seq.ensemble import Ensemble
from seq2seq.language_check import target_language_warning
from seq2seq.model import Seq2Seq
from seq2seq.multilingual import run_directions
from seq2seq.objective import teacher_forced_loss
from seq2seq.rundir import RunDir, RunInfo
from seq2seq.search import decode_corpus
from seq2seq.tokenizer import Tokenizer

MAX_INPUT_TOKENS = 400  # subwords; longer input is refused rather than decoded badly
MAX_INPUT_CHARS = 2000


@dataclass
class Translation:
    """One source sentence's result."""

    text: str
    nbest: list[tuple[str, float]]  # (text, length-normalised log-probability), best first
    source_pieces: list[str]
    output_pieces: list[str]
    attention: np.ndarray | None  # (len(output_pieces), len(source_pieces)); with_attention only
    score: float = 0.0
    error: str = ""  # why it was not translated (translate(..., skip_invalid=True) only)
    warning: str = ""  # the input looks like the target language (translate(check_source=True))


@dataclass(frozen=True)
class RunFacts:
    """What `Translator.facts` knows of the model it serves: `Translator.describe`, typed."""

    checkpoint: Path | None  # the run directory or ensemble folder, if loaded from one
    parameters: int  # of every member of an ensemble
    language_pair: tuple[str, str]  # (source, target) language codes
    config: RunConfig  # an ensemble's first member's
    training: RunInfo  # what training recorded about the run (an ensemble's first member)
    device: str  # where the model runs now (not where it trained: training.device)
    members: tuple[Path, ...] = ()  # the run directories decoded together: several = an ensemble
    directions: tuple[Direction, ...] = ()  # every direction it was trained on (one if bilingual)


DEVICES = "auto, cpu, cuda or cuda:N"


def pick_device(device: str) -> torch.device:
    """``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        ValueError: another name (``tpu``, ``meta``, ...), or a CUDA device that is not there.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    kind, _, index = device.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise ValueError(f"device {device!r} is not one of {DEVICES}")
    if not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but no CUDA device is available; use cpu")
    if index and int(index) >= torch.cuda.device_count():
        raise ValueError(
            f"device {device!r} requested but there are {torch.cuda.device_count()} CUDA "
            f"device(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}"
        )
    return torch.device(device)


_Model = TypeVar("_Model", bound=torch.nn.Module)


def quantize_dynamic_int8(model: _Model) -> _Model:
    """A copy with int8 weights in its RNNs and linear layers (an ensemble's: in every member),
    activations quantized on the fly.

    Decoding on a CPU is dominated by the output projection's weight reads; int8 makes them 4x
    smaller (bench/RESULTS.md, "int8 dynamic quantization": on the shipped de-en model, beam 5,
    2.6x the sentences per second at batch 64 and 4.6x at batch 1, test BLEU unchanged; measured
    by bench/quantize.py). A tied output layer gets its own int8 copy, the
    embedding stays fp32. torch.ao.quantization is deprecated but its replacement was slower.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*deprecated")
        quantized = torch.ao.quantization.quantize_dynamic(
            model, {torch.nn.GRU, torch.nn.LSTM, torch.nn.Linear}, dtype=torch.qint8
        )
    return quantized.eval()


def source_text(sentence: str) -> str:
    """What the model reads of a sentence: its printable characters and spaces, normalised."""
    return normalize("".join(ch for ch in sentence if ch.isprintable() or ch.isspace()))


class Translator:
    """A model (or an `Ensemble` of several), its tokenizer and its decoding defaults.

    A multilingual model translates into any target language it was trained on
    (``translate(..., target_lang="fr")``, or a `toward` view); by default into its first
    direction's target (`language_pair`).
    """

    def __init__(
        self,
        model: Seq2Seq | Ensemble,
        tokenizer: Tokenizer,
        cfg: RunConfig,
        info: dict[str, Any] | None = None,
        run_dir: Path | None = None,
        members: Sequence[Path] = (),
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.info = info or {}
        self.run_dir = run_dir
        self.members = tuple(members)  # the run directories loaded; several for an ensemble
        self.directions = run_directions(cfg.data)  # what it was trained on
        self.direction = self.directions[0]  # what it translates unless told (`toward`)
        self.device = next(model.parameters()).device
        # whether the model runs with dynamic int8 weights (`quantize_dynamic_int8`)
        self.quantized = any(
            type(module).__module__.startswith("torch.ao.nn.quantized")
            for module in model.modules()
        )

    @classmethod
    def from_run(
        cls, run_dir: str | Path, device: str = "auto", quantize: bool = False
    ) -> Translator:
        """Load a run directory: its config, best weights and SentencePiece model (`RunDir`);
        or an ensemble folder: the runs its ensemble.json lists, as `from_runs` loads them.

        ``quantize`` applies dynamic int8 quantization (CPU only); check its BLEU with
        ``bench/quantize.py`` before relying on it.
        """
        run_dir = Path(run_dir)
        ensemble = RunDir(run_dir).is_ensemble()
        members = checkpoint.load_ensemble(run_dir) if ensemble else [run_dir]
        return cls._load(members, device, quantize, run_dir)

    @classmethod
    def from_runs(
        cls, run_dirs: Sequence[str | Path], device: str = "auto", quantize: bool = False
    ) -> Translator:
        """Several runs decoded as one `Ensemble`: at every step the mean of their
        log-probabilities. One run (or ensemble folder) alone is `from_run`.

        The runs must share one SentencePiece model and language pair (ValueError naming the
        runs otherwise); their architectures may differ. The config, and so the decoding
        defaults (`decode_config`), and the training facts are the first run's.
        """
        paths = [Path(run_dir) for run_dir in run_dirs]
        if not paths:
            raise ValueError("from_runs needs at least one run directory")
        if len(paths) == 1:
            return cls.from_run(paths[0], device, quantize)
        return cls._load(paths, device, quantize, run_dir=None)

    @classmethod
    def _load(
        cls, run_dirs: Sequence[Path], device: str, quantize: bool, run_dir: Path | None
    ) -> Translator:
        torch_device = pick_device(device)
        if quantize and torch_device.type != "cpu":
            raise ValueError(f"quantize=True needs device 'cpu', got {torch_device.type!r}")
        runs = checkpoint.load_runs(run_dirs, torch_device)
        first = runs[0]
        model = first.model if len(runs) == 1 else Ensemble([run.model for run in runs])
        if quantize:
            model = quantize_dynamic_int8(model)
        return cls(model, first.tokenizer, first.cfg, first.info, run_dir, run_dirs)

    @property
    def language_pair(self) -> tuple[str, str]:
        """The (source, target) it translates unless told otherwise."""
        return self.direction.src, self.direction.tgt

    @property
    def multilingual(self) -> bool:
        """Whether the model reads a target-language tag (`directions`)."""
        return self.cfg.data.multilingual

    @property
    def target_languages(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(d.tgt for d in self.directions))

    def toward(self, target_lang: str, source_lang: str | None = None) -> Translator:
        """This translator (sharing its model) translating into ``target_lang``, from
        ``source_lang`` if given: a direction it was trained on.

        Raises:
            ValueError: a direction it was not trained on; the message lists its directions.
        """
        view = copy.copy(self)
        view.direction = choose_direction(self.directions, target_lang, source_lang)
        return view

    def _tagged(self, text: str) -> str:
        """What the model reads: a multilingual model's source asks for its target language."""
        if not self.multilingual or not text:
            return text
        return tag_source(text, self.direction.tgt)

    def encode_one(self, index: int, sentence: object) -> list[int]:
        """Source ids of one sentence ([] if blank); ValueError naming what is wrong with it."""
        ids, problem = self._encode_checked(sentence)
        if problem:
            raise ValueError(f"sentence {index} {problem}")
        return ids

    def _encode_checked(self, sentence: object) -> tuple[list[int], str]:
        """Source ids and "", or [] and what is wrong ("has 2400 characters; the limit is ...")."""
        if not isinstance(sentence, str):
            return [], f"is {type(sentence).__name__}, not a string"
        if len(sentence) > MAX_INPUT_CHARS:
            return [], f"has {len(sentence)} characters; the limit is {MAX_INPUT_CHARS}"
        ids = self.tokenizer.encode_src([self._tagged(source_text(sentence))])[0]
        if len(ids) > MAX_INPUT_TOKENS:
            return [], f"has {len(ids)} subword tokens; the limit is {MAX_INPUT_TOKENS}"
        return ids, ""

    def encode(
        self, sentences: list[str], skip_invalid: bool = False
    ) -> tuple[list[list[int]], list[str]]:
        """Ids per sentence ([] if blank or skipped) and an error per sentence ("" if none).

        An error of a skipped sentence carries no index ("the sentence has 2400 characters; ..."):
        the caller knows which sentence it belongs to and numbers it as its user does.
        """
        if isinstance(sentences, str) or not isinstance(sentences, list | tuple):
            raise ValueError("translate() takes a list of strings, one sentence each")
        ids, errors = [], []
        for i, sentence in enumerate(sentences):
            sentence_ids, problem = self._encode_checked(sentence)
            if problem and not skip_invalid:
                raise ValueError(f"sentence {i} {problem}")
            ids.append(sentence_ids)
            errors.append(f"the sentence {problem}" if problem else "")
        return ids, errors

    def decode_config(self, **changes: Any) -> DecodeConfig:
        """The run's saved decoding settings with ``changes`` (`DecodeConfig.override`), e.g.
        ``decode_config(method="sample", num_samples=5, nbest=5, temperature=0.7, seed=1)``.

        Raises:
            ValueError: an unknown setting or a value that is not valid.
        """
        return self.cfg.decode.override(**changes)

    def translate(
        self,
        sentences: list[str],
        beam_size: int | None = None,
        nbest: int | None = None,
        length_penalty: float | None = None,
        batch_size: int = 64,
        with_attention: bool = False,
        skip_invalid: bool = False,
        decode: DecodeConfig | None = None,
        target_lang: str | None = None,
        source_lang: str | None = None,
        check_source: bool = False,
    ) -> list[Translation]:
        """Translate sentences in order; an empty line gives an empty translation.

        Decoding follows ``decode`` (see `decode_config`), by default the run's settings with one
        hypothesis per sentence; ``beam_size`` (beam search, greedy at 1), ``nbest`` and
        ``length_penalty`` change it where given.

        ``target_lang`` (and ``source_lang``) choose one of a multilingual model's directions
        (`toward`); a bilingual model needs neither. ``check_source`` sets each translation's
        ``warning`` when its input looks like the target language (`language_check`).

        A sentence that cannot be translated (not a string, over a length limit) raises
        ValueError, or with ``skip_invalid`` gives an empty translation whose ``error`` says why;
        so does a direction the model was not trained on (ValueError).
        """
        if target_lang is not None or source_lang is not None:
            view = self.toward(target_lang or self.direction.tgt, source_lang)
            return view.translate(
                sentences, beam_size, nbest, length_penalty, batch_size, with_attention,
                skip_invalid, decode, check_source=check_source,
            )  # fmt: skip
        base = decode if decode is not None else self.decode_config(nbest=1)
        decode_cfg = base.override(beam_size=beam_size, nbest=nbest, length_penalty=length_penalty)
        ids, errors = self.encode(sentences, skip_invalid)
        todo = [i for i, seq in enumerate(ids) if seq]
        hyps = decode_corpus(
            self.model, [ids[i] for i in todo], decode_cfg, self.device, batch_size=batch_size
        )
        results = [Translation("", [], [], [], None, error=error) for error in errors]
        for i, sentence_hyps in zip(todo, hyps, strict=True):
            best = sentence_hyps[0]
            attention = best.attention.float().cpu().numpy() if with_attention else None
            results[i] = Translation(
                text=self.tokenizer.decode_tgt(best.token_ids),
                nbest=[(self.tokenizer.decode_tgt(h.token_ids), h.score) for h in sentence_hyps],
                source_pieces=self.tokenizer.src_pieces(ids[i]),
                output_pieces=self.tokenizer.tgt_pieces(best.token_ids),
                attention=attention,
                score=best.score,
            )
        if check_source:
            for sentence, result in zip(sentences, results, strict=True):
                result.warning = target_language_warning(sentence, self.direction.tgt)
        return results

    @torch.no_grad()
    def perplexity(self, sources: list[str], references: list[str]) -> float:
        """Teacher-forced perplexity of the references (per target subword, EOS included)."""
        src_ids, _ = self.encode(sources)  # refuses what translate() refuses
        pairs = [
            (self._tagged(source_text(s)), normalize(r))
            for s, r, ids in zip(sources, references, src_ids, strict=True)
            if ids
        ]
        data = ParallelDataset.from_pairs(self.tokenizer, pairs)
        return math.exp(teacher_forced_loss(self.model, data, 4000, self.device))

    def facts(self) -> RunFacts:
        """Parameters, config, training facts and where the weights came from."""
        return RunFacts(
            checkpoint=self.run_dir,
            parameters=self.model.num_parameters(),
            language_pair=self.language_pair,
            config=self.cfg,
            training=RunInfo.from_dict(self.info),
            device=str(self.device),
            members=self.members,
            directions=self.directions,
        )

    def describe(self) -> dict[str, Any]:
        """`facts` as JSON-able data (for reports), training facts as the run recorded them; an
        ensemble's adds its members."""
        facts = self.facts()
        described: dict[str, Any] = {
            "checkpoint": str(facts.checkpoint) if facts.checkpoint else None,
            "parameters": facts.parameters,
            "language_pair": "-".join(facts.language_pair),
            "config": facts.config.to_dict(),
            "training": self.info,
            "device": facts.device,
        }
        if self.multilingual:
            described["directions"] = [str(d) for d in facts.directions]
        if len(facts.members) > 1:
            described["ensemble_members"] = [str(member) for member in facts.members]
        return described
