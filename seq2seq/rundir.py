"""The layout of a run directory: every file and folder a run holds is named here and nowhere else.

Layout of ``checkpoints/<name>/`` (`RunDir`):
    config.json                         the full RunConfig plus facts about the run (`RunInfo`)
    model.safetensors                   the best weights by validation BLEU (what translation loads)
    last.pt                             the resumable training state (weights, optimiser,
                                        scheduler, RNG, data position); tensors and plain values
                                        only, read with weights_only=True
    spm.model                           the SentencePiece model of a joint vocabulary, or
    spm.src.model                       the source and
    spm.tgt.model                       the target SentencePiece models of separate vocabularies
    train_log.jsonl                     one JSON object per logged step or validation
    learning_curve.png                  training loss, validation perplexity and BLEU by step
    clean_stats.json                    what cleaning kept and dropped of the training corpus
    train.lock                          held (flock) by the one trainer writing the run; holds
                                        its process id
    eval/<split>/                       an evaluation on one test set (`ReportDir`; the split is
                                        "custom" for files given with --src/--ref)
    README.md                           the model card of a shipped run
    ship.json                           what shipping measured and chose (averaging, decoding,
                                        dtype), from which the model card can be rewritten
    model.fp32.safetensors              the float32 weights, set aside while shipping tries float16
    snapshots/step-<step>.safetensors   the weights at each of the last ``train.average_last``
                                        validations, for checkpoint averaging; the step
                                        zero-padded so names sort by step
    ensemble.json                       makes the folder an ensemble: {"format":
                                        "seq2seq-ensemble/1", "members": [...]}, the run
                                        directories whose models decode as one, relative to this
                                        folder; the first member's config gives the language pair
                                        and decoding defaults. Such a folder needs no config.json
                                        or weights of its own
    members/<name>/                     an ensemble's member runs, kept inside it so the folder is
                                        self-contained: each a run directory that translation
                                        can load (config.json, model.safetensors, the same
                                        SentencePiece model), without last.pt or snapshots/.
                                        Members listed as ``../other-run`` work too, but the
                                        folder then depends on its neighbours
Layout of an evaluation report, ``eval/<split>/`` or any ``--report-dir`` (`ReportDir`):
    report.json                         scores, intervals, examples and the model's facts
    report.md                           the same for people, linking the images below
    hypotheses.txt                      the primary system's output (beam, or greedy when the beam
                                        is 1), one line per source, for a later --compare
    hypotheses.greedy.txt               the greedy output
    attention_<number>.png              attention heatmaps of a few short sentences, from 1
    bleu_by_length.png                  BLEU by source length, one bar per system

`RunInfo` types the facts config.json records beside the config. This module imports nothing of
the package, so anything (the demo included) can name a run's files without loading torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ReportDir:
    """The files of one evaluation report (see the module docstring for what each holds)."""

    root: Path

    JSON_FILE = "report.json"
    MARKDOWN_FILE = "report.md"
    HYPOTHESES_FILE = "hypotheses.txt"
    GREEDY_HYPOTHESES_FILE = "hypotheses.greedy.txt"
    ATTENTION_FILE = "attention_{number}.png"
    BLEU_BY_LENGTH_FILE = "bleu_by_length.png"

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def json(self) -> Path:
        return self.root / self.JSON_FILE

    @property
    def markdown(self) -> Path:
        return self.root / self.MARKDOWN_FILE

    @property
    def hypotheses(self) -> Path:
        return self.root / self.HYPOTHESES_FILE

    @property
    def greedy_hypotheses(self) -> Path:
        return self.root / self.GREEDY_HYPOTHESES_FILE

    def attention(self, number: int) -> Path:
        """The ``number``-th attention heatmap, counted from 1."""
        return self.root / self.ATTENTION_FILE.format(number=number)

    @property
    def bleu_by_length(self) -> Path:
        return self.root / self.BLEU_BY_LENGTH_FILE


@dataclass(frozen=True)
class RunDir:
    """The paths of one run directory (see the module docstring for what each file holds).

    Only names paths (and finds which snapshots exist): reading and writing them is
    `checkpoint`'s (config, weights, state, log, lock, ensemble list), `snapshots`'s,
    `tokenizer`'s, `evaluate`'s and `ship`'s job.
    """

    root: Path

    CONFIG_FILE = "config.json"
    WEIGHTS_FILE = "model.safetensors"
    STATE_FILE = "last.pt"
    JOINT_TOKENIZER_FILE = "spm.model"
    SRC_TOKENIZER_FILE = "spm.src.model"
    TGT_TOKENIZER_FILE = "spm.tgt.model"
    LOG_FILE = "train_log.jsonl"
    LEARNING_CURVE_FILE = "learning_curve.png"
    CLEAN_STATS_FILE = "clean_stats.json"
    LOCK_FILE = "train.lock"
    EVAL_DIR = "eval"
    MODEL_CARD_FILE = "README.md"
    SHIP_FILE = "ship.json"
    FP32_WEIGHTS_FILE = "model.fp32.safetensors"
    SNAPSHOT_DIR = "snapshots"
    SNAPSHOT_FILE = "step-{step:08d}.safetensors"
    ENSEMBLE_FILE = "ensemble.json"
    MEMBERS_DIR = "members"

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def config(self) -> Path:
        return self.root / self.CONFIG_FILE

    @property
    def weights(self) -> Path:
        return self.root / self.WEIGHTS_FILE

    @property
    def state(self) -> Path:
        return self.root / self.STATE_FILE

    @property
    def joint_tokenizer(self) -> Path:
        return self.root / self.JOINT_TOKENIZER_FILE

    @property
    def src_tokenizer(self) -> Path:
        return self.root / self.SRC_TOKENIZER_FILE

    @property
    def tgt_tokenizer(self) -> Path:
        return self.root / self.TGT_TOKENIZER_FILE

    @property
    def log(self) -> Path:
        return self.root / self.LOG_FILE

    @property
    def learning_curve(self) -> Path:
        return self.root / self.LEARNING_CURVE_FILE

    @property
    def clean_stats(self) -> Path:
        return self.root / self.CLEAN_STATS_FILE

    @property
    def lock(self) -> Path:
        return self.root / self.LOCK_FILE

    def report(self, split: str) -> ReportDir:
        """Where ``seq2seq evaluate`` writes its report on ``split`` by default."""
        return ReportDir(self.root / self.EVAL_DIR / split)

    @property
    def model_card(self) -> Path:
        return self.root / self.MODEL_CARD_FILE

    @property
    def ship_record(self) -> Path:
        return self.root / self.SHIP_FILE

    @property
    def fp32_weights(self) -> Path:
        return self.root / self.FP32_WEIGHTS_FILE

    @property
    def snapshot_dir(self) -> Path:
        return self.root / self.SNAPSHOT_DIR

    def snapshot(self, step: int) -> Path:
        """The weights snapshot of training step ``step``, for checkpoint averaging."""
        return self.snapshot_dir / self.SNAPSHOT_FILE.format(step=step)

    def snapshots(self) -> dict[int, Path]:
        """The snapshots on disk by step, in step order (a write in progress, under a temporary
        name, is none of them)."""
        head, tail = self.SNAPSHOT_FILE.split("{step:08d}")
        found = {}
        for path in self.snapshot_dir.glob(f"{head}*{tail}"):
            digits = path.name[len(head) : len(path.name) - len(tail)]
            if digits.isdigit():
                found[int(digits)] = path
        return dict(sorted(found.items()))

    @property
    def ensemble(self) -> Path:
        """The list of an ensemble's member runs."""
        return self.root / self.ENSEMBLE_FILE

    def member(self, name: str) -> Path:
        """Where an ensemble folder keeps its member run ``name``."""
        return self.root / self.MEMBERS_DIR / name

    def member_files(self) -> list[Path]:
        """The files an ensemble folder keeps of this run (`member`): what translation, shipping
        and the model card read; not the resumable state, snapshots or reports."""
        names = (
            self.CONFIG_FILE,
            self.WEIGHTS_FILE,
            self.JOINT_TOKENIZER_FILE,
            self.SRC_TOKENIZER_FILE,
            self.TGT_TOKENIZER_FILE,
            self.LOG_FILE,
            self.LEARNING_CURVE_FILE,
            self.CLEAN_STATS_FILE,
        )
        return [self.root / name for name in names if (self.root / name).is_file()]

    def has_model(self) -> bool:
        """Whether the run holds what translation loads first: its config and best weights."""
        return self.config.is_file() and self.weights.is_file()

    def is_ensemble(self) -> bool:
        """Whether the folder is an ensemble: its ensemble.json lists the runs to load."""
        return self.ensemble.is_file()

    def relative(self, path: Path) -> str:
        """``path`` relative to the run directory, as a link in the run's Markdown needs it."""
        return path.relative_to(self.root).as_posix()


@dataclass(frozen=True)
class RunInfo:
    """The facts about a run that training records in config.json beside the config.

    A run written by an older version may lack some: they are None then.
    """

    parameters: int | None = None
    train_pairs: int | None = None
    valid_pairs: int | None = None
    step: int | None = None
    best_step: int | None = None
    best_valid_bleu: float | None = None  # -1 until the first validation
    train_seconds: float | None = None  # training and validation, not start-up
    stopped: str | None = None  # why training ended; "" while it goes on or was killed
    world_size: int | None = None
    device: str | None = None
    torch: str | None = None  # torch.__version__ of the trainer

    @classmethod
    def from_dict(cls, info: dict[str, Any]) -> RunInfo:
        """The known facts of ``info``; keys it does not know are left out."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in info.items() if key in known})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
