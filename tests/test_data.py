"""Datasets in memory and on disk, batches and length-bucketed batching: budget, coverage,
determinism, sharding."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from seq2seq import data as data_module
from seq2seq.config import SubwordConfig
from seq2seq.data import (
    FileTokenArrays,
    ParallelDataset,
    TokenArrays,
    TokenBatchSampler,
    TokenDataset,
)
from seq2seq.tokenizer import BOS_ID, EOS_ID, PAD_ID, Tokenizer


def random_lengths(n: int, seed: int = 0) -> tuple[list[int], list[int]]:
    rng = random.Random(seed)
    src = [rng.randint(1, 40) for _ in range(n)]
    return src, [max(1, s + rng.randint(-5, 5)) for s in src]


def test_batch_tensors_pad_and_shift():
    data = ParallelDataset([[5, 6, 7], [8]], [[9, 10], [11, 12, 13]])
    batch = data.collate([0, 1])
    assert batch.src_ids.tolist() == [[5, 6, 7], [8, PAD_ID, PAD_ID]]
    assert batch.src_lengths.tolist() == [3, 1]
    assert batch.tgt_in.tolist() == [[BOS_ID, 9, 10, PAD_ID], [BOS_ID, 11, 12, 13]]
    assert batch.tgt_out.tolist() == [[9, 10, EOS_ID, PAD_ID], [11, 12, 13, EOS_ID]]
    assert batch.src_pad_mask.tolist() == [[False] * 3, [False, True, True]]
    assert batch.num_tgt_tokens == 7


def test_every_batch_is_within_budget_and_every_pair_used_once():
    src, tgt = random_lengths(2000)
    sampler = TokenBatchSampler(src, tgt, max_tokens=300, seed=3)
    batches = sampler.batches(epoch=0)
    for batch in batches:
        assert len(batch) * max(max(src[i], tgt[i]) for i in batch) <= 300
    used = sorted(i for batch in batches for i in batch)
    assert used == list(range(2000))


def test_buckets_waste_little_on_padding():
    src, tgt = random_lengths(2000)
    batches = TokenBatchSampler(src, tgt, max_tokens=600).batches(0)
    real = sum(tgt)
    padded = sum(len(b) * max(tgt[i] for i in b) for b in batches)
    assert padded / real < 1.1  # sorted by length: < 10% padding on the target side


def test_same_seed_same_order_other_seed_or_epoch_other_order():
    src, tgt = random_lengths(500)
    a = TokenBatchSampler(src, tgt, 200, seed=1)
    assert a.batches(0) == TokenBatchSampler(src, tgt, 200, seed=1).batches(0)
    assert a.batches(0) != a.batches(1)
    assert a.batches(0) != TokenBatchSampler(src, tgt, 200, seed=2).batches(0)


def test_ranks_share_the_batches_without_overlap():
    src, tgt = random_lengths(500)
    full = TokenBatchSampler(src, tgt, 200, seed=1).batches(0)
    ranks = [
        TokenBatchSampler(src, tgt, 200, seed=1, num_replicas=3, rank=r).batches(0)
        for r in range(3)
    ]
    assert len({len(r) for r in ranks}) == 1  # same number of steps on every rank
    assert sum(ranks, []) != []
    assert sorted(map(tuple, sum(ranks, []))) == sorted(map(tuple, full[: len(ranks[0]) * 3]))


def test_resume_position_skips_done_batches():
    src, tgt = random_lengths(300)
    sampler = TokenBatchSampler(src, tgt, 200, seed=1)
    assert list(sampler.iter_epoch(2, start=4)) == sampler.batches(2)[4:]


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="2 source but 1 target"):
        ParallelDataset([[4], [5]], [[6]])
    with pytest.raises(ValueError, match="empty source sequence at index 1"):
        ParallelDataset([[4], []], [[6], [7]])
    with pytest.raises(ValueError, match="rank=2"):
        TokenBatchSampler([1], [1], 10, num_replicas=2, rank=2)
    assert torch.equal(ParallelDataset([[4]], [[]]).collate([0]).tgt_out, torch.tensor([[EOS_ID]]))


def test_text_pairs_are_encoded_each_side_by_its_own_model():
    sources = ["der Hund läuft schnell", "die Katze schläft", "ein Mann liest"] * 20
    targets = ["the dog runs fast", "the cat sleeps", "a man reads"] * 20
    tokenizer = Tokenizer.train(
        sources, targets, SubwordConfig(vocab_size=300, model_type="bpe", joint=False)
    )
    pairs = list(zip(sources[:3], targets[:3], strict=True))
    data = ParallelDataset.from_pairs(tokenizer, pairs)
    assert data.src == tokenizer.encode_src(sources[:3])
    assert data.tgt == tokenizer.encode_tgt(targets[:3])
    # the two models differ, so a side encoded by the other's model would show
    assert tokenizer.encode_src(targets[:3]) != data.tgt


def test_token_arrays_in_memory_and_in_files_batch_as_the_lists_do(tmp_path):
    rng = random.Random(4)
    src = [[rng.randrange(4, 300) for _ in range(rng.randint(1, 9))] for _ in range(50)]
    tgt = [[rng.randrange(4, 300) for _ in range(rng.randint(0, 9))] for _ in range(50)]
    lists = ParallelDataset(src, tgt)
    in_memory = TokenDataset(TokenArrays.from_lists(src), TokenArrays.from_lists(tgt))
    stores = []
    for side, sequences in (("src", src), ("tgt", tgt)):
        arrays = TokenArrays.from_lists(sequences, np.uint16)
        arrays.ids.tofile(tmp_path / f"{side}.ids")
        arrays.offsets.tofile(tmp_path / f"{side}.offsets")
        stores.append(
            FileTokenArrays(
                tmp_path / f"{side}.ids", tmp_path / f"{side}.offsets", arrays.lengths(), np.uint16
            )
        )
    on_disk = TokenDataset(*stores)
    indices = [49, 0, 17, 17, 3]
    expected = lists.collate(indices)
    for data in (in_memory, on_disk):
        assert list(data.src_lengths) == lists.src_lengths
        assert list(data.tgt_lengths) == lists.tgt_lengths
        batch = data.collate(indices)
        for name in ("src_ids", "src_lengths", "tgt_in", "tgt_out"):
            assert torch.equal(getattr(batch, name), getattr(expected, name)), name
    assert on_disk.src.to_lists() == src and on_disk.tgt.to_lists(3) == tgt[:3]


def list_batches(src, tgt, max_tokens, seed, epoch):
    """The batches as Python lists cut them before the sampler planned epochs in arrays."""
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(src)))
    rng.shuffle(order)
    order.sort(key=lambda i: (tgt[i], src[i]))
    batches, current, longest = [], [], 0
    for i in order:
        new_longest = max(longest, src[i], tgt[i])
        if current and new_longest * (len(current) + 1) > max_tokens:
            batches.append(current)
            current, new_longest = [], max(src[i], tgt[i])
        current.append(i)
        longest = new_longest
    batches.append(current)
    rng.shuffle(batches)
    return batches


def test_batches_are_those_of_python_lists_up_to_a_million_pairs_and_valid_above(monkeypatch):
    src, tgt = random_lengths(3000, seed=5)
    for epoch in (0, 3):
        expected = list_batches(src, tgt, 250, seed=2, epoch=epoch)
        assert TokenBatchSampler(src, tgt, 250, seed=2).batches(epoch) == expected
    monkeypatch.setattr(data_module, "EXACT_SHUFFLE_PAIRS", 1000)  # numpy's generator instead
    sampler = TokenBatchSampler(src, tgt, 250, seed=2)
    batches = sampler.batches(0)
    assert batches != list_batches(src, tgt, 250, seed=2, epoch=0)
    assert sorted(i for batch in batches for i in batch) == list(range(3000))
    assert all(len(b) * max(max(src[i], tgt[i]) for i in b) <= 250 for b in batches)
    assert batches == TokenBatchSampler(src, tgt, 250, seed=2).batches(0) != sampler.batches(1)
