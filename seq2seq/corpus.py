"""Parallel corpora: readers of the user's files, counted cleaning, and the splits of a run.

Pipeline order: fetch Multi30k (`download.multi30k_pair`) or read your files (`read_pairs`), then
`clean_pairs` for training data and `normalize_pairs` for validation and test data, which must keep
every line so that scores stay comparable with published ones. Each reader and `iter_clean` also
streams, a line at a time, for corpora too large to hold (`prepare` binarises them that way);
`prepare_corpus` (``seq2seq prepare``) saves the counts of each split.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import logging
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from seq2seq.config import CleanConfig, DataConfig
from seq2seq.download import multi30k_pair

log = logging.getLogger(__name__)

Pair = tuple[str, str]


GZIP_MAGIC = b"\x1f\x8b"  # never the start of UTF-8 text, so detection by content is safe


def read_lines(path: str | Path) -> list[str]:
    """Read a UTF-8 text file, plain or gzip-compressed (detected by its first bytes).

    Lines end at "\\n" only; the line ending ("\\n" or "\\r\\n") is removed, and a byte-order
    mark at the start. Other characters that `str.splitlines` would split on (form feed, U+2028,
    ...) stay inside their line.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line is not valid UTF-8 (names file and 1-based line), or a damaged gzip.
    """
    return list(iter_lines(path))


def iter_lines(path: str | Path) -> Iterator[str]:
    """The lines of `read_lines`, one at a time: a corpus of any size streams through."""
    path = _existing_file(path)
    with path.open("rb") as f:
        for number, raw in enumerate(_raw_lines(f, str(path)), 1):
            text, error = _decode_line(raw, number)
            if error:
                raise ValueError(f"{path}, line {number}: {error}")
            yield text


def read_text_lines(source: str | Path | BinaryIO) -> tuple[list[str], list[str]]:
    """Read lines to translate from a file or a binary stream (stdin), exactly as `read_lines`
    does, except that a line that is not valid UTF-8 does not stop the reading.

    Returns:
        The lines, and per line an error ("" if none): a line that is not valid UTF-8 is ""
        and its error says where the first bad byte is, so that later lines keep their numbers.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a damaged gzip stream.
    """
    if isinstance(source, str | Path):
        path = _existing_file(source)
        with path.open("rb") as f:
            return _read_lenient(f, str(path))
    if not source.seekable():  # a pipe or a terminal: the gzip check must look ahead
        source = io.BytesIO(source.read())
    return _read_lenient(source, "standard input")


def count_lines(path: str | Path) -> int:
    """How many lines `iter_lines` would give, counted in blocks (gunzipped if gzip) without
    decoding them: what lets a caller compare two files before any work.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a damaged gzip file.
    """
    path = _existing_file(path)
    lines, last = 0, b"\n"
    with path.open("rb") as raw:
        compressed = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        stream: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw  # type: ignore[assignment]
        try:
            for block in iter(lambda: stream.read(1 << 20), b""):
                lines += block.count(b"\n")
                last = block[-1:]
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise ValueError(f"{path}: damaged gzip file ({exc})") from exc
    return lines + (last != b"\n")  # a last line without its line ending counts too


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"corpus file not found: {path}")
    return path


def _read_lenient(f: BinaryIO, name: str) -> tuple[list[str], list[str]]:
    lines, errors = [], []
    for number, raw in enumerate(_raw_lines(f, name), 1):
        text, error = _decode_line(raw, number)
        lines.append(text)
        errors.append(error)
    return lines, errors


def _raw_lines(f: BinaryIO, name: str) -> Iterator[bytes]:
    """The lines of a seekable binary stream, gunzipped if it starts like gzip, without endings.

    Binary streams split on b"\\n" alone, unlike text mode and `str.splitlines`.
    """
    start = f.tell()
    compressed = f.read(2) == GZIP_MAGIC
    f.seek(start)
    stream: Iterable[bytes] = gzip.GzipFile(fileobj=f, mode="rb") if compressed else f
    try:
        for raw in stream:
            yield raw[:-2] if raw.endswith(b"\r\n") else raw.removesuffix(b"\n")
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ValueError(f"{name}: damaged gzip file ({exc})") from exc


def _decode_line(raw: bytes, number: int) -> tuple[str, str]:
    """The text of line ``number`` and "", or "" and why it is not UTF-8."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return "", f"not valid UTF-8 (byte {raw[exc.start]:#04x} at offset {exc.start})"
    return (text.removeprefix("\ufeff") if number == 1 else text), ""


def read_parallel_files(src_path: str | Path, tgt_path: str | Path) -> list[Pair]:
    """Pair line i of `src_path` with line i of `tgt_path`; the files must have equal length."""
    src_lines, tgt_lines = read_lines(src_path), read_lines(tgt_path)
    if len(src_lines) != len(tgt_lines):
        raise ValueError(parallel_length_error(src_path, len(src_lines), tgt_path, len(tgt_lines)))
    return list(zip(src_lines, tgt_lines, strict=True))


def parallel_length_error(
    src_path: str | Path, src_lines: int, tgt_path: str | Path, tgt_lines: int
) -> str:
    return (
        f"parallel files differ in length: {src_path} has {src_lines} lines, "
        f"{tgt_path} has {tgt_lines}; line i of one must translate line i of the other"
    )


def read_tsv(path: str | Path) -> list[Pair]:
    """Read ``source<TAB>target`` lines; further columns (e.g. Tatoeba/Anki credits) are ignored.

    Blank lines are skipped (each pair is self-contained, so nothing shifts out of alignment).

    Raises:
        ValueError: a non-blank line has no tab (names file and 1-based line).
    """
    return list(iter_tsv(path))


def iter_tsv(path: str | Path) -> Iterator[Pair]:
    """The pairs of `read_tsv`, one at a time."""
    for number, line in enumerate(iter_lines(path), 1):
        if not line.strip():
            continue
        columns = line.split("\t")
        if len(columns) < 2:
            raise ValueError(
                f"{path}, line {number}: expected source<TAB>target, found no tab in {line[:60]!r}"
            )
        yield columns[0], columns[1]


def to_tsv(pairs: Iterable[Pair]) -> str:
    """The text of a TSV file that `read_tsv` reads back as ``pairs``: one ``source<TAB>target``
    line per pair.

    Raises:
        ValueError: a side holds a tab or a line break (it would shift the columns or the lines),
            or both sides are blank (`read_tsv` skips a blank line).
    """
    lines = []
    for number, (src, tgt) in enumerate(pairs, 1):
        if set(src + tgt) & {"\t", "\n", "\r"} or not (src + tgt).strip():
            raise ValueError(f"pair {number} cannot be a TSV line: {(src, tgt)!r}")
        lines.append(f"{src}\t{tgt}\n")
    return "".join(lines)


def spec_files(spec: str) -> list[Path]:
    """The files of a pair spec: ``"SRC_PATH,TGT_PATH"`` (line-aligned files), or one TSV path
    (``.tsv``/``.tsv.gz``; a spec without a comma is read as TSV whatever its suffix, and paths
    with commas are only supported for TSV files)."""
    spec = spec.strip()
    if spec.endswith((".tsv", ".tsv.gz")) or "," not in spec:
        return [Path(spec)]
    parts = [part.strip() for part in spec.split(",")]
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"expected 'SRC_PATH,TGT_PATH' or one .tsv path, got {spec!r}")
    return [Path(parts[0]), Path(parts[1])]


def read_pairs(spec: str) -> list[Pair]:
    """Read ``"SRC_PATH,TGT_PATH"`` (line-aligned files) or one TSV path (see `spec_files`)."""
    files = spec_files(spec)
    return read_tsv(files[0]) if len(files) == 1 else read_parallel_files(*files)


def iter_pairs(files: Sequence[Path]) -> Iterator[Pair]:
    """The pairs of one TSV file or of two line-aligned files (`spec_files`), one at a time.

    Streaming cannot count lines first: a caller that must refuse files of unequal length
    before any work counts them itself (`prepare`); here the shorter file's end is an error.
    """
    if len(files) == 1:
        yield from iter_tsv(files[0])
        return
    src, tgt = (iter_lines(path) for path in files)
    for number in itertools.count(1):
        src_line, tgt_line = next(src, None), next(tgt, None)
        if src_line is None and tgt_line is None:
            return
        if src_line is None or tgt_line is None:
            shorter = files[0] if src_line is None else files[1]
            raise ValueError(
                f"parallel files differ in length: {shorter} ends at line {number - 1}, before "
                f"{files[1] if shorter == files[0] else files[0]}; line i of one must translate "
                "line i of the other"
            )
        yield src_line, tgt_line


# --- Cleaning -----------------------------------------------------------------------------------


@dataclass
class CleanStats:
    """How many pairs `clean_pairs` saw, kept, and dropped for each reason (one reason per pair)."""

    total: int = 0
    kept: int = 0
    dropped_empty: int = 0
    dropped_too_long: int = 0
    dropped_too_short: int = 0
    dropped_ratio: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    def summary(self) -> str:
        share = f" ({100 * self.kept / self.total:.1f}%)" if self.total else ""
        return (
            f"kept {self.kept} of {self.total} pairs{share}; dropped {self.dropped_empty} empty, "
            f"{self.dropped_too_long} too long, {self.dropped_too_short} too short, "
            f"{self.dropped_ratio} over the length ratio"
        )


def normalize(text: str) -> str:
    """Unicode NFC, every whitespace run (tabs, no-break spaces, ...) as one space, trimmed."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def normalize_pairs(pairs: Iterable[Pair]) -> list[Pair]:
    """Normalise both sides and drop nothing: for validation and test sets."""
    return [(normalize(src), normalize(tgt)) for src, tgt in pairs]


def clean_pairs(pairs: Iterable[Pair], cfg: CleanConfig) -> tuple[list[Pair], CleanStats]:
    """Normalise, then keep the pairs that pass `cfg`, in their order.

    A pair is dropped for the first reason that applies: a side is empty; a side has more than
    ``cfg.max_words`` words; a side has fewer than ``cfg.min_words``; the longer side has more than
    ``cfg.max_ratio`` times the words of the shorter.
    """
    stats = CleanStats()
    kept = list(iter_clean(pairs, cfg, stats))
    return kept, stats


def iter_clean(pairs: Iterable[Pair], cfg: CleanConfig, stats: CleanStats) -> Iterator[Pair]:
    """`clean_pairs` one pair at a time, counting into ``stats`` as it goes."""
    for src, tgt in pairs:
        src, tgt = normalize(src), normalize(tgt)
        stats.total += 1
        reason = _drop_reason(src, tgt, cfg)
        if reason is None:
            stats.kept += 1
            yield src, tgt
        else:
            setattr(stats, reason, getattr(stats, reason) + 1)


def _drop_reason(src: str, tgt: str, cfg: CleanConfig) -> str | None:
    """The `CleanStats` field counting why a normalised pair is dropped; None to keep it."""
    if not src or not tgt:
        return "dropped_empty"
    shorter, longer = sorted((len(src.split(" ")), len(tgt.split(" "))))
    if longer > cfg.max_words:
        return "dropped_too_long"
    if shorter < cfg.min_words:
        return "dropped_too_short"
    if longer / shorter > cfg.max_ratio:
        return "dropped_ratio"
    return None


def split_files(data: DataConfig, split: str) -> list[Path]:
    """The files of a Multi30k split (train, val, test_2016_flickr, ...; fetched and checked
    if not cached) or of a user's file spec (`spec_files`)."""
    if data.corpus == "multi30k":
        cache = Path(data.data_dir) / "multi30k"
        return list(multi30k_pair(split, data.src_lang, data.tgt_lang, cache, data.mirror))
    return spec_files({"train": data.train, "val": data.valid}.get(split, split))


def load_split(data: DataConfig, split: str) -> list[Pair]:
    """A Multi30k split (train, val, test_2016_flickr, ...) or a user's file spec, unnormalised."""
    files = split_files(data, split)
    return read_tsv(files[0]) if len(files) == 1 else read_parallel_files(*files)


def load_valid_pairs(data: DataConfig) -> list[Pair]:
    """The validation pairs training scores on: normalised, the first ``max_valid_pairs``."""
    valid = normalize_pairs(load_split(data, "val"))
    return valid[: data.max_valid_pairs] if data.max_valid_pairs else valid


def load_splits(data: DataConfig, clean: CleanConfig) -> tuple[list[Pair], list[Pair], CleanStats]:
    """Cleaned training pairs, normalised validation pairs, and what cleaning dropped."""
    train, stats = clean_pairs(load_split(data, "train"), clean)
    valid = load_valid_pairs(data)
    if data.max_train_pairs:
        train = train[: data.max_train_pairs]
    if not train:
        raise ValueError(f"no training pairs left after cleaning ({stats.summary()})")
    return train, valid, stats


def counts_path(data: DataConfig) -> Path:
    """Where `prepare_corpus` saves its counts: ``DATA_DIR/CORPUS-SRC-TGT.clean.json``
    (``CORPUS-multi`` for a multilingual run's directions together)."""
    languages = "multi" if data.multilingual else f"{data.src_lang}-{data.tgt_lang}"
    return Path(data.data_dir) / f"{data.corpus}-{languages}.clean.json"


def prepare_corpus(
    data: DataConfig,
    clean: CleanConfig,
    splits: Sequence[str],
    say: Callable[[str], None] = print,
    counted: dict[str, dict[str, int]] | None = None,
) -> Path:
    """Fetch (Multi30k, checked) or read each split, clean the training split and normalise the
    others; ``say`` a line per split as it is done, and save the settings and counts as JSON.
    ``counted``: the counts of splits counted already (by `prepare.prepare`), saved as they are.

    Returns:
        The JSON file (`counts_path`): ``data`` and ``clean`` settings, `CleanStats` of "train",
        ``{"total": N}`` of every other split.
    """
    summary: dict[str, Any] = {"data": asdict(data), "clean": asdict(clean), **(counted or {})}
    for split in splits:
        pairs = load_split(data, split)
        if split == "train":
            _, stats = clean_pairs(pairs, clean)
            summary["train"] = stats.to_dict()
            say(f"train: {stats.summary()}")
        else:
            summary[split] = {"total": len(normalize_pairs(pairs))}
            say(f"{split}: {len(pairs)} pairs (normalised, none dropped)")
    out = counts_path(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return out
