"""A run directory, saved atomically and loaded safely.

Reads and writes the run's config, weights, resumable state, training log, lock and an ensemble's
list of members; their names and the whole layout of ``checkpoints/<name>/`` are
`rundir.RunDir`'s (listed in its docstring).
Every file is written to a temporary name in the same folder and renamed, so a crash never
leaves a half-written file under a real name; nothing is ever unpickled.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from seq2seq.config import RunConfig
from seq2seq.model import Seq2Seq
from seq2seq.rundir import RunDir
from seq2seq.tokenizer import Tokenizer

FORMAT = "seq2seq-run/1"
ENSEMBLE_FORMAT = "seq2seq-ensemble/1"


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a run directory is meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    with atomic_path(path) as tmp:
        write(tmp)


def write_text_atomically(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def save_config(run_dir: Path, cfg: RunConfig, info: dict[str, Any] | None = None) -> None:
    payload = {"format": FORMAT, "config": cfg.to_dict(), "info": info or {}}
    text = json.dumps(payload, indent=2, ensure_ascii=False)
    write_text_atomically(RunDir(run_dir).config, text)


def _read_json(path: Path, expected_format: str, kind: str, missing: str) -> dict[str, Any]:
    """The JSON object in ``path`` marked ``expected_format``; FileNotFoundError(``missing``) if
    there is no file, ValueError naming the file and ``kind`` if it is not such an object."""
    if not path.is_file():
        raise FileNotFoundError(missing)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(payload, dict) or payload.get("format") != expected_format:
        raise ValueError(f"{path} is not a {kind} (expected format {expected_format!r})")
    return payload


def load_config(run_dir: Path) -> tuple[RunConfig, dict[str, Any]]:
    """The run's config and info; a clear error for a missing or foreign directory."""
    path = RunDir(run_dir).config
    missing = (
        f"{path} not found: {run_dir} is not a run directory (create one with `seq2seq train`)"
    )
    payload = _read_json(path, FORMAT, "seq2seq run config", missing)
    return RunConfig.from_dict(payload["config"]), payload.get("info", {})


def save_ensemble(folder: Path, members: Sequence[Path]) -> None:
    """Make ``folder`` an ensemble of the run directories ``members`` (`RunDir.ensemble`).

    The members are written relative to ``folder``, so the folder can be moved with them (keep
    them under `RunDir.member` to make it self-contained).
    """
    if not members:
        raise ValueError("an ensemble needs at least one member run")
    folder.mkdir(parents=True, exist_ok=True)
    relative = [Path(os.path.relpath(member, folder)).as_posix() for member in members]
    payload = {"format": ENSEMBLE_FORMAT, "members": relative}
    write_text_atomically(RunDir(folder).ensemble, json.dumps(payload, indent=2) + "\n")


def shipped_runs(folder: Path) -> list[Path]:
    """The runs whose weights ``folder`` holds: an ensemble folder's members, or the run."""
    return load_ensemble(folder) if RunDir(folder).is_ensemble() else [Path(folder)]


def load_ensemble(folder: Path) -> list[Path]:
    """The member run directories that ``folder``'s ensemble.json lists, in its order.

    Raises:
        FileNotFoundError: no ensemble.json, or a member that is not a folder (names both).
        ValueError: ensemble.json is not valid JSON, not an ensemble list, or lists no member.
    """
    path = RunDir(folder).ensemble
    missing = f"{path} not found: {folder} is not an ensemble folder"
    payload = _read_json(path, ENSEMBLE_FORMAT, "seq2seq ensemble", missing)
    listed = payload.get("members")
    if not isinstance(listed, list) or not listed or not all(isinstance(m, str) for m in listed):
        raise ValueError(
            f"{path}: 'members' must be a non-empty list of run directories relative to {folder}"
        )
    members = [Path(os.path.normpath(folder / member)) for member in listed]
    for listed_as, member in zip(listed, members, strict=True):
        if not member.is_dir():
            raise FileNotFoundError(
                f"{path} lists the member {listed_as!r}, but {member} is not a folder: copy the "
                "member run there or correct the list"
            )
    return members


def _unique_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict without aliases of tied weights (safetensors stores each tensor once)."""
    seen: set[int] = set()
    state = {}
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        state[name] = tensor.detach().contiguous()
    return state


def save_weights(model: torch.nn.Module, path: Path, dtype: torch.dtype = torch.float32) -> None:
    state = {
        k: v.to(dtype) if v.is_floating_point() else v for k, v in _unique_state(model).items()
    }
    state = {k: v.cpu() for k, v in state.items()}
    write_atomically(path, lambda p: save_file(state, str(p), metadata={"format": FORMAT}))


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors weights file (`RunDir.weights`, a snapshot)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (train a run with `seq2seq train`)")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from err


def float_dtypes(path: Path) -> set[torch.dtype]:
    """The dtypes of a weights file's floating-point tensors ({torch.float16} once shipped)."""
    return {t.dtype for t in read_weights(path).values() if t.is_floating_point()}


def set_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Load ``tensors`` (from ``source``, named in errors) into ``model``, cast to its dtypes."""
    expected = _unique_state(model)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(model.state_dict()))
    if missing or unexpected:
        raise ValueError(
            f"{source} does not fit this model's config: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    for name, tensor in tensors.items():
        if name in expected and tensor.shape != expected[name].shape:
            raise ValueError(
                f"{source}: {name} has shape {tuple(tensor.shape)}, "
                f"the config expects {tuple(expected[name].shape)}"
            )
    state = model.state_dict()
    model.load_state_dict({k: v.to(state[k].dtype) for k, v in tensors.items()}, strict=False)


def load_weights(model: torch.nn.Module, path: Path) -> None:
    """Load safetensors weights into ``model`` (any float dtype is cast to the model's)."""
    set_weights(model, read_weights(path), str(path))


def load_model(run_dir: Path, device: str | torch.device = "cpu") -> tuple[Seq2Seq, RunConfig]:
    """Rebuild the model from the run's config and load its best weights, in eval mode."""
    cfg, _ = load_config(run_dir)
    model = Seq2Seq(cfg.model)
    load_weights(model, RunDir(run_dir).weights)
    return model.to(device).eval(), cfg


@dataclass
class LoadedRun:
    """One run directory's parts, as `Translator` loads them."""

    model: Seq2Seq
    tokenizer: Tokenizer
    cfg: RunConfig
    info: dict[str, Any]


def load_run(run_dir: Path, device: str | torch.device = "cpu") -> LoadedRun:
    """The run's model (best weights, eval mode), SentencePiece model, config and facts.

    Raises:
        FileNotFoundError: no such folder, or a file of the run is missing.
        ValueError: the folder is an ensemble, or its files do not belong together.
    """
    if not run_dir.is_dir():
        raise FileNotFoundError(
            f"run directory {run_dir} not found; train one with "
            f"`seq2seq train --train.name {run_dir.name}`"
        )
    if RunDir(run_dir).is_ensemble():
        raise ValueError(
            f"{run_dir} is an ensemble ({RunDir.ENSEMBLE_FILE}), not a single run: load it on its "
            "own, or list its member runs instead"
        )
    model, cfg = load_model(run_dir, device)
    _, info = load_config(run_dir)
    tokenizer = Tokenizer.load(run_dir)
    sizes = (tokenizer.src_vocab_size, tokenizer.tgt_vocab_size)
    expected = (cfg.model.src_vocab_size, cfg.model.tgt_vocab_size)
    if sizes != expected:  # e.g. a SentencePiece file from another run, or cut short
        raise ValueError(
            f"the SentencePiece model in {run_dir} has {sizes[0]}/{sizes[1]} source/target "
            f"pieces but the model was trained with {expected[0]}/{expected[1]}: the run "
            "directory's files do not belong together; copy it again or retrain it"
        )
    return LoadedRun(model, tokenizer, cfg, info)


def load_runs(run_dirs: Sequence[Path], device: str | torch.device = "cpu") -> list[LoadedRun]:
    """Runs to decode as one ensemble (`load_run`); ValueError naming two of them if they do not
    share one SentencePiece model and language pair.

    Ids only mean the same pieces under one SentencePiece model, so the serialised models
    themselves are compared: two vocabularies of one size can still differ.
    """
    runs = [load_run(run_dir, device) for run_dir in run_dirs]
    first_dir, first = run_dirs[0], runs[0]
    for run_dir, run in zip(run_dirs[1:], runs[1:], strict=True):
        if (run.tokenizer.src_proto, run.tokenizer.tgt_proto) != (
            first.tokenizer.src_proto,
            first.tokenizer.tgt_proto,
        ):
            raise ValueError(
                f"the runs {first_dir} and {run_dir} do not share one SentencePiece model, so "
                "their token ids mean different pieces and they cannot decode as an ensemble: "
                "ensemble runs trained with the same SentencePiece model"
            )
        pair, first_pair = (
            cfg.data.direction_names or (f"{cfg.data.src_lang}-{cfg.data.tgt_lang}",)
            for cfg in (run.cfg, first.cfg)
        )
        if pair != first_pair:
            raise ValueError(
                f"the runs {first_dir} ({','.join(first_pair)}) and {run_dir} "
                f"({','.join(pair)}) translate different language pairs; an ensemble needs one"
            )
    return runs


def save_state(path: Path, state: dict[str, Any]) -> None:
    write_atomically(path, lambda p: torch.save(state, p))


def load_state(path: Path) -> dict[str, Any]:
    """The resumable training state; weights_only=True, so loading it cannot run code."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: nothing to resume (start without --resume)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt or unsafe files
        raise ValueError(f"{path} is not a loadable training state: {err}") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a seq2seq training state")
    return state


def append_log(run_dir: Path, record: dict[str, Any]) -> None:
    with RunDir(run_dir).log.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def read_log(run_dir: Path) -> list[dict[str, Any]]:
    """The training log's records. A last line cut short (the process was killed while writing
    it) is skipped with a warning; a bad line before it is an error naming the file and line."""
    path = RunDir(run_dir).log
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if number == len(lines):
                warnings.warn(f"{path}: skipping line {number}, cut short: {err}", stacklevel=2)
                continue
            raise ValueError(f"{path}, line {number}: not a JSON record ({err})") from err
        if not isinstance(record, dict):
            raise ValueError(f"{path}, line {number}: not a JSON object")
        records.append(record)
    return records


class RunLocked(ValueError):
    """Another live process is training into the run directory."""


@contextmanager
def lock_run_dir(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir`` while training writes it.

    The lock is ``flock`` on `RunDir.lock`: the kernel drops it when its process ends, however it
    ends, so a killed trainer never leaves a stale lock behind.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(RunDir(run_dir).lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise RunLocked(
                f"{run_dir} is in use: process {holder} is training into it; wait for it to "
                "end (or stop it) before starting or resuming this run"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def average_weights(paths: list[Path]) -> dict[str, torch.Tensor]:
    """The element-wise mean of the weights in several files: weight snapshots
    (`RunDir.snapshot`, safetensors) or resumable states (`RunDir.state`, ``.pt``).

    Averaging the last few checkpoints of a run usually scores higher than any one of them
    (Junczys-Dowmunt et al. 2016; Vaswani et al. 2017, §6.1). The sum is taken in float64, so
    the mean is exact to float32 whatever the order of the files.
    """
    if not paths:
        raise ValueError("averaging needs at least one weights file")
    total: dict[str, torch.Tensor] = {}
    for path in paths:
        weights = load_state(path)["model"] if path.suffix == ".pt" else read_weights(path)
        if total and set(weights) != set(total):
            raise ValueError(f"{path} holds another model than {paths[0]}")
        for name, tensor in weights.items():
            if not tensor.is_floating_point():
                total.setdefault(name, tensor)  # integer buffers are not averaged
            elif name in total:
                total[name] = total[name] + tensor.double()
            else:
                total[name] = tensor.double()
    return {
        name: (tensor / len(paths)).float() if tensor.is_floating_point() else tensor
        for name, tensor in total.items()
    }
