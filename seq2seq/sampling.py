"""Sampling: outputs drawn token by token from the model's distribution, reshaped by temperature,
top-k and top-p, all samples of all sentences in one batch, reproducible under a seed.

Shapes: B sentences, n samples per sentence, N rows still being decoded (at most B*n), V target
vocabulary, S source length, t tokens generated so far.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from seq2seq.config import DecodeConfig
from seq2seq.decoding import (
    Decodable,
    Hypothesis,
    LogProbProcessor,
    decoding_mode,
    make_hypothesis,
    mask_never_generated,
    max_output_lengths,
)
from seq2seq.tokenizer import BOS_ID, EOS_ID


def scale_by_temperature(temperature: float) -> LogProbProcessor:
    """Divide log-probs by ``temperature``: below 1 the likeliest tokens gain, above 1 the rest."""

    def scale(log_probs: Tensor) -> Tensor:
        # Shifted so that each row's best is 0: however small the temperature, the best token
        # stays finite and the others go to -inf, never every one (a NaN distribution).
        best = log_probs.amax(dim=1, keepdim=True)  # (N, 1)
        return (log_probs - best) / temperature

    return scale


def keep_top_k(k: int) -> LogProbProcessor:
    """Only the ``k`` likeliest tokens of each row may be drawn (ties with the k-th stay)."""

    def keep(log_probs: Tensor) -> Tensor:
        if k >= log_probs.size(1):
            return log_probs
        kth = log_probs.topk(k, dim=1).values[:, -1:]  # (N, 1)
        return log_probs.masked_fill(log_probs < kth, -math.inf)

    return keep


def keep_top_p(p: float) -> LogProbProcessor:
    """Nucleus: the smallest set of likeliest tokens whose probability reaches ``p``
    (Holtzman et al. 2020, §3.1); the rest become impossible."""

    def keep(log_probs: Tensor) -> Tensor:
        # float64: the running sums decide which token crosses p
        probs, order = log_probs.double().softmax(dim=1).sort(dim=1, descending=True)  # (N, V)
        mass_before = probs.cumsum(dim=1) - probs  # of the likelier tokens, ranked
        drop_ranked = mass_before >= p  # p was reached without this token
        drop = torch.zeros_like(drop_ranked).scatter(1, order, drop_ranked)  # vocabulary order
        return log_probs.masked_fill(drop, -math.inf)

    return keep


def sampling_processors(cfg: DecodeConfig) -> list[LogProbProcessor]:
    """Temperature, then top-k, then top-p (the order of Hugging Face's samplers): the nucleus
    is measured on the tempered distribution. Settings that change nothing are left out."""
    processors = []
    if cfg.temperature != 1.0:
        processors.append(scale_by_temperature(cfg.temperature))
    if cfg.top_k > 0:
        processors.append(keep_top_k(cfg.top_k))
    if cfg.top_p < 1.0:
        processors.append(keep_top_p(cfg.top_p))
    return processors


def draw_tokens(
    log_probs: Tensor, processors: Sequence[LogProbProcessor], generator: torch.Generator
) -> Tensor:
    """One token per row from ``softmax`` of the processed log-probs. ``(N, V) -> (N,)``."""
    for process in processors:
        log_probs = process(log_probs)
    return torch.multinomial(log_probs.softmax(dim=1), 1, generator=generator).squeeze(1)


def corpus_batch_seed(seed: int, batch_start: int) -> int:
    """The seed for the batch of a corpus that starts at position ``batch_start``.

    Derived from both (numpy's SeedSequence mixes them), so that the batches of one corpus, and
    of two seeds, draw from unrelated streams.
    """
    state = np.random.SeedSequence([seed, batch_start]).generate_state(1, dtype=np.uint64)
    return int(state[0]) >> 1  # DecodeConfig.seed is below 2**63


def sample_search(
    model: Decodable, src_ids: Tensor, src_lengths: Tensor, cfg: DecodeConfig
) -> list[list[Hypothesis]]:
    """``cfg.num_samples`` samples per sentence, all rows of all sentences in one batch.

    Tokens are drawn from the model's distribution after `sampling_processors`, with a
    ``torch.Generator`` seeded from ``cfg.seed`` (the global RNG is left alone). A sample ends at
    EOS or at the length limit, like a greedy or beam hypothesis, and is scored like them by the
    model's own log-probability.

    Args:
        src_ids: ``(B, S)`` padded source ids; src_lengths: ``(B,)``.

    Returns:
        Per sentence, in input order, its ``cfg.nbest`` best samples by score, best first (the
        same output may be drawn more than once).
    """
    processors = sampling_processors(cfg)
    with decoding_mode(model):
        batch, device = src_ids.size(0), src_ids.device
        generator = torch.Generator(device=device).manual_seed(cfg.seed)
        sent = torch.arange(batch, device=device).repeat_interleave(cfg.num_samples)  # (B*n,)
        enc = model.encode(src_ids, src_lengths).select(sent)
        state = model.initial_state(enc)
        limits = torch.tensor(max_output_lengths(src_lengths, cfg), device=device)[sent]
        src_lens = src_lengths.tolist()
        rows = sent.numel()
        tokens = torch.empty(rows, 0, dtype=torch.long, device=device)  # (N, t)
        attention = torch.empty(rows, 0, enc.src_pad_mask.size(1), device=device)  # (N, t, S)
        log_prob = torch.zeros(rows, device=device)  # (N,) float32, summed as greedy sums
        samples: list[list[Hypothesis]] = [[] for _ in range(batch)]
        prev = torch.full((rows,), BOS_ID, dtype=torch.long, device=device)
        step = 0
        while sent.numel():
            step += 1
            log_probs, state, att = model.decode_step(prev, state, enc)
            log_probs = mask_never_generated(log_probs)  # (N, V)
            prev = draw_tokens(log_probs, processors, generator)  # (N,)
            log_prob = log_prob + log_probs.gather(1, prev[:, None]).squeeze(1)
            tokens = torch.cat([tokens, prev[:, None]], dim=1)
            attention = torch.cat([attention, att.float()[:, None]], dim=1)
            done = (prev == EOS_ID) | (limits <= step)  # (N,)
            ended = done.nonzero().squeeze(1)
            for s, ids, lp, att_rows in zip(
                sent[ended].tolist(),
                tokens[ended].tolist(),
                log_prob[ended].tolist(),
                attention[ended],
                strict=True,
            ):
                samples[s].append(
                    make_hypothesis(ids, att_rows, lp, src_lens[s], cfg.length_penalty)
                )
            if ended.numel():  # finished samples leave the batch
                keep = (~done).nonzero().squeeze(1)
                sent, limits, prev = sent[keep], limits[keep], prev[keep]
                tokens, attention, log_prob = tokens[keep], attention[keep], log_prob[keep]
                if keep.numel():
                    state, enc = state.select(keep), enc.select(keep)
        # sorted() is stable: samples of equal score keep the order they finished in
        return [sorted(hyps, key=lambda h: -h.score)[: cfg.nbest] for hyps in samples]
