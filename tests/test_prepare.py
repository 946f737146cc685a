"""Prepared corpora: the arrays hold the tokenizer's ids, an up-to-date folder is reused and a
stale one rebuilt, bad input is refused before any work, and a prepare that dies (killed, full
disk) leaves nothing that training would use; a resumed run tokenises nothing."""

from __future__ import annotations

import dataclasses
import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_train import Killed, task_config

from seq2seq import checkpoint, cli, encoding, staging
from seq2seq import prepare as preparing
from seq2seq import train as training
from seq2seq.config import CleanConfig, DataConfig, SubwordConfig
from seq2seq.corpus import load_splits
from seq2seq.data import FileTokenArrays
from seq2seq.prepare import PreparedCorpus, PreparedDir, prepare
from seq2seq.rundir import RunDir
from seq2seq.tokenizer import Tokenizer

REPO = Path(__file__).resolve().parents[1]
SUBWORD = SubwordConfig(vocab_size=300, model_type="bpe")


def write_corpus(folder: Path, src: list[str], tgt: list[str]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "src.txt").write_text("".join(line + "\n" for line in src), encoding="utf-8")
    (folder / "tgt.txt").write_text("".join(line + "\n" for line in tgt), encoding="utf-8")
    return f"{folder / 'src.txt'},{folder / 'tgt.txt'}"


def corpus_config(tmp_path: Path, spec: str, **changes) -> DataConfig:
    return DataConfig(
        corpus="files",
        src_lang="xx",
        tgt_lang="yy",
        train=spec,
        valid=spec,
        data_dir=str(tmp_path / "data"),
        **changes,
    )


def task_data(tmp_path: Path) -> DataConfig:
    return task_config(tmp_path).data


def quiet(_: str) -> None:
    pass


def test_prepared_arrays_hold_the_ids_of_the_cleaned_pairs_encoded_by_worker_processes(
    tmp_path, monkeypatch
):
    data = dataclasses.replace(task_data(tmp_path), max_valid_pairs=0)  # every pair, to compare
    clean = CleanConfig(max_words=5)  # drops some of the task's pairs (2 to 6 words)
    monkeypatch.setattr(encoding, "CHUNK_LINES", 64)  # several chunks: the pool encodes them
    prepared = prepare(data, clean, SUBWORD, workers=2, say=quiet)
    pairs, valid_pairs, stats = load_splits(data, clean)
    assert 0 < stats.kept < stats.total and prepared.cleaning() == stats
    expected = Tokenizer.train([s for s, _ in pairs], [t for _, t in pairs], SUBWORD)
    tokenizer = prepared.tokenizer()
    assert tokenizer.src_proto == expected.src_proto  # the vocabulary training in memory gives
    train = prepared.dataset("train")
    assert isinstance(train.src, FileTokenArrays) and train.src.dtype == np.uint16
    assert train.src.to_lists() == tokenizer.encode_src([s for s, _ in pairs])
    assert train.tgt.to_lists() == tokenizer.encode_tgt([t for _, t in pairs])
    valid = prepared.dataset("valid")  # normalised, none dropped
    assert len(valid) == len(valid_pairs) > len(train)
    assert valid.tgt.to_lists() == tokenizer.encode_tgt([t for _, t in valid_pairs])
    assert list(prepared.text_pairs("train")) == pairs
    assert prepared.manifest["counts"]["train"] == {
        "pairs": len(pairs),
        "src_tokens": int(train.src.lengths().sum()),
        "tgt_tokens": int(train.tgt.lengths().sum()),
    }


def test_an_unchanged_corpus_is_reused_and_a_changed_file_or_setting_prepared_again(
    tmp_path, monkeypatch
):
    spec = write_corpus(tmp_path / "corpus", ["ein Hund", "zwei Katzen"], ["a dog", "two cats"])
    data, clean = corpus_config(tmp_path, spec), CleanConfig()
    first = prepare(data, clean, SUBWORD, say=quiet)
    built = []
    real_build = preparing.build
    monkeypatch.setattr(preparing, "build", lambda *a: built.append(a[0]) or real_build(*a))
    assert prepare(data, clean, SUBWORD, say=quiet).root == first.root and built == []

    # The same size and modification time: only the content tells them apart.
    target = tmp_path / "corpus" / "tgt.txt"
    stat = target.stat()
    target.write_text("a cat\ntwo cats\n", encoding="utf-8")
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = prepare(data, clean, SUBWORD, say=quiet)
    assert built == [first.root] and again.root == first.root
    assert again.manifest["inputs"] != first.manifest["inputs"]
    tokenizer = again.tokenizer()
    assert tokenizer.decode_tgt(again.dataset("train").tgt.to_lists(1)[0]) == "a cat"

    other = prepare(data, dataclasses.replace(clean, max_ratio=2.5), SUBWORD, say=quiet)
    assert other.root != first.root and built == [first.root, other.root]


def test_files_of_unequal_length_are_refused_naming_both_before_any_work(tmp_path, monkeypatch):
    spec = write_corpus(tmp_path / "corpus", ["a", "b", "c", "d", "e"], ["1", "2", "3", "4"])
    monkeypatch.setattr(Tokenizer, "train", lambda *a, **k: pytest.fail("work was done"))
    with pytest.raises(ValueError) as refused:
        prepare(corpus_config(tmp_path, spec), CleanConfig(), SUBWORD, say=quiet)
    message = str(refused.value)
    src, tgt = (str((tmp_path / "corpus" / name).resolve()) for name in ("src.txt", "tgt.txt"))
    assert f"{src} has 5 lines" in message and f"{tgt} has 4" in message
    assert not (tmp_path / "data").exists()


def test_a_line_that_is_not_utf8_is_refused_naming_file_and_line(tmp_path):
    spec = write_corpus(tmp_path / "corpus", ["ein Hund", "zwei", "drei"], ["a", "b", "c"])
    source = tmp_path / "corpus" / "src.txt"
    source.write_bytes(b"ein Hund\nzwei\ndr\xffei\n")
    with pytest.raises(ValueError, match=rf"{source}, line 3: not valid UTF-8"):
        prepare(corpus_config(tmp_path, spec), CleanConfig(), SUBWORD, say=quiet)
    left = [p.name for p in (tmp_path / "data" / "prepared").iterdir()]
    assert all(name.endswith(".lock") for name in left)  # no folder, no temporary one


def test_a_full_disk_during_prepare_leaves_nothing_that_training_uses(tmp_path, monkeypatch):
    cfg = task_config(tmp_path)
    real_write = staging.write_bytes
    writes = {"n": 0}

    def disk_fills(f, content):
        writes["n"] += 1
        if writes["n"] > 300:  # well into the text store
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(f, content)

    monkeypatch.setattr(staging, "write_bytes", disk_fills)
    with pytest.raises(OSError, match="No space left"):
        training.train(cfg)
    prepared_dir = Path(cfg.data.data_dir) / "prepared"
    assert [p.name for p in prepared_dir.iterdir() if not p.name.endswith(".lock")] == []
    run_dir = Path(cfg.train.out_dir) / cfg.train.name
    assert not RunDir(run_dir).state.exists()
    monkeypatch.setattr(staging, "write_bytes", real_write)  # space again: it just works
    training.train(cfg)
    assert RunDir(run_dir).state.is_file()


KILLED_PREPARE = """
import os, signal, sys
from pathlib import Path
from seq2seq import cli, staging
real = staging.write_bytes
def killed_while_writing(f, content):
    if f.name.endswith(".ids.bin"):  # the text store and vocabulary done, the arrays not
        os.kill(os.getpid(), signal.SIGKILL)
    real(f, content)
staging.write_bytes = killed_while_writing
cli.main(sys.argv[1:])
"""


def test_a_killed_prepare_leaves_nothing_that_training_would_use(tmp_path):
    cfg = task_config(tmp_path)
    out = tmp_path / "prepared"
    flags = [
        "--data.corpus", "files", "--data.src_lang", "xx", "--data.tgt_lang", "yy",
        "--data.train", cfg.data.train, "--data.valid", cfg.data.valid,
        "--subword.vocab_size", "300", "--subword.model_type", "bpe", "--data.prepared", str(out),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_PREPARE, "prepare", *flags],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    leftovers = [p for p in tmp_path.glob(".prepared.*.tmp")]
    assert not out.exists() and len(leftovers) == 1  # what it wrote is under another name
    assert PreparedDir(leftovers[0]).text("train", "src").is_file()
    with pytest.raises(FileNotFoundError, match="not a prepared corpus"):
        training.train(dataclasses.replace(cfg, data=DataConfig(prepared=str(out))))

    cli.main(["prepare", *flags])  # a new prepare clears the remains and builds it whole
    assert not list(tmp_path.glob(".prepared.*.tmp"))
    assert PreparedCorpus.open(out).pairs("train") == 400


def test_a_prepared_folder_gives_the_run_its_languages_and_vocabulary(tmp_path):
    cfg = task_config(tmp_path, max_steps=2)
    out = tmp_path / "prepared"
    cli.main([
        "prepare", "--data.corpus", "files", "--data.src_lang", "xx", "--data.tgt_lang", "yy",
        "--data.train", cfg.data.train, "--data.valid", cfg.data.valid,
        "--subword.vocab_size", "320", "--subword.model_type", "bpe", "--data.prepared", str(out),
        "--workers", "1",
    ])  # fmt: skip
    data = DataConfig(prepared=str(out), max_valid_pairs=40)
    run_dir = training.train(dataclasses.replace(cfg, data=data))
    saved, _ = checkpoint.load_config(run_dir)
    assert (saved.data.src_lang, saved.data.tgt_lang) == ("xx", "yy")
    assert (saved.subword.vocab_size, saved.subword.model_type) == (320, "bpe")
    assert RunDir(run_dir).joint_tokenizer.read_bytes() == (out / "spm.model").read_bytes()


def test_resume_tokenises_nothing(tmp_path, monkeypatch):
    cfg = task_config(tmp_path)
    real_step = training.train_step

    def dies_after_step_6(session, batch, scaler):
        if session.progress.step > 6:
            raise Killed
        return real_step(session, batch, scaler)

    monkeypatch.setattr(training, "train_step", dies_after_step_6)
    with pytest.raises(Killed):
        training.train(cfg)
    monkeypatch.setattr(training, "train_step", real_step)

    def tokenised(*args, **kwargs):
        raise AssertionError("the resumed run tokenised text")

    for name in ("encode_src", "encode_tgt", "encode_sampled", "train"):
        monkeypatch.setattr(Tokenizer, name, tokenised)
    monkeypatch.setattr(encoding, "encode_chunk", tokenised)
    monkeypatch.setattr(preparing, "build", tokenised)
    run_dir = training.train(cfg, resume=True)
    assert checkpoint.load_state(RunDir(run_dir).state)["progress"]["step"] == 12
