"""What `seq2seq ship` measured and chose (`RunDir.ship_record`, ship.json): the model card is
written from it and the test reports, so a card can be rewritten without shipping again."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seq2seq.snapshots import AveragingOutcome

SHIP_FORMAT = "seq2seq-ship/1"


@dataclass(frozen=True)
class Trial:
    """One decoding setting scored on the validation set."""

    beam: int
    length_penalty: float
    valid_bleu: float
    seconds: float


@dataclass(frozen=True)
class PrecisionTrial:
    """The float16 check: validation BLEU in both precisions and the dtype shipped. A run
    whose weights were float16 already (shipped before) has no float32 score."""

    fp32_valid_bleu: float | None
    fp16_valid_bleu: float
    dtype: str  # "float16" or "float32"


@dataclass(frozen=True)
class MemberRecord:
    """One run of a shipped ensemble: its averaging, and its validation BLEU alone with the
    ensemble's chosen decoding (what the ensemble adds is the difference)."""

    name: str  # the member's folder name
    averaging: AveragingOutcome | None
    valid_bleu: float


@dataclass(frozen=True)
class BilingualComparison:
    """A multilingual model's direction on a test set against the bilingual model shipped beside
    it for that direction: its BLEU, and the multilingual model's gain over it with a 95%
    paired-bootstrap interval (negative: the bilingual model is better)."""

    model: str  # the bilingual model's folder name
    bleu: float
    gain: float
    low: float
    high: float
    core_minutes: float | None  # what trained the bilingual model (`training_core_minutes`)


def _averaging_to_dict(averaging: AveragingOutcome | None) -> dict[str, Any] | None:
    return {**dataclasses.asdict(averaging), "kept": averaging.kept} if averaging else None


def _averaging_from_dict(raw: dict[str, Any] | None) -> AveragingOutcome | None:
    return AveragingOutcome.from_log_record(raw) if raw else None


@dataclass(frozen=True)
class ShipRecord:
    """What shipping measured and chose. A single run has ``averaging``; an ensemble has one
    `MemberRecord` per member instead."""

    machine: str  # `machine.describe_machine`: where the decoding was timed and scored
    averaging: AveragingOutcome | None
    tuning: list[Trial]
    decoding: Trial  # the chosen one
    precision: PrecisionTrial
    tests: dict[str, dict[str, float]]  # test set -> system (greedy, beam-K) -> BLEU
    tests_not_at_hand: list[str]  # asked for, but neither cached nor reachable
    members: list[MemberRecord] = field(default_factory=list)  # an ensemble's, in its order
    # A multilingual model's: report name (TEST_SET.SRC-TGT) -> the bilingual model beside it.
    bilingual: dict[str, BilingualComparison] = field(default_factory=dict)
    # `ShipConfig.as_flags` of the options shipped with: the card's rebuild command repeats them.
    flags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SHIP_FORMAT,
            **dataclasses.asdict(self),
            "averaging": _averaging_to_dict(self.averaging),
            "members": [
                {**dataclasses.asdict(m), "averaging": _averaging_to_dict(m.averaging)}
                for m in self.members
            ],
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: Path) -> ShipRecord:
        if raw.get("format") != SHIP_FORMAT:
            raise ValueError(
                f"{source} was not written by `seq2seq ship` (format {SHIP_FORMAT}); ship the "
                "run again to rewrite it"
            )
        return cls(
            machine=raw["machine"],
            averaging=_averaging_from_dict(raw["averaging"]),
            tuning=[Trial(**trial) for trial in raw["tuning"]],
            decoding=Trial(**raw["decoding"]),
            precision=PrecisionTrial(**raw["precision"]),
            tests=raw["tests"],
            tests_not_at_hand=raw["tests_not_at_hand"],
            members=[
                MemberRecord(m["name"], _averaging_from_dict(m["averaging"]), m["valid_bleu"])
                for m in raw.get("members", [])  # ship.json of a single run written before
            ],
            bilingual={
                name: BilingualComparison(**comparison)
                for name, comparison in raw.get("bilingual", {}).items()
            },
            flags=raw.get("flags", []),  # ship.json written before flags were recorded
        )
