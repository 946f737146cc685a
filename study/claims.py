"""The study's claims, each decided confirmed / refuted / unclear by an explicit rule from the
measured cells; BLEU differences with paired bootstrap intervals (Koehn 2004)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from sacrebleu import BLEU

from seq2seq.metrics import Interval, bootstrap, score_from_statistics
from study.evaluation import CellResult
from study.grid import LENGTH_EDGES, Settings
from study.long_data import MIN_PER_BUCKET

VERDICTS = ("confirmed", "refuted", "unclear")
_BLEU = BLEU()  # only scores summed statistics: it holds no references


def corpus_bleu(summed: np.ndarray) -> float:
    """BLEU from BLEU statistics summed over sentences (`seq2seq.metrics.sentence_statistics`)."""
    return score_from_statistics(_BLEU, summed)


def gain(system: np.ndarray, baseline: np.ndarray, rows: np.ndarray) -> float:
    """BLEU(system) - BLEU(baseline) on the sentences `rows`."""
    return corpus_bleu(system[rows].sum(0)) - corpus_bleu(baseline[rows].sum(0))


@dataclass
class Claim:
    title: str
    verdict: str
    evidence: list[str]
    rule: str
    plain: str = ""  # what the numbers say, in words
    # The numbers the verdict rests on, by name: what `study.seeds` averages over seeds.
    measures: dict[str, float] = field(default_factory=dict)


LOSS_DISTANCE = 6  # recurrent steps from the encoder's nearest end: most test sentences reach it
VANISHED = 0.5  # a gradient "vanishes" when less than half of it gets LOSS_DISTANCE steps back


def _span(values: Sequence[float], show: Callable[[float], str] = lambda v: f"{v:+.0f}") -> str:
    """'+18' or '+18 to +26': the range of some values, each shown by `show` (by default a BLEU
    difference in whole points)."""
    low, high = show(min(values)), show(max(values))
    return low if low == high else f"{low} to {high}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def _missing(results: dict[str, CellResult], *names: str) -> list[str]:
    return [name for name in names if name not in results]


def _unmeasured(title: str, rule: str, missing: list[str]) -> Claim:
    return Claim(title, "unclear", [f"not measured: the study lacks {', '.join(missing)}"], rule)


def _verdict(confirmed: bool, refuted: bool) -> str:
    return "confirmed" if confirmed else "refuted" if refuted else "unclear"


def fmt_number(value: float | None, digits: int = 2) -> str:
    """A measured value for a claim or a table: n/a when missing, significant digits when tiny."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}g}" if abs(value) < 0.01 and value != 0 else f"{value:.{digits}f}"


@dataclass
class Evidence:
    """What the claims need beyond the cells: test sentence groups and bootstrap settings."""

    results: dict[str, CellResult]
    short: np.ndarray  # indices of test sentences in the shortest length bucket
    long: np.ndarray  # ... in the longest
    everything: np.ndarray
    n: int
    distance: int  # where recurrence gradients are compared
    short_label: str = f"up to {LENGTH_EDGES[0]} words"  # the buckets, for the rules' text
    long_label: str = f"over {LENGTH_EDGES[-1]} words"

    def gain(self, system: str, baseline: str, rows: np.ndarray) -> Interval | None:
        a, b = self.results[system].stats, self.results[baseline].stats
        return bootstrap(lambda g: gain(a, b, g[0]), [rows], self.n)

    def gain_on_long_minus_short(self, system: str, baseline: str) -> Interval | None:
        a, b = self.results[system].stats, self.results[baseline].stats
        return bootstrap(
            lambda g: gain(a, b, g[0]) - gain(a, b, g[1]), [self.long, self.short], self.n
        )

    def bleu(self, name: str, rows: np.ndarray) -> float:
        return corpus_bleu(self.results[name].stats[rows].sum(0))

    def kept_on_long(self, name: str) -> float | None:
        """BLEU on the longest sentences over BLEU on the shortest: how well a model holds up
        with length (None when it scores 0 on the shortest)."""
        short = self.bleu(name, self.short)
        return self.bleu(name, self.long) / short if short > 0 else None

    def recurrence(self, name: str, state: str = "trained") -> float | None:
        return self.results[name].ratio(state, "recurrence", self.distance)

    def loss_reach(self, name: str, state: str = "trained") -> float | None:
        """L: loss gradient LOSS_DISTANCE steps from the nearest final encoder state over the
        gradient at that state's own token."""
        return self.results[name].ratio(state, "loss", LOSS_DISTANCE)


def claim_vanishing(ev: Evidence) -> Claim:
    title = "A tanh RNN's gradients vanish with distance (Bengio et al. 1994; Pascanu et al. 2013)"
    rule = (
        f"L = ||dloss/dx|| {LOSS_DISTANCE} recurrent steps from the nearest end of each trained "
        "no-attention encoder over ||dloss/dx|| at the end (the gradient training uses; no "
        f"attention, so every path goes through the final states). Confirmed if L(rnn) < "
        f"{VANISHED} while L(gru) and L(lstm) are not; refuted if L(rnn) >= {VANISHED} or L(rnn) "
        f"is not below both; unclear otherwise. R = ||dh_T/dx_(T-{ev.distance})|| / "
        "||dh_T/dx_T||, the recurrence alone, is reported beside it."
    )
    names = ("rnn-none", "gru-none", "lstm-none")
    if missing := _missing(ev.results, *names):
        return _unmeasured(title, rule, missing)
    loss = {name: ev.loss_reach(name) for name in names}
    loss0 = {name: ev.loss_reach(name, "init") for name in names}
    r = {name: ev.recurrence(name) for name in names}
    r0 = {name: ev.recurrence(name, "init") for name in names}
    evidence = [
        f"L trained: {', '.join(f'{n} {fmt_number(v)}' for n, v in loss.items())}",
        f"L at initialisation: {', '.join(f'{n} {fmt_number(v)}' for n, v in loss0.items())}",
        f"R trained: {', '.join(f'{n} {fmt_number(v)}' for n, v in r.items())}",
        f"R at initialisation: {', '.join(f'{n} {fmt_number(v)}' for n, v in r0.items())}",
        "L or R > 1 would mean gradients grow (explode) with distance.",
    ]
    if any(v is None for v in loss.values()):
        return Claim(title, "unclear", evidence, rule)
    rnn, gru, lstm = (loss[n] or 0.0 for n in names)
    plain = (
        f"After training, {_percent(rnn)} of the loss gradient reaches a source word "
        f"{LOSS_DISTANCE} steps in from the tanh RNN encoder's ends, against {_percent(gru)} "
        f"(GRU) and {_percent(lstm)} (LSTM). At initialisation all three fade "
        f"({_percent(loss0['rnn-none'])}, {_percent(loss0['gru-none'])}, "
        f"{_percent(loss0['lstm-none'])}): the gated cells learn to carry the gradient, the tanh "
        f"RNN does not. The recurrence alone need not vanish: R is {fmt_number(r['rnn-none'])} "
        f"for the trained tanh RNN after {ev.distance} steps (its state still moves with old "
        "inputs), yet little of the loss's gradient gets through."
    )
    confirmed = rnn < VANISHED <= min(gru, lstm)
    refuted = rnn >= VANISHED or rnn >= min(gru, lstm)
    return Claim(title, _verdict(confirmed, refuted), evidence, rule, plain)


def claim_spikes(ev: Evidence) -> Claim:
    title = "A tanh RNN's training gradients explode now and then (spikes before clipping)"
    rule = (
        "spikiness = 99th percentile / median of the gradient norm before clipping over training. "
        "Confirmed if rnn-none's is over 2x both gru-none's and lstm-none's; refuted if it is "
        "below both; unclear otherwise."
    )
    names = ("rnn-none", "gru-none", "lstm-none")
    if missing := _missing(ev.results, *names):
        return _unmeasured(title, rule, missing)
    summary = {name: ev.results[name].grad_norms for name in names}
    spiky = {name: summary[name].get("spikiness", float("nan")) for name in names}
    evidence = [
        f"{name}: median {fmt_number(g.get('median'))}, p99 {fmt_number(g.get('p99'))}, max "
        f"{fmt_number(g.get('max'))}, spikiness {fmt_number(spiky[name])}, clipped steps "
        f"{100 * g.get('clipped', 0.0):.0f}%"
        for name, g in summary.items()
    ]
    rnn, others = spiky["rnn-none"], (spiky["gru-none"], spiky["lstm-none"])
    largest = [fmt_number(summary[name].get("max")) for name in names]
    plain = (
        f"The largest gradient norm before clipping was {largest[0]} for the tanh RNN, "
        f"{largest[1]} for the GRU and {largest[2]} for the LSTM; how often and how far the "
        "norms rise above their median is in the lines below."
    )
    return Claim(
        title,
        _verdict(all(rnn > 2 * o for o in others), all(rnn < o for o in others)),
        evidence,
        rule,
        plain,
    )


def claim_rnn_long(ev: Evidence) -> Claim:
    title = "A tanh RNN handles long sentences poorly"
    rule = (
        f"On the longest test sentences ({ev.long_label}), the paired-bootstrap 95% "
        "interval of BLEU(gated) - BLEU(rnn), no attention. Confirmed if it is above 0 for both "
        "gru and lstm and rnn keeps a smaller share of its overall BLEU on them than both; "
        "refuted if it is below 0 for either; unclear otherwise."
    )
    names = ("rnn-none", "gru-none", "lstm-none")
    if missing := _missing(ev.results, *names):
        return _unmeasured(title, rule, missing)
    gains = {name: ev.gain(name, "rnn-none", ev.long) for name in names[1:]}
    share = {n: ev.bleu(n, ev.long) / max(ev.bleu(n, ev.everything), 1e-9) for n in names}
    evidence = [f"{n} - rnn-none on long sentences: {gains[n]}" for n in gains]
    evidence.append(
        "BLEU on long / overall: " + ", ".join(f"{n} {v:.2f}" for n, v in share.items())
    )
    intervals = [g for g in gains.values() if g is not None]
    confirmed = len(intervals) == 2 and all(g.low > 0 for g in intervals)
    confirmed = confirmed and all(share["rnn-none"] < share[n] for n in names[1:])
    plain = (
        f"On sentences {ev.long_label} the tanh RNN keeps "
        f"{_percent(share['rnn-none'])} of its overall BLEU, the GRU "
        f"{_percent(share['gru-none'])} and the LSTM {_percent(share['lstm-none'])} (no "
        "attention)."
    )
    verdict = _verdict(confirmed, any(g.high < 0 for g in intervals))
    return Claim(title, verdict, evidence, rule, plain)


def claim_lstm_fixes(ev: Evidence) -> Claim:
    title = "LSTM gates fix that"
    rule = (
        "Confirmed if the paired-bootstrap 95% interval of BLEU(lstm-none) - BLEU(rnn-none) is "
        f"above 0 on all test sentences and on the longest, and L (as in claim 1) of lstm-none "
        f"is at least {VANISHED} where rnn-none's is below it; refuted if the overall interval is "
        "below 0 or L(lstm) <= L(rnn); unclear otherwise."
    )
    if missing := _missing(ev.results, "rnn-none", "lstm-none"):
        return _unmeasured(title, rule, missing)
    l_lstm, l_rnn = ev.loss_reach("lstm-none"), ev.loss_reach("rnn-none")
    overall = ev.gain("lstm-none", "rnn-none", ev.everything)
    long = ev.gain("lstm-none", "rnn-none", ev.long)
    evidence = [
        f"L: lstm-none {fmt_number(l_lstm)}, rnn-none {fmt_number(l_rnn)}",
        f"BLEU(lstm-none) - BLEU(rnn-none): all {overall}; longest {long}",
    ]
    if "lstm-bahdanau" in ev.results and "rnn-bahdanau" in ev.results:
        with_attention = ev.gain("lstm-bahdanau", "rnn-bahdanau", ev.everything)
        evidence.append(
            f"with attention, BLEU(lstm-bahdanau) - BLEU(rnn-bahdanau): {with_attention}"
        )
    if l_lstm is None or l_rnn is None or overall is None:
        return Claim(title, "unclear", evidence, rule)
    plain = (
        f"Without attention the LSTM scores {overall.value:+.1f} BLEU over the tanh RNN "
        f"({'n/a' if long is None else f'{long.value:+.1f}'} on the longest sentences) and "
        f"passes {_percent(l_lstm)} of the loss gradient {LOSS_DISTANCE} steps in, against "
        f"{_percent(l_rnn)}."
    )
    confirmed = overall.low > 0 and long is not None and long.low > 0 and l_rnn < VANISHED <= l_lstm
    refuted = overall.high < 0 or l_lstm <= l_rnn
    return Claim(title, _verdict(confirmed, refuted), evidence, rule, plain)


def _gru_lstm_pairs(ev: Evidence) -> list[tuple[str, str]]:
    pairs = [(f"gru-{a}", f"lstm-{a}") for a in ("none", "bahdanau")]
    return [(g, lstm) for g, lstm in pairs if g in ev.results and lstm in ev.results]


def claim_gru_parameters(ev: Evidence) -> Claim:
    title = "A GRU has fewer parameters than an LSTM"
    rule = "Counted. Confirmed if every GRU model has fewer than its LSTM twin; refuted otherwise."
    if not (pairs := _gru_lstm_pairs(ev)):
        return _unmeasured(title, rule, ["a gru/lstm pair"])
    params = {n: int(ev.results[n].info["parameters"]) for pair in pairs for n in pair}
    evidence = [f"{g} {params[g]:,} vs {lstm} {params[lstm]:,}" for g, lstm in pairs]
    fewer = all(params[g] < params[lstm] for g, lstm in pairs)
    saved = ", ".join(f"{_percent(1 - params[g] / params[lstm])}" for g, lstm in pairs)
    plain = (
        f"At the same sizes the GRU models have {saved} fewer parameters than their LSTM twins "
        "(three weight blocks per recurrent layer against four)."
    )
    measures = {
        f"parameters {g} vs {lstm}, %": 100 * (params[g] / params[lstm] - 1) for g, lstm in pairs
    }
    return Claim(title, _verdict(fewer, not fewer), evidence, rule, plain, measures)


def claim_gru_faster(ev: Evidence) -> Claim:
    title = "A GRU trains faster than an LSTM"
    rule = (
        "Training tokens/s (pure training steps, same threads for every model). Confirmed if "
        "every GRU model is at least 5% faster than its LSTM twin; refuted if every one is at "
        "least 5% slower; unclear otherwise (also compare the learning curves against time)."
    )
    if not (pairs := _gru_lstm_pairs(ev)):
        return _unmeasured(title, rule, ["a gru/lstm pair"])
    speed = {n: ev.results[n].speed["tokens_per_s"] or 0.0 for pair in pairs for n in pair}
    # No clean training step leaves no speed (0 here): no ratio, not an endlessly slow GRU.
    ratios = [
        speed[g] / speed[lstm] if speed[g] and speed[lstm] else float("nan") for g, lstm in pairs
    ]
    evidence = [
        f"{g} {speed[g]:.0f} vs {lstm} {speed[lstm]:.0f} tokens/s (x{ratio:.2f})"
        for (g, lstm), ratio in zip(pairs, ratios, strict=True)
    ]
    verdict = _verdict(all(r >= 1.05 for r in ratios), all(r <= 0.95 for r in ratios))
    plain = (
        "On one CPU thread the GRU models trained at "
        + " and ".join(f"x{r:.2f}" for r in ratios)
        + " their LSTM twins' tokens/s ("
        + ", ".join(g.removeprefix("gru-") for g, _ in pairs)
        + ")."
    )
    measures = {
        f"tokens/s {g} vs {lstm}, %": 100 * (ratio - 1)
        for (g, lstm), ratio in zip(pairs, ratios, strict=True)
        if math.isfinite(ratio)
    }
    return Claim(title, verdict, evidence, rule, plain, measures)


def claim_gru_as_good(ev: Evidence) -> Claim:
    title = "A GRU translates about as well as an LSTM"
    rule = (
        "Paired-bootstrap 95% interval of BLEU(gru) - BLEU(lstm) on the test set. Confirmed if "
        "its lower end is above -1 BLEU for every pair (at most 1 point worse); refuted if its "
        "upper end is below -1 for any pair; unclear otherwise."
    )
    if not (pairs := _gru_lstm_pairs(ev)):
        return _unmeasured(title, rule, ["a gru/lstm pair"])
    gains = [ev.gain(g, lstm, ev.everything) for g, lstm in pairs]
    evidence = [f"{g} - {lstm}: {d}" for (g, lstm), d in zip(pairs, gains, strict=True)]
    known = [d for d in gains if d is not None]
    verdict = _verdict(
        len(known) == len(gains) and all(d.low > -1 for d in known),
        any(d.high < -1 for d in known),
    )
    plain = "GRU minus LSTM test BLEU: " + ", ".join(
        f"{'n/a' if d is None else f'{d.value:+.1f}'} ({g.removeprefix('gru-')})"
        for (g, _), d in zip(pairs, gains, strict=True)
    )
    measures = {
        f"BLEU {g} - {lstm}": d.value
        for (g, lstm), d in zip(pairs, gains, strict=True)
        if d is not None
    }
    return Claim(title, verdict, evidence, rule, plain + ".", measures)


def claim_bidirectional(ev: Evidence) -> Claim:
    title = "A bidirectional encoder helps"
    rule = (
        "Paired-bootstrap 95% interval of BLEU(gru-bahdanau) - BLEU(gru-bahdanau-uni), same "
        "decoder size. Confirmed if above 0; refuted if below 0; unclear if it contains 0."
    )
    if missing := _missing(ev.results, "gru-bahdanau", "gru-bahdanau-uni"):
        return _unmeasured(title, rule, missing)
    overall = ev.gain("gru-bahdanau", "gru-bahdanau-uni", ev.everything)
    long = ev.gain("gru-bahdanau", "gru-bahdanau-uni", ev.long)
    evidence = [f"bidirectional - unidirectional: all {overall}; longest {long}"]
    if overall is None:
        return Claim(title, "unclear", evidence, rule)
    plain = (
        f"Reading the source both ways adds {overall.value:+.1f} BLEU over a one-way encoder of "
        f"the same width ({'n/a' if long is None else f'{long.value:+.1f}'} on the longest "
        "sentences)."
    )
    measures = {"BLEU bidirectional - unidirectional": overall.value}
    if long is not None:
        measures["BLEU bidirectional - unidirectional, longest"] = long.value
    verdict = _verdict(overall.low > 0, overall.high < 0)
    return Claim(title, verdict, evidence, rule, plain, measures)


def claim_attention_long(ev: Evidence) -> Claim:
    title = "Attention rescues long sentences"
    rule = (
        f"For each cell type: gain = BLEU(bahdanau) - BLEU(none) on the longest test sentences "
        f"({ev.long_label}), and that gain minus the gain on the shortest "
        f"({ev.short_label}), each with a paired-bootstrap 95% interval. A cell type "
        "supports the claim if both intervals are above 0 (attention helps long sentences, and "
        "more than short ones: it closes the gap), contradicts it if either is below 0. "
        "Confirmed if most measured cell types support it, refuted if most contradict it, "
        "unclear otherwise."
    )
    kinds = [
        c for c in ("rnn", "gru", "lstm") if not _missing(ev.results, f"{c}-none", f"{c}-bahdanau")
    ]
    if not kinds:
        return _unmeasured(title, rule, ["an attention/no-attention pair"])
    support = contradict = 0
    evidence = []
    long_gains, short_gains = [], []
    kept: dict[str, list[float]] = {"none": [], "bahdanau": []}
    measures: dict[str, float] = {}
    for kind in kinds:
        system, baseline = f"{kind}-bahdanau", f"{kind}-none"
        long = ev.gain(system, baseline, ev.long)
        closing = ev.gain_on_long_minus_short(system, baseline)
        short = ev.gain(system, baseline, ev.short)
        evidence.append(
            f"{kind}: gain on long {long}, on short {short}, long minus short {closing}"
        )
        if long is None or closing is None or short is None:
            continue
        long_gains.append(long.value)
        short_gains.append(short.value)
        measures |= {
            f"{kind}: gain on long": long.value,
            f"{kind}: long minus short": closing.value,
        }
        # Context, not part of the rule: does each model hold up with length on its own?
        for attention, name in (("none", baseline), ("bahdanau", system)):
            if (ratio := ev.kept_on_long(name)) is not None:
                kept[attention].append(ratio)
                measures[f"{name}: BLEU kept on long"] = ratio
        support += long.low > 0 and closing.low > 0
        contradict += long.high < 0 or closing.high < 0
    majority = len(kinds) // 2 + 1
    plain = ""
    if long_gains:
        plain = (
            f"Attention adds {_span(long_gains)} BLEU on sentences {ev.long_label} and "
            f"{_span(short_gains)} on sentences {ev.short_label} ({', '.join(kinds)}). The "
            f"longest bucket holds {len(ev.long)} test sentences"
        )
        few = len(ev.long) < MIN_PER_BUCKET
        plain += "; longer inputs than Multi30k's would test the claim harder." if few else "."
        if kept["none"] and kept["bahdanau"]:
            without, with_ = (_span(kept[a], _percent) for a in ("none", "bahdanau"))
            plain += (
                f" On the longest sentences the models keep {without} of their BLEU on the "
                f"shortest without attention, {with_} with it: attention closes a gap only "
                "where the model without it loses ground with length."
            )
    verdict = _verdict(support >= majority, contradict >= majority)
    return Claim(title, verdict, evidence, rule, plain, measures)


CLAIMS = (
    claim_vanishing,
    claim_spikes,
    claim_rnn_long,
    claim_lstm_fixes,
    claim_gru_parameters,
    claim_gru_faster,
    claim_gru_as_good,
    claim_bidirectional,
    claim_attention_long,
)


def build_evidence(
    results: dict[str, CellResult],
    sources: Sequence[str],
    s: Settings,
    short_max: int = LENGTH_EDGES[0],
    long_over: int = LENGTH_EDGES[-1],
) -> Evidence:
    """The claims' evidence on a test set (its ``sources``): the short sentences have at most
    ``short_max`` words, the long ones more than ``long_over``."""
    words = np.array([len(src.split()) for src in sources])
    return Evidence(
        results,
        short=np.flatnonzero(words <= short_max),
        long=np.flatnonzero(words > long_over),
        everything=np.arange(len(sources)),
        n=s.bootstrap,
        distance=min(20, s.window - 1),
        short_label=f"up to {short_max} words",
        long_label=f"over {long_over} words",
    )
