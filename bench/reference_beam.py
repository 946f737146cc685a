"""A plain beam search, one sentence at a time: the yardstick for `seq2seq.search.beam_search`.

It follows the batched search's policy step by step: the same model interface, PAD/BOS masking
(`mask_never_generated`), length limit (`max_output_lengths`), scoring (`make_hypothesis`), the
same step (rank the 2K best extensions; EOS among the first K finish, the first K others
stay active) and the same stopping rule (K finished; if exhaustive, also no active one can
beat the worst: its log-prob over lp(limit) is at most that). So both return exactly the
same hypotheses, which `tests/test_search.py` checks and a benchmark can time. Written to be
obviously right, not fast: candidates are ranked by a Python sort and hypotheses are plain
lists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from seq2seq.config import DecodeConfig
from seq2seq.search import (
    Decodable,
    Hypothesis,
    length_penalty,
    make_hypothesis,
    mask_never_generated,
    max_output_lengths,
)
from seq2seq.tokenizer import BOS_ID, EOS_ID


@dataclass
class _Beam:
    tokens: list[int]  # generated so far
    log_prob: float  # their summed log-probs (a float32 value, as in the batched search)
    attention: list[Tensor]  # one (S,) row per generated token
    parent: int = 0  # its row in the previous step's batch


def reference_beam_search(
    model: Decodable, src_ids: Tensor, src_length: int, cfg: DecodeConfig
) -> list[Hypothesis]:
    """Beam search for one sentence ``src_ids`` ``(1, S)``; its ``cfg.nbest`` best, best first."""
    k, alpha = cfg.beam_size, cfg.length_penalty
    device = src_ids.device
    lengths = torch.tensor([src_length], device=device)
    limit = max_output_lengths(lengths, cfg)[0]
    was_training = model.training
    model.train(False)
    try:
        with torch.inference_mode():
            enc = model.encode(src_ids, lengths)
            state = model.initial_state(enc)
            beams = [_Beam([], 0.0, [])]
            finished: list[Hypothesis] = []
            for step in range(1, limit + 1):
                prev = torch.tensor([b.tokens[-1] if b.tokens else BOS_ID for b in beams])
                rows = torch.zeros(len(beams), dtype=torch.long, device=device)
                log_probs, state, att = model.decode_step(prev.to(device), state, enc.select(rows))
                at_limit = step == limit
                beams, ended = _step(
                    beams, mask_never_generated(log_probs), att.float(), k, at_limit
                )
                for beam in ended:
                    attention = torch.stack(beam.attention)  # (t, S)
                    hyp = make_hypothesis(beam.tokens, attention, beam.log_prob, src_length, alpha)
                    finished = sorted([*finished, hyp], key=lambda h: -h.score)[:k]
                if not beams:  # the limit, or nothing possible left
                    break
                best_reachable = beams[0].log_prob / length_penalty(limit, alpha)
                if len(finished) == k and (
                    not cfg.exhaustive or best_reachable <= finished[-1].score
                ):
                    break
                state = state.select(torch.tensor([b.parent for b in beams], device=device))
            return finished[: cfg.nbest]
    finally:
        model.train(was_training)


def _step(
    beams: list[_Beam], log_probs: Tensor, att: Tensor, k: int, at_limit: bool
) -> tuple[list[_Beam], list[_Beam]]:
    """Extend ``beams`` by one token: (the next active beams, the ones that finish).

    Of the 2K best extensions, those ending in EOS among the first K finish and the first K others
    stay active; at the length limit the first K all finish and none stays.
    """
    scores = torch.tensor([b.log_prob for b in beams], device=log_probs.device)
    total = (scores[:, None] + log_probs).tolist()  # same float32 sums as the batched search
    candidates = [
        (score, i, token)
        for i, row in enumerate(total)
        for token, score in enumerate(row)
        if score > -math.inf
    ]
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
