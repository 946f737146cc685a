"""A plain beam search, one sentence at a time: the yardstick for `seq2seq.search.beam_search`.

It shares nothing with `seq2seq.search` but the model it drives and the `Hypothesis` container:
the length limit, the PAD/BOS masking, the GNMT length penalty, the scoring, the step and the
stopping rule are written out again here from the policy in `seq2seq/search.py`'s docstring:

- PAD and BOS are never generated; UNK may be.
- At most ``ceil(max_length_ratio * src_len) + max_length_offset`` generated tokens (at least 1),
  EOS included; a hypothesis that reaches the limit ends there without EOS.
- ``score = log_prob / lp(n)``, ``lp(n) = ((5 + n) / 6) ** alpha``, n counting EOS.
- A step ranks the 2K best one-token extensions; EOS ones among the first K finish, the first K
  others stay active. Stop at K finished, or (exhaustive) once no active hypothesis can beat
  the worst of them: its log-prob over lp(limit) bounds every score it can still reach.

So a bug in one of the batched search's helpers cannot cancel out here; `tests/test_search.py`
checks that both return the same hypotheses, and `bench/decode_throughput.py` times both.
Written to be obviously right, not fast: candidates are ranked by a Python sort and hypotheses
are plain lists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from seq2seq.config import DecodeConfig
from seq2seq.search import Hypothesis
from seq2seq.tokenizer import BOS_ID, EOS_ID, PAD_ID


@dataclass
class _Beam:
    tokens: list[int]  # generated so far, EOS included if it ended with one
    log_prob: float  # their summed log-probs, summed in float32 as the batched search does
    attention: list[Tensor]  # one (S,) row per generated token
    parent: int = 0  # its row in the previous step's batch


def output_limit(src_length: int, cfg: DecodeConfig) -> int:
    """Most generated tokens (EOS included) for a source of ``src_length`` tokens."""
    return max(1, math.ceil(cfg.max_length_ratio * src_length) + cfg.max_length_offset)


def gnmt_penalty(length: int, alpha: float) -> float:
    """lp(n) = ((5 + n) / 6) ** alpha (Wu et al. 2016, GNMT §7)."""
    return ((5 + length) / 6) ** alpha


def finish(beam: _Beam, src_length: int, alpha: float) -> Hypothesis:
    """A finished beam as a hypothesis: EOS (and its attention row) dropped, scored."""
    tokens, rows = beam.tokens, beam.attention
    if tokens[-1] == EOS_ID:
        tokens, rows = tokens[:-1], rows[:-1]
    attention = torch.stack(rows) if rows else torch.zeros(0, src_length)
    return Hypothesis(
        token_ids=list(tokens),
        score=beam.log_prob / gnmt_penalty(len(beam.tokens), alpha),
        log_prob=beam.log_prob,
        attention=attention[:, :src_length].float().cpu(),
    )


def reference_beam_search(
    model: Any, src_ids: Tensor, src_length: int, cfg: DecodeConfig
) -> list[Hypothesis]:
    """Beam search for one sentence ``src_ids`` ``(1, S)``; its ``cfg.nbest`` best, best first.

    ``model`` has ``encode``, ``initial_state`` and ``decode_step`` like `seq2seq.model.Seq2Seq`.
    """
    k, alpha = cfg.beam_size, cfg.length_penalty
    device = src_ids.device
    limit = output_limit(src_length, cfg)
    was_training = model.training
    model.train(False)
    try:
        with torch.inference_mode():
            enc = model.encode(src_ids, torch.tensor([src_length], device=device))
            state = model.initial_state(enc)
            beams = [_Beam([], 0.0, [])]
            finished: list[Hypothesis] = []
            for step in range(1, limit + 1):
                prev = torch.tensor([b.tokens[-1] if b.tokens else BOS_ID for b in beams])
                rows = torch.zeros(len(beams), dtype=torch.long, device=device)
                log_probs, state, att = model.decode_step(prev.to(device), state, enc.select(rows))
                beams, ended = _step(beams, log_probs, att.float(), k, at_limit=step == limit)
                for beam in ended:
                    # sorted() is stable: on a tie the earlier-finished hypothesis stays ahead
                    hyps = [*finished, finish(beam, src_length, alpha)]
                    finished = sorted(hyps, key=lambda h: -h.score)[:k]
                if not beams:  # the limit, or nothing possible left
                    break
                if len(finished) == k:
                    best_reachable = beams[0].log_prob / gnmt_penalty(limit, alpha)
                    if not cfg.exhaustive or best_reachable <= finished[-1].score:
                        break
                state = state.select(torch.tensor([b.parent for b in beams], device=device))
            return finished[: cfg.nbest]
    finally:
        model.train(was_training)


def _step(
    beams: list[_Beam], log_probs: Tensor, att: Tensor, k: int, at_limit: bool
) -> tuple[list[_Beam], list[_Beam]]:
    """Extend ``beams`` by one token: (the next active beams, the ones that finish).

    ``log_probs`` ``(len(beams), V)``. Of the 2K best extensions, those ending in EOS among the
    first K finish and the first K others stay active; at the length limit the first K all
    finish and none stays.
    """
    candidates = []
    for i, beam in enumerate(beams):
        row = log_probs[i].float().cpu().clone()
        row[[PAD_ID, BOS_ID]] = -math.inf  # never generated
        total = (torch.tensor(beam.log_prob, dtype=torch.float32) + row).tolist()
        candidates += [(score, i, token) for token, score in enumerate(total) if score > -math.inf]
    candidates.sort(key=lambda c: -c[0])  # stable: ties stay in (beam, token) order
    active: list[_Beam] = []
    ended: list[_Beam] = []
    for rank, (score, i, token) in enumerate(candidates[: 2 * k]):
        grown = _Beam(beams[i].tokens + [token], score, beams[i].attention + [att[i]], parent=i)
        if token == EOS_ID or at_limit:
            if rank < k:
                ended.append(grown)
        elif len(active) < k:
            active.append(grown)
    return active, ended
