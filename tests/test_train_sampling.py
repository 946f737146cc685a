"""Subword regularisation in real tiny runs: every epoch a new segmentation of the same text, the
token budget counted on it, validation and decoding never sampled, a mid-epoch resume exact."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path

import pytest
import torch
from test_train import Killed, task_config

from seq2seq import checkpoint
from seq2seq import train as training
from seq2seq.config import RunConfig
from seq2seq.corpus import load_splits
from seq2seq.rundir import RunDir
from seq2seq.tokenizer import Tokenizer
from seq2seq.translate import Translator

REAL_TRAIN_STEP = training.train_step


def sampling_config(
    tmp_path: Path, alpha: float, model_type: str = "bpe", **train_overrides
) -> RunConfig:
    cfg = task_config(tmp_path, **train_overrides)
    subword = dataclasses.replace(cfg.subword, model_type=model_type, sampling_alpha=alpha)
    return dataclasses.replace(cfg, subword=subword)


def recorded_batches(monkeypatch, kill_after: int = 0) -> list[dict]:
    """Every batch `train_step` gets from now on: its step, epoch and rows (the source and
    target ids of each pair, by the pair's index).

    With ``kill_after``, the step after it raises `Killed`, as if the process had died there."""
    batches: list[dict] = []

    def recording_step(session, batch, scaler):
        if kill_after and session.progress.step > kill_after:
            raise Killed
        rows = {}
        for row, index in enumerate(batch.indices):
            src = batch.src_ids[row, : batch.src_lengths[row]].tolist()
            tgt = [i for i in batch.tgt_out[row].tolist() if i != 0][:-1]  # without pad and EOS
            rows[index] = (src, tgt)
        batches.append(
            {"step": session.progress.step, "epoch": session.progress.epoch, "rows": rows}
        )
        return REAL_TRAIN_STEP(session, batch, scaler)

    monkeypatch.setattr(training, "train_step", recording_step)
    return batches


@pytest.mark.parametrize(("model_type", "alpha"), [("unigram", 0.3), ("bpe", 0.1)])
def test_each_epoch_trains_on_a_new_segmentation_counted_by_the_token_budget(
    tmp_path, monkeypatch, model_type, alpha
):
    cfg = sampling_config(
        tmp_path, alpha, model_type, max_steps=0, max_epochs=2, valid_every=0, log_every=10
    )
    batches = recorded_batches(monkeypatch)
    run_dir = training.train(cfg)
    tokenizer = Tokenizer.load(run_dir)
    pairs, _, _ = load_splits(cfg.data, cfg.clean)
    seen: dict[int, dict[int, tuple[list[int], list[int]]]] = defaultdict(dict)
    for batch in batches:
        rows = batch["rows"]
        seen[batch["epoch"]].update(rows)
        longest = max(max(len(src), len(tgt) + 1) for src, tgt in rows.values())
        assert len(rows) == 1 or len(rows) * longest <= cfg.train.max_tokens  # honest budget
    assert sorted(seen) == [0, 1]
    assert all(sorted(seen[epoch]) == list(range(len(pairs))) for epoch in (0, 1))
    for epoch in (0, 1):  # a segmentation of the very text of its own pair, on both sides
        for index, (src, tgt) in seen[epoch].items():
            assert tokenizer.decode_tgt(src) == pairs[index][0]
            assert tokenizer.decode_tgt(tgt) == pairs[index][1]
    plain = tokenizer.encode_src([src for src, _ in pairs])
    for epoch in (0, 1):
        resampled = sum(seen[epoch][i][0] != plain[i] for i in range(len(pairs)))
        assert resampled > len(pairs) // 10
    changed = sum(seen[0][i] != seen[1][i] for i in range(len(pairs)))
    assert changed > len(pairs) // 10  # the same sentences, segmented anew in epoch 1


def test_validation_and_decoding_see_the_plain_segmentation(tmp_path, monkeypatch):
    decoded, scored = [], []
    real_decode, real_loss = training.decode_corpus, training.teacher_forced_loss

    def recording_decode(model, src, cfg, device, **kwargs):
        decoded.append(src)
        return real_decode(model, src, cfg, device, **kwargs)

    def recording_loss(model, data, max_tokens, device):
        scored.append((data.src, data.tgt))
        return real_loss(model, data, max_tokens, device)

    monkeypatch.setattr(training, "decode_corpus", recording_decode)
    monkeypatch.setattr(training, "teacher_forced_loss", recording_loss)
    # average_last=0: two validations, and no third one of averaged snapshots at the end
    cfg = sampling_config(tmp_path, alpha=0.5, max_steps=4, valid_every=2, average_last=0)
    run_dir = training.train(cfg)
    tokenizer = Tokenizer.load(run_dir)
    _, valid_pairs, _ = load_splits(cfg.data, cfg.clean)
    sources = [src for src, _ in valid_pairs]
    plain_src, plain_tgt = (
        tokenizer.encode_src(sources),
        tokenizer.encode_tgt([tgt for _, tgt in valid_pairs]),
    )
    assert len(decoded) == len(scored) == 2
    assert all(src == plain_src for src in decoded)
    assert all(scored_pair == (plain_src, plain_tgt) for scored_pair in scored)
    translator = Translator.from_run(run_dir, device="cpu")
    assert translator.encode(sources)[0] == plain_src


def test_a_run_killed_mid_epoch_with_sampling_resumes_exactly(tmp_path, monkeypatch):
    def config(folder: str) -> RunConfig:
        return sampling_config(
            tmp_path / folder, alpha=0.1, max_steps=40, checkpoint_every=4, valid_every=10
        )

    straight = recorded_batches(monkeypatch)
    expected = checkpoint.load_state(RunDir(training.train(config("a"))).state)

    recorded_batches(monkeypatch, kill_after=34)
    with pytest.raises(Killed):
        training.train(config("b"))
    state = checkpoint.load_state(RunDir(tmp_path / "b" / "runs" / "task").state)
    progress = state["progress"]
    assert (progress["step"], progress["epoch"]) == (32, 1)  # epoch 1 has its own segmentation
    assert progress["batch_in_epoch"] > 0  # killed mid-epoch: resume must find its place
    resumed = recorded_batches(monkeypatch)
    got = checkpoint.load_state(RunDir(training.train(config("b"), resume=True)).state)
    assert [b["step"] for b in resumed] == list(range(33, 41))
    assert resumed == straight[32:]  # the same pairs, each segmented alike, in the same batches
    for name, tensor in expected["model"].items():
        torch.testing.assert_close(got["model"][name], tensor, rtol=1e-5, atol=1e-6)


def test_resume_takes_new_sampling_settings_but_refuses_a_new_vocabulary(tmp_path):
    cfg = sampling_config(tmp_path, alpha=0.1, max_steps=2)
    run_dir = training.train(cfg)
    more = dataclasses.replace(
        cfg,
        subword=dataclasses.replace(cfg.subword, sampling_alpha=0.3),
        train=dataclasses.replace(cfg.train, max_steps=4),
    )
    training.train(more, resume=True)
    saved, _ = checkpoint.load_config(run_dir)
    assert saved.subword.sampling_alpha == 0.3
    assert checkpoint.load_state(RunDir(run_dir).state)["progress"]["step"] == 4
    bigger = dataclasses.replace(more, subword=dataclasses.replace(more.subword, vocab_size=200))
    with pytest.raises(ValueError, match=r"^--subword\.vocab_size differ"):
        training.train(bigger, resume=True)
