"""Decoding methods by name (greedy, beam, sample), and decoding a whole corpus in batches.

`search` runs the method a `DecodeConfig` names, through the registry `METHODS`; greedy and
beam search are here, sampling in `seq2seq.sampling`, what all share in `seq2seq.decoding`.
Shapes: B sentences, S source length, V target vocabulary, K beam size, N active rows (B or B*K),
t tokens generated so far.

The policy, shared by all methods and by ``bench/reference_beam.py``:

- PAD and BOS are never generated (their log-probs are masked to -inf); UNK may be.
- A sentence's output has at most ``ceil(max_length_ratio * src_len) + max_length_offset``
  generated tokens, EOS included: a hypothesis that reaches the limit ends there without EOS.
- ``score = log_prob / lp(n)``, ``lp(n) = ((5 + n) / 6) ** alpha`` (Wu et al. 2016, GNMT §7),
  n = generated tokens counting EOS; ``alpha = 0`` ranks by the raw log-probability.
- Beam (fairseq's step): rank the 2K best one-token extensions of a sentence's beams; EOS ones
  among the first K are finished, the first K others stay active, so K stay active after every
  step. A sentence is done when it has K finished hypotheses (``cfg.exhaustive=False``, the usual
  early stop), or (exhaustive) when in addition no active one can beat the worst of them: an
  active log-prob L <= 0 can only fall and its length is at most the limit, so ``L / lp(limit)``
  bounds every score it can still reach (with alpha = 0 the bound is L itself). Done sentences
  leave the batch. Exhaustively with alpha = 0, beam size 1 equals greedy; with alpha > 0 it may
  search on after greedy's EOS and only ever find a higher score.
- Sampling: each of a sentence's samples draws its tokens one by one, until EOS or the limit,
  from the model's distribution reshaped by temperature, top-k and top-p; its log-prob and score
  are the model's own, as for greedy and beam, so that all three rank on one scale.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from seq2seq.config import DecodeConfig, DecodeMethod
from seq2seq.data import pad
from seq2seq.decoding import (
    Decodable,
    EncoderOutputLike,
    Hypothesis,
    Selectable,
    decoding_mode,
    length_penalty,
    make_hypothesis,
    mask_never_generated,
    max_output_lengths,
)
from seq2seq.sampling import corpus_batch_seed, sample_search
from seq2seq.tokenizer import BOS_ID, EOS_ID, PAD_ID

# How one method decodes a batch: ``(model, src_ids (B, S), src_lengths (B,), cfg)`` -> per
# sentence, in input order, its hypotheses, best first.
SearchMethod = Callable[[Decodable, Tensor, Tensor, DecodeConfig], list[list[Hypothesis]]]


def _float64(values: list[float], device: torch.device) -> Tensor:
    return torch.tensor(values, dtype=torch.float64, device=device)


def search(
    model: Decodable, src_ids: Tensor, src_lengths: Tensor, cfg: DecodeConfig
) -> list[list[Hypothesis]]:
    """Decode a batch with the method ``cfg`` names (``auto``: beam, greedy at beam size 1).

    Args:
        src_ids: ``(B, S)`` padded source ids; src_lengths: ``(B,)``.

    Returns:
        Per sentence, in input order, at most ``cfg.nbest`` hypotheses, best first.
    """
    return METHODS[cfg.resolved_method](model, src_ids, src_lengths, cfg)


def greedy_search(
    model: Decodable, src_ids: Tensor, src_lengths: Tensor, cfg: DecodeConfig
) -> list[list[Hypothesis]]:
    """The most probable token at every step, for a batch.

    Args:
        src_ids: ``(B, S)`` padded source ids; src_lengths: ``(B,)``.

    Returns:
        Per sentence, in input order, a list holding its one hypothesis.
    """
    # A beam of one that follows one candidate per step and stops at its first finished one.
    return _search(model, src_ids, src_lengths, cfg, beam_size=1, width=1, exhaustive=False)


def beam_search(
    model: Decodable, src_ids: Tensor, src_lengths: Tensor, cfg: DecodeConfig
) -> list[list[Hypothesis]]:
    """Batched beam search: all beams of all sentences in one ``(B*K, ...)`` batch.

    Args:
        src_ids: ``(B, S)`` padded source ids; src_lengths: ``(B,)``.

    Returns:
        Per sentence, in input order, its ``cfg.nbest`` best hypotheses, best first (fewer only
        if the vocabulary allows fewer distinct outputs than that).
    """
    k = cfg.beam_size
    return _search(
        model, src_ids, src_lengths, cfg, beam_size=k, width=2 * k, exhaustive=cfg.exhaustive
    )


METHODS: dict[DecodeMethod, SearchMethod] = {
    "greedy": greedy_search,
    "beam": beam_search,
    "sample": sample_search,
}


@dataclass
class Candidates:
    """The best one-token extensions of each sentence's beams, best first. All ``(B, n)``."""

    scores: Tensor  # cumulative log-probs
    beams: Tensor  # parent beam within its sentence, in [0, K_cur)
    tokens: Tensor  # the extending token


def top_candidates(scores: Tensor, log_probs: Tensor, n: int) -> Candidates:
    """Top-n over all K_cur × V extensions per sentence.

    Args:
        scores: ``(B, K_cur)`` cumulative log-probs of the active beams.
        log_probs: ``(B*K_cur, V)`` next-token log-probs, rows grouped by sentence.
        n: how many to keep; when K_cur × V < n the rest are padded as impossible (-inf, PAD).
    """
    batch, k_cur = scores.shape
    vocab = log_probs.size(1)
    total = (scores[:, :, None] + log_probs.view(batch, k_cur, vocab)).view(batch, -1)
    if total.size(1) < n:  # a vocabulary smaller than the beam, on the first step
        total = torch.nn.functional.pad(total, (0, n - total.size(1)), value=-math.inf)
    top, flat = total.topk(n, dim=1)  # (B, n)
    real = flat < k_cur * vocab
    beams = torch.where(real, flat // vocab, 0)
    tokens = torch.where(real, flat % vocab, PAD_ID)
    return Candidates(top, beams, tokens)


@dataclass
class _Beams:
    """The active beams of the sentences still being decoded; rows are sentence-major."""

    sent: Tensor  # (B',) original index of each sentence still in the batch
    scores: Tensor  # (B', K_cur) cumulative log-probs, descending
    tokens: Tensor  # (B'*K_cur, t) generated so far
    attention: Tensor  # (B'*K_cur, t, S)
    state: Selectable
    enc: EncoderOutputLike


def _search(
    model: Decodable,
    src_ids: Tensor,
    src_lengths: Tensor,
    cfg: DecodeConfig,
    beam_size: int,
    width: int,
    exhaustive: bool,
) -> list[list[Hypothesis]]:
    """The shared loop: rank ``width`` candidates per sentence, keep ``beam_size`` active.

    A sentence stops at its length limit, and otherwise when it has ``beam_size`` finished
    hypotheses and, if ``exhaustive``, no active one can still beat the worst of them.
    """
    k = beam_size
    with decoding_mode(model):
        enc = model.encode(src_ids, src_lengths)
        batch, device = src_ids.size(0), src_ids.device
        beams = _Beams(
            sent=torch.arange(batch, device=device),
            scores=torch.zeros(batch, 1, device=device),  # one beam per sentence at first
            tokens=torch.empty(batch, 0, dtype=torch.long, device=device),
            attention=torch.empty(batch, 0, enc.src_pad_mask.size(1), device=device),
            state=model.initial_state(enc),
            enc=enc,
        )
        src_lens = src_lengths.tolist()
        limit_list = max_output_lengths(src_lengths, cfg)
        limits = torch.tensor(limit_list, device=device)
        # The stopping test runs in float64 on Python-computed penalties, so that a one-sentence
        # reference computing it with Python floats takes exactly the same decisions.
        limit_lp = _float64([length_penalty(n, cfg.length_penalty) for n in limit_list], device)
        worst = _float64([-math.inf] * batch, device)  # (B,) K-th finished score, or -inf
        finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
        prev = torch.full((batch,), BOS_ID, dtype=torch.long, device=device)
        step = 0
        while beams.sent.numel():
            step += 1
            log_probs, beams.state, att = model.decode_step(prev, beams.state, beams.enc)
            att = att.float()  # (N, S)
            cand = top_candidates(beams.scores, mask_never_generated(log_probs), width)
            at_limit = limits[beams.sent] <= step  # (B',)
            for s in _finish(beams, cand, att, at_limit, finished, src_lens, k, cfg):
                worst[s] = finished[s][-1].score if len(finished[s]) == k else -math.inf
            scores, parents, tokens = _select_active(cand, k)
            best, kth = scores[:, 0], worst[beams.sent]  # (B',)
            if exhaustive:  # L <= 0 only falls; L / lp(limit) bounds any score it can reach
                done = at_limit | (best.double() / limit_lp[beams.sent] <= kth)
            else:
                done = at_limit | (kth > -math.inf) | (best == -math.inf)
            prev = _advance(beams, ~done, scores, parents, tokens, att)
        return [hyps[: cfg.nbest] for hyps in finished]


def _finishing(cand: Candidates, at_limit: Tensor, k: int) -> Tensor:
    """``(B', 2K)`` bool: EOS among the first K, or all first K where the length limit is hit."""
    first_k = torch.zeros_like(cand.tokens, dtype=torch.bool)
    first_k[:, :k] = True
    possible = first_k & torch.isfinite(cand.scores)
    return possible & ((cand.tokens == EOS_ID) | at_limit[:, None])


def _finish(
    beams: _Beams,
    cand: Candidates,
    att: Tensor,
    at_limit: Tensor,
    finished: list[list[Hypothesis]],
    src_lens: list[int],
    k: int,
    cfg: DecodeConfig,
) -> list[int]:
    """Move finishing candidates to their sentence's list, keeping its best K sorted.

    Returns the sentences that received one.
    """
    rows, cols = _finishing(cand, at_limit, k).nonzero(as_tuple=True)  # (M,) each
    parents = rows * beams.scores.size(1) + cand.beams[rows, cols]  # (M,)
    tokens = torch.cat([beams.tokens[parents], cand.tokens[rows, cols, None]], dim=1)  # (M, t)
    attention = torch.cat([beams.attention[parents], att[parents][:, None]], dim=1)  # (M, t, S)
    sents, log_probs = beams.sent[rows].tolist(), cand.scores[rows, cols].tolist()
    for i, (s, ids, log_prob) in enumerate(zip(sents, tokens.tolist(), log_probs, strict=True)):
        hyp = make_hypothesis(ids, attention[i], log_prob, src_lens[s], cfg.length_penalty)
        # sorted() is stable: on a tie the earlier-finished hypothesis stays ahead
        finished[s] = sorted([*finished[s], hyp], key=lambda h: -h.score)[:k]
    return sorted(set(sents))


def _select_active(cand: Candidates, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """The first K candidates that do not end in EOS: ``(scores, parents, tokens)``, each (B', K).

    Of 2K candidates at least K qualify (each beam has one EOS extension, and K_cur <= K). With
    fewer candidates EOS ones may fill up the rest; their sentence is then done anyway.
    """
    order = (cand.tokens == EOS_ID).to(torch.uint8).argsort(dim=1, stable=True)[:, :k]  # (B', K)
    return cand.scores.gather(1, order), cand.beams.gather(1, order), cand.tokens.gather(1, order)


def _advance(
    beams: _Beams, keep: Tensor, scores: Tensor, parents: Tensor, tokens: Tensor, att: Tensor
) -> Tensor:
    """Reorder beams to their parents, append the new tokens, drop done sentences.

    Returns the ``(B'*K,)`` ids to feed at the next step.
    """
    batch, k_cur = beams.scores.shape
    k = scores.size(1)
    kept = keep.nonzero().squeeze(1)  # (B'',)
    rows = (torch.arange(batch, device=keep.device)[:, None] * k_cur + parents)[kept].view(-1)
    new_tokens = tokens[kept].view(-1)  # (B''*K,)
    beams.tokens = torch.cat([beams.tokens[rows], new_tokens[:, None]], dim=1)  # (B''*K, t)
    beams.attention = torch.cat([beams.attention[rows], att[rows][:, None]], dim=1)
    beams.scores, beams.sent = scores[kept], beams.sent[kept]
    if rows.numel():
        beams.state = beams.state.select(rows)
        if k_cur != k or kept.numel() < batch:  # the encoding changes only when rows do
            beams.enc = beams.enc.select((kept * k_cur).repeat_interleave(k))
    return new_tokens


# One search call holds, per row (sentence x beam), the (V,) log-probs of a step, its candidates'
# scores, and the encoder output and attention history, both (S, H) or (t, S) wide. Rows are
# capped so that a large beam decodes fewer sentences at a time instead of taking the machine's
# memory (beam 1000 on 64 sentences in one call needs about 23 GB); row x source-token cells are
# capped too, because the attention history grows with the square of the source length.
MAX_DECODE_ROWS = 1024
MAX_DECODE_CELLS = 1 << 16


def decode_batch_size(batch_size: int, beam_size: int, src_len: int) -> int:
    """Sentences per search call: at most ``batch_size``, fewer when beam x batch is large."""
    by_rows = MAX_DECODE_ROWS // beam_size
    by_cells = MAX_DECODE_CELLS // (beam_size * max(src_len, 1))
    return max(1, min(batch_size, by_rows, by_cells))


def decode_corpus(
    model: Decodable,
    src: Sequence[Sequence[int]],
    cfg: DecodeConfig,
    device: torch.device | str,
    batch_size: int = 64,
) -> list[list[Hypothesis]]:
    """Decode many id sequences (no BOS/EOS) in length-sorted batches of up to ``batch_size``.

    A batch holds fewer sentences when its beams would take too much memory
    (`decode_batch_size`); batching changes the scores only by float rounding.
    Returns ``search``'s result per sentence, in input order.
    """
    empty = [i for i, ids in enumerate(src) if not ids]
    if empty:
        raise ValueError(f"cannot decode an empty source sentence (index {empty[0]})")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = sorted(range(len(src)), key=lambda i: -len(src[i]))  # similar lengths pad little
    results: list[list[Hypothesis]] = [[] for _ in src]
    start = 0
    while start < len(order):
        # the longest sentence comes first in each batch, and sets its width
        size = decode_batch_size(batch_size, cfg.rows_per_sentence, len(src[order[start]]))
        chunk = order[start : start + size]
        # each batch samples from a stream of its own, not a repeat of the first batch's
        batch_cfg = dataclasses.replace(cfg, seed=corpus_batch_seed(cfg.seed, start))
        start += size
        lengths = torch.tensor([len(src[i]) for i in chunk])
        src_ids = pad([src[i] for i in chunk])
        hyps = search(model, src_ids.to(device), lengths.to(device), batch_cfg)
        for i, sentence_hyps in zip(chunk, hyps, strict=True):
            results[i] = sentence_hyps
    return results
