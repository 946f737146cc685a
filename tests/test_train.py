"""Training: tiny models learn a reverse task; resume is exact; DDP ranks agree; a real run."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import random
import signal
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from seq2seq import checkpoint
from seq2seq import train as training
from seq2seq.config import (
    DataConfig,
    DecodeConfig,
    ModelConfig,
    RunConfig,
    SubwordConfig,
    TrainConfig,
)
from seq2seq.corpus import load_splits
from seq2seq.data import ParallelDataset, TokenBatchSampler
from seq2seq.decoder import ConditionalGRUDecoder
from seq2seq.evaluate import evaluate_translator
from seq2seq.model import Seq2Seq
from seq2seq.objective import TrainingForward, scheduled_sampling_logits, teacher_forced_loss
from seq2seq.rundir import RunDir, RunInfo
from seq2seq.search import decode_corpus
from seq2seq.session import build_grad_scaler, build_learner
from seq2seq.tokenizer import BOS_ID, EOS_ID, Tokenizer
from seq2seq.training_data import build_data
from seq2seq.translate import Translator

REPO = Path(__file__).resolve().parents[1]
SYMBOLS = 12  # ids 4..15


def reverse_task(n: int, min_len: int, max_len: int, seed: int) -> ParallelDataset:
    rng = random.Random(seed)
    src = [
        [rng.randrange(4, 4 + SYMBOLS) for _ in range(rng.randint(min_len, max_len))]
        for _ in range(n)
    ]
    return ParallelDataset(src, [list(reversed(s)) for s in src])


def train_on_task(
    cell: str, attention: str, data: ParallelDataset, steps: int, **model_changes: object
) -> Seq2Seq:
    torch.manual_seed(0)
    cfg = ModelConfig(
        cell=cell,
        attention=attention,
        embed_size=32,
        hidden_size=64,
        dropout=0.0,
        src_vocab_size=4 + SYMBOLS,
        tgt_vocab_size=4 + SYMBOLS,
        **model_changes,  # type: ignore[arg-type]
    )
    model = Seq2Seq(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    sampler = TokenBatchSampler(data.src_lengths, data.tgt_lengths, max_tokens=800, seed=0)
    step, epoch = 0, 0
    while step < steps:
        for indices in sampler.batches(epoch):
            batch = data.collate(indices)
            loss, tokens = training.label_smoothed_loss(
                model(batch.src_ids, batch.src_lengths, batch.tgt_in), batch.tgt_out, 0.0
            )
            optimizer.zero_grad()
            (loss / tokens).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            if step == steps:
                break
        epoch += 1
    return model.eval()


def sequence_accuracy(model: Seq2Seq, data: ParallelDataset) -> float:
    hyps = decode_corpus(model, data.src, DecodeConfig(beam_size=1), "cpu")
    return sum(h[0].token_ids == t for h, t in zip(hyps, data.tgt, strict=True)) / len(data)


CONDITIONAL_GRU = {"decoder": "cgru", "input_feeding": False}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("cell", "model_changes"),
    [("rnn", {}), ("gru", {}), ("lstm", {}), ("gru", CONDITIONAL_GRU)],
    ids=["rnn", "gru", "lstm", "cgru"],
)
def test_tiny_model_learns_to_reverse(cell, model_changes):
    data = reverse_task(3000, 3, 8, seed=1)
    model = train_on_task(cell, "bahdanau", data, steps=400, **model_changes)
    assert sequence_accuracy(model, reverse_task(200, 3, 8, seed=2)) >= 0.95


def bf16_learner(cpu_bf16: bool) -> training.Learner:
    """A GRU + Bahdanau learner of the reverse task, seeded, trained through `train_step`."""
    torch.manual_seed(0)
    model = ModelConfig(
        embed_size=32,
        hidden_size=64,
        dropout=0.0,
        src_vocab_size=4 + SYMBOLS,
        tgt_vocab_size=4 + SYMBOLS,
        share_embeddings=False,
    )
    train = TrainConfig(lr=5e-3, label_smoothing=0.0, max_tokens=800, cpu_bf16=cpu_bf16)
    return build_learner(RunConfig(model=model, train=train), torch.device("cpu"))


def test_cpu_bf16_multiplies_in_bfloat16_and_keeps_float32_weights():
    batch = reverse_task(40, 3, 8, seed=3).collate(list(range(40)))
    steps = {}
    for cpu_bf16 in (False, True):
        learner = bf16_learner(cpu_bf16)
        logits_dtypes: list[torch.dtype] = []
        learner.model.register_forward_hook(
            lambda _m, _i, out, seen=logits_dtypes: seen.append(out.dtype)
        )
        scaler = build_grad_scaler(learner)
        loss, _, _ = training.train_step(learner, batch, scaler)
        assert not scaler.is_enabled()  # bfloat16 has float32's range: nothing to scale
        weights = dict(learner.model.named_parameters())
        assert {w.dtype for w in weights.values()} == {torch.float32}
        assert {w.grad.dtype for w in weights.values()} == {torch.float32}
        steps[cpu_bf16] = logits_dtypes, loss
    assert steps[False][0] == [torch.float32] and steps[True][0] == [torch.bfloat16]
    # The same step in 8-bit mantissas: close to float32's loss, not equal to it.
    assert steps[True][1] == pytest.approx(steps[False][1], rel=2e-2)
    assert steps[True][1] != steps[False][1]


def test_cpu_bf16_warns_where_the_cpu_has_no_native_bfloat16(tmp_path, monkeypatch):
    from seq2seq import session

    monkeypatch.setattr(session, "native_cpu_bf16", lambda: False)
    with pytest.warns(UserWarning, match="no native bfloat16"):
        training.train(task_config(tmp_path, max_steps=1, cpu_bf16=True))
    monkeypatch.setattr(session, "native_cpu_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # nothing to say where it is native
        training.train(task_config(tmp_path / "native", max_steps=1, cpu_bf16=True))


@pytest.mark.slow
def test_a_model_trained_with_cpu_bf16_learns_to_reverse():
    data = reverse_task(3000, 3, 8, seed=1)
    learner = bf16_learner(cpu_bf16=True)
    sampler = TokenBatchSampler(data.src_lengths, data.tgt_lengths, max_tokens=800, seed=0)
    scaler = build_grad_scaler(learner)
    batches = [b for epoch in range(40) for b in sampler.batches(epoch)][:400]
    for indices in batches:
        training.train_step(learner, data.collate(indices), scaler)
    model = learner.model.eval()
    assert sequence_accuracy(model, reverse_task(200, 3, 8, seed=2)) >= 0.95


@pytest.mark.slow
def test_attention_beats_the_fixed_vector_on_long_sequences():
    train_data, test_data = reverse_task(3000, 12, 20, seed=3), reverse_task(100, 16, 20, seed=4)
    with_attention = train_on_task("gru", "bahdanau", train_data, steps=300)
    without = train_on_task("gru", "none", train_data, steps=300)

    def token_accuracy(model):
        hyps = decode_corpus(model, test_data.src, DecodeConfig(beam_size=1), "cpu")
        pairs = [
            (a, b)
            for h, t in zip(hyps, test_data.tgt, strict=True)
            for a, b in zip(h[0].token_ids, t, strict=False)
        ]
        return sum(a == b for a, b in pairs) / sum(len(t) for t in test_data.tgt)

    assert token_accuracy(with_attention) > token_accuracy(without) + 0.2


def write_task_files(folder: Path, n: int, seed: int) -> str:
    rng = random.Random(seed)
    words = "alpha beta gamma delta eps zeta eta theta iota kappa".split()
    src = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 6))) for _ in range(n)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "src.txt").write_text("\n".join(src) + "\n")
    (folder / "tgt.txt").write_text("\n".join(" ".join(reversed(s.split())) for s in src) + "\n")
    return f"{folder / 'src.txt'},{folder / 'tgt.txt'}"


def task_config(tmp_path: Path, **train_overrides) -> RunConfig:
    spec = write_task_files(tmp_path / "corpus", 400, seed=5)
    return RunConfig(
        data=DataConfig(
            corpus="files",
            src_lang="xx",
            tgt_lang="yy",
            train=spec,
            valid=spec,
            max_valid_pairs=40,
            data_dir=str(tmp_path / "data"),
        ),
        subword=SubwordConfig(vocab_size=300, model_type="bpe"),
        model=ModelConfig(
            embed_size=16, hidden_size=32, dropout=0.1, src_vocab_size=300, tgt_vocab_size=300
        ),
        train=TrainConfig(
            **{
                "name": "task",
                "out_dir": str(tmp_path / "runs"),
                "max_tokens": 200,
                "max_steps": 12,
                "checkpoint_every": 4,
                "valid_every": 6,
                "log_every": 2,
                "progress": "log",
                **train_overrides,
            }
        ),
    )


class Killed(Exception):
    pass


def test_resumed_run_ends_with_the_same_weights(tmp_path, monkeypatch):
    straight = training.train(task_config(tmp_path / "a"))
    expected = checkpoint.load_state(RunDir(straight).state)

    real_step = training.train_step

    def dies_after_step_10(session, batch, scaler):
        if session.progress.step > 10:
            raise Killed  # as if the process were killed after the step-8 checkpoint
        return real_step(session, batch, scaler)

    monkeypatch.setattr(training, "train_step", dies_after_step_10)
    with pytest.raises(Killed):
        training.train(task_config(tmp_path / "b"))
    monkeypatch.setattr(training, "train_step", real_step)
    state = checkpoint.load_state(RunDir(tmp_path / "b" / "runs" / "task").state)
    assert state["progress"]["step"] == 8
    assert state["progress"]["batch_in_epoch"] > 0  # killed mid-epoch: resume must find its place
    resumed = training.train(task_config(tmp_path / "b"), resume=True)
    got = checkpoint.load_state(RunDir(resumed).state)
    assert got["progress"]["step"] == expected["progress"]["step"] == 12
    for name, tensor in expected["model"].items():
        torch.testing.assert_close(got["model"][name], tensor, rtol=1e-5, atol=1e-6)
    steps = [r["step"] for r in checkpoint.read_log(resumed) if "loss" in r]
    assert steps == sorted(set(steps))  # the killed run's lines after step 8 were dropped


def test_run_directory_is_complete_and_loadable(tmp_path):
    run_dir = training.train(task_config(tmp_path))
    for name in (
        "config.json",
        "model.safetensors",
        "last.pt",
        "spm.model",
        "train_log.jsonl",
        "learning_curve.png",
        "clean_stats.json",
    ):
        assert (run_dir / name).is_file(), name
    model, cfg = checkpoint.load_model(run_dir)
    assert cfg.data.src_lang == "xx" and model.num_parameters() > 0
    log = checkpoint.read_log(run_dir)
    assert {"step", "loss", "ppl", "lr", "grad_norm", "tokens_per_s"} <= set(log[0])
    assert any("valid_bleu" in r and "valid_ppl" in r for r in log)
    with pytest.raises(ValueError, match="--resume"):
        training.train(task_config(tmp_path))  # a second run must not overwrite the first


@pytest.mark.parametrize("joint", [True, False], ids=["joint-vocabulary", "separate-vocabularies"])
def test_a_trained_and_evaluated_run_holds_exactly_the_files_run_dir_names(tmp_path, joint):
    cfg = task_config(tmp_path, max_steps=6)
    if not joint:
        cfg = dataclasses.replace(cfg, subword=dataclasses.replace(cfg.subword, joint=False))
    run = RunDir(training.train(cfg))
    report = run.report("task")
    evaluate_translator(
        Translator.from_run(run.root, device="cpu"),
        ["alpha beta gamma", "delta eps"],
        ["gamma beta alpha", "eps delta"],
        report_dir=report.root,
        beam_size=2,
        n_bootstrap=10,
        num_attention=2,
    )
    tokenizer = [run.joint_tokenizer] if joint else [run.src_tokenizer, run.tgt_tokenizer]
    named = {
        *(run.config, run.weights, run.state, *tokenizer, run.log, run.learning_curve),
        *(run.clean_stats, run.lock, run.snapshot(6)),
        *(report.json, report.markdown, report.hypotheses, report.greedy_hypotheses),
        *(report.attention(1), report.attention(2), report.bleu_by_length),
    }
    assert {path for path in run.root.rglob("*") if path.is_file()} == named
    _, info = checkpoint.load_config(run.root)
    assert RunInfo.from_dict(info).to_dict() == info  # RunInfo types every fact training records


def test_a_conditional_gru_run_reloads_and_translates_as_it_was_saved(tmp_path, monkeypatch):
    saved: dict[Path, Seq2Seq] = {}  # what training held in memory when it wrote each file
    real_save = checkpoint.save_weights

    def save_and_keep(model, path, *args, **kwargs):
        saved[Path(path)] = copy.deepcopy(model).eval()
        return real_save(model, path, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "save_weights", save_and_keep)
    cfg = task_config(tmp_path, average_last=0)
    model_cfg = dataclasses.replace(cfg.model, **CONDITIONAL_GRU, attention="scaled_general")
    run_dir = training.train(dataclasses.replace(cfg, model=model_cfg))

    translator = Translator.from_run(run_dir)
    assert translator.cfg.model == model_cfg
    assert isinstance(translator.model.decoder, ConditionalGRUDecoder)
    in_memory = Translator(saved[RunDir(run_dir).weights], translator.tokenizer, translator.cfg)
    sources = (tmp_path / "corpus" / "src.txt").read_text().splitlines()[:12]
    for beam_size in (1, 3):
        got = translator.translate(sources, beam_size=beam_size, with_attention=True)
        expected = in_memory.translate(sources, beam_size=beam_size, with_attention=True)
        assert [t.text for t in got] == [t.text for t in expected]
        assert [t.score for t in got] == [t.score for t in expected]
        for g, e in zip(got, expected, strict=True):  # what the demo's heatmap draws
            assert g.attention is not None and e.attention is not None
            np.testing.assert_array_equal(g.attention, e.attention)
    # an ensemble of the run with itself decodes as the run does (a mean of equal log-probs)
    twice = Translator.from_runs([run_dir, run_dir]).translate(sources, beam_size=3)
    assert [t.text for t in twice] == [t.text for t in got]
    int8 = Translator.from_run(run_dir, quantize=True)
    quantized = {n for n, m in int8.model.named_modules() if "quantized" in type(m).__module__}
    assert {"decoder.first_transition", "decoder.second_transition", "decoder.deep_output"} <= (
        quantized
    )
    assert all(t.text for t in int8.translate(sources, beam_size=3))


def test_corrupt_and_foreign_checkpoints_are_rejected(tmp_path):
    run_dir = training.train(task_config(tmp_path, max_steps=2))
    RunDir(run_dir).weights.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        checkpoint.load_model(run_dir)
    RunDir(run_dir).state.write_bytes(b"\x80\x04garbage")
    with pytest.raises(ValueError, match="not a loadable training state"):
        checkpoint.load_state(RunDir(run_dir).state)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="not a seq2seq run config"):
        checkpoint.load_config(foreign)
    with pytest.raises(FileNotFoundError, match="seq2seq train"):
        checkpoint.load_config(tmp_path / "nowhere")


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo owned > " + str(tmp_path / "owned"),))

    path = tmp_path / "evil.pt"
    torch.save({"format": checkpoint.FORMAT, "x": Evil()}, path)
    with pytest.raises(ValueError):
        checkpoint.load_state(path)
    assert not (tmp_path / "owned").exists()


def test_weights_with_another_shape_are_rejected(tmp_path):
    model = Seq2Seq(ModelConfig(embed_size=8, hidden_size=12, src_vocab_size=30, tgt_vocab_size=30))
    path = tmp_path / "w.safetensors"
    checkpoint.save_weights(model, path)
    other = Seq2Seq(ModelConfig(embed_size=8, hidden_size=16, src_vocab_size=30, tgt_vocab_size=30))
    with pytest.raises(ValueError, match="shape"):
        checkpoint.load_weights(other, path)
    half = tmp_path / "half.safetensors"
    checkpoint.save_weights(model, half, dtype=torch.float16)
    same = Seq2Seq(model.cfg)
    checkpoint.load_weights(same, half)
    torch.testing.assert_close(
        same.decoder.combine.weight, model.decoder.combine.weight, atol=1e-3, rtol=1e-3
    )


DDP_CONFIG = """
data: {{corpus: files, src_lang: xx, tgt_lang: yy, train: "{spec}", valid: "{spec}",
       max_valid_pairs: 40, data_dir: "{data_dir}"}}
subword: {{vocab_size: 300, model_type: bpe}}
model: {{embed_size: 16, hidden_size: 32, dropout: 0.0, src_vocab_size: 300, tgt_vocab_size: 300}}
train: {{name: ddp, max_tokens: 200, max_steps: 12, valid_every: 4, checkpoint_every: 4,
        log_every: 1, lr: 0.005, lr_patience: 0, patience: 2, clip_norm: 0.0,
        teacher_forcing: 0.7, threads: 1, progress: log}}
"""


@pytest.fixture(scope="module")
def ddp_records(tmp_path_factory) -> tuple[Path, list[dict]]:
    """One real two-process `seq2seq train` under torchrun (tests/ddp_worker.py): a straight run
    `a`, and a run `b` killed after step 10 and resumed."""
    tmp_path = tmp_path_factory.mktemp("ddp")
    spec = write_task_files(tmp_path / "corpus", 400, seed=6)
    config = tmp_path / "ddp.yaml"
    config.write_text(DDP_CONFIG.format(spec=spec, data_dir=tmp_path / "data"))
    out, records = tmp_path / "out", tmp_path / "records"
    records.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(REPO / "tests" / "ddp_worker.py"),
        str(config),
        str(out),
        str(records),
    ]
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # so that a hang can be ended with all its workers
    )
    try:
        _, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    assert process.returncode == 0, stderr[-3000:]
    return out, [torch.load(records / f"rank{r}.pt", weights_only=True) for r in (0, 1)]


@pytest.mark.slow
def test_ddp_step_equals_one_process_on_the_union_of_the_shards(ddp_records):
    out, ranks = ddp_records
    cfg, _ = checkpoint.load_config(out / "a" / "ddp")
    assert cfg.train.teacher_forcing < 1 and cfg.model.dropout == 0
    model = Seq2Seq(cfg.model)
    model.load_state_dict(ranks[0]["step1"]["initial"])
    torch.testing.assert_close(ranks[1]["step1"]["initial"], ranks[0]["step1"]["initial"])
    forward = TrainingForward(model, cfg.train.teacher_forcing).train()
    total, tokens = 0.0, 0
    for rank in ranks:  # each shard fed as its process fed it (same scheduled-sampling draws)
        src_ids, src_lengths, tgt_in, tgt_out = rank["step1"]["batch"]
        torch.set_rng_state(rank["step1"]["rng"])
        loss, n = training.label_smoothed_loss(
            forward(src_ids, src_lengths, tgt_in), tgt_out, cfg.train.label_smoothing
        )
        total, tokens = total + loss, tokens + n
    assert not torch.equal(ranks[0]["step1"]["batch"][0], ranks[1]["step1"]["batch"][0])
    (total / tokens).backward()
    for name, param in model.named_parameters():
        for rank in ranks:
            torch.testing.assert_close(
                rank["step1"]["grads"][name], param.grad, rtol=1e-4, atol=1e-6
            )


@pytest.mark.slow
def test_ddp_processes_train_on_disjoint_shards_of_a_memory_mapped_corpus(ddp_records):
    _, ranks = ddp_records
    assert [rank["train_ids"] for rank in ranks] == ["FileTokenArrays"] * 2
    by_epoch = [
        {epoch: [i for e, b in rank["indices"] if e == epoch for i in b] for epoch in (0, 1)}
        for rank in ranks
    ]
    for epoch in (0, 1):
        shards = [set(rank[epoch]) for rank in by_epoch]
        assert all(shards) and not shards[0] & shards[1]
        assert all(len(rank[epoch]) == len(set(rank[epoch])) for rank in by_epoch)
    epoch0 = set(by_epoch[0][0]) | set(by_epoch[1][0])  # a whole epoch: the corpus, all but
    assert len(epoch0) >= 400 - 40 and epoch0 <= set(range(400))  # an odd last batch


@pytest.mark.slow
def test_ddp_ranks_take_the_same_decisions_and_end_equal(ddp_records):
    _, ranks = ddp_records
    lrs = [dict(rank["lr"]["a"]) for rank in ranks]
    assert lrs[0] == lrs[1]
    assert lrs[0][12] < lrs[0][1]  # the plateau scheduler cut the rate, on both ranks alike
    ended = [rank["ended"]["a"] for rank in ranks]
    assert ended[0]["stopped"] == ended[1]["stopped"]
    assert ended[0]["step"] == ended[1]["step"] == 12
    assert ended[0]["best_step"] == ended[1]["best_step"]
    for name, tensor in ended[0]["model"].items():
        assert torch.equal(tensor, ended[1]["model"][name]), name


@pytest.mark.slow
def test_ddp_rank_0s_clock_and_sampling_keep_the_ranks_in_step(ddp_records):
    """Run c: rank 1's clock says the 30 minutes are spent after one step. Stopping on it alone
    would leave rank 0 waiting in an all-reduce; with subword sampling each rank re-segments
    its own shard, and the replicas must still end equal."""
    out, ranks = ddp_records
    cfg, _ = checkpoint.load_config(out / "c" / "ddp")
    assert cfg.subword.sampling_alpha > 0 and cfg.train.max_minutes == 30
    ended = [rank["ended"]["c"] for rank in ranks]
    assert ended[0]["step"] == ended[1]["step"] == 12
    assert ended[0]["stopped"] == ended[1]["stopped"]
    assert "max_minutes" not in ended[0]["stopped"]
    assert dict(ranks[0]["lr"]["c"]) == dict(ranks[1]["lr"]["c"])
    for name, tensor in ended[0]["model"].items():
        assert torch.equal(tensor, ended[1]["model"][name]), name
        assert not torch.equal(tensor, ranks[0]["ended"]["a"]["model"][name]), name


@pytest.mark.slow
def test_ddp_only_rank_0_writes_the_run_directory(ddp_records):
    out, ranks = ddp_records
    assert ranks[1]["writes"] == []
    written = {Path(w.split(" ", 1)[1]).name for w in ranks[0]["writes"]}
    assert {"config.json", "last.pt", "train_log.jsonl"} <= written


@pytest.mark.slow
def test_ddp_resume_continues_identically(ddp_records):
    out, ranks = ddp_records
    for rank in ranks:
        straight, resumed = rank["ended"]["a"], rank["ended"]["b"]
        assert dict(rank["lr"]["b"]) == dict(rank["lr"]["a"])  # the last value of each step
        assert resumed["step"] == straight["step"] and resumed["stopped"] == straight["stopped"]
        for name, tensor in straight["model"].items():
            torch.testing.assert_close(resumed["model"][name], tensor, rtol=1e-5, atol=1e-6)
    log_a = [r for r in checkpoint.read_log(out / "a" / "ddp") if "valid_bleu" in r]
    log_b = [r for r in checkpoint.read_log(out / "b" / "ddp") if "valid_bleu" in r]
    assert [r["step"] for r in log_b] == [r["step"] for r in log_a] == [4, 8, 12]


def test_scheduled_sampling_feeds_gold_or_own_predictions():
    torch.manual_seed(0)
    model = Seq2Seq(
        ModelConfig(embed_size=8, hidden_size=12, dropout=0.0, src_vocab_size=20, tgt_vocab_size=20)
    ).eval()
    batch = reverse_task(4, 3, 6, seed=9).collate([0, 1, 2, 3])
    inputs = (batch.src_ids, batch.src_lengths, batch.tgt_in)
    with torch.no_grad():
        teacher = torch.log_softmax(model(batch.src_ids, batch.src_lengths, batch.tgt_in), -1)
        gold = scheduled_sampling_logits(model, *inputs, teacher_forcing=1.0)
        own = scheduled_sampling_logits(model, *inputs, teacher_forcing=0.0)
        greedy = decode_corpus(
            model,
            [batch.src_ids[i, :n].tolist() for i, n in enumerate(batch.src_lengths.tolist())],
            DecodeConfig(beam_size=1, max_length_offset=50),
            "cpu",
        )
    torch.testing.assert_close(gold, teacher, atol=1e-5, rtol=1e-4)
    # Fed its own predictions, step t+1 sees the argmax of step t, exactly as greedy search.
    predicted = own.argmax(-1)
    for row, hyp in enumerate(greedy):
        ids = hyp[0].token_ids
        n = min(len(ids), predicted.size(1))
        assert predicted[row, :n].tolist() == ids[:n]


def test_teacher_forced_loss_is_the_mean_over_every_target_token():
    torch.manual_seed(0)
    model = Seq2Seq(
        ModelConfig(embed_size=8, hidden_size=12, dropout=0.0, src_vocab_size=20, tgt_vocab_size=20)
    ).eval()
    data = reverse_task(12, 1, 9, seed=10)  # lengths differ: batches are padded
    nll, tokens = 0.0, 0
    with torch.no_grad():  # one sentence at a time, one gold token at a time, EOS included
        for src, tgt in zip(data.src, data.tgt, strict=True):
            enc = model.encode(torch.tensor([src]), torch.tensor([len(src)]))
            state, prev = model.initial_state(enc), BOS_ID
            for gold in [*tgt, EOS_ID]:
                log_probs, state, _ = model.decode_step(torch.tensor([prev]), state, enc)
                nll -= float(log_probs[0, gold])
                tokens, prev = tokens + 1, gold
    for max_tokens in (30, 1000):  # several batches of unequal size, and one
        loss = teacher_forced_loss(model, data, max_tokens, "cpu")
        assert loss == pytest.approx(nll / tokens, rel=1e-5)


def test_a_learner_built_from_a_runs_config_steps_as_the_run_did(tmp_path):
    run_dir = training.train(task_config(tmp_path, max_steps=1, teacher_forcing=0.5))
    cfg, _ = checkpoint.load_config(run_dir)
    train_pairs, _, _ = load_splits(cfg.data, cfg.clean)
    data, sampler = build_data(Tokenizer.load(run_dir), train_pairs, cfg.train)
    learner = build_learner(cfg, torch.device("cpu"))
    training.train_step(learner, data.collate(sampler.batches(0)[0]), build_grad_scaler(learner))
    trained = checkpoint.load_state(RunDir(run_dir).state)["model"]
    assert trained.keys() == learner.model.state_dict().keys()
    for name, tensor in learner.model.state_dict().items():
        assert torch.equal(tensor, trained[name]), name


def test_training_stops_early_when_bleu_stalls(tmp_path):
    # A learning rate this small leaves the model, and so its validation BLEU, unchanged.
    cfg = task_config(tmp_path, lr=1e-12, max_steps=40, valid_every=2, patience=2)
    run_dir = training.train(cfg)
    state = checkpoint.load_state(RunDir(run_dir).state)
    assert state["progress"]["step"] == 6  # best at step 2, no gain at 4 and 6
    assert state["progress"]["stopped"].startswith("early stop")


def test_checkpoint_average_is_the_mean_of_the_weights(tmp_path):
    states = []
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        model = Seq2Seq(
            ModelConfig(embed_size=8, hidden_size=12, src_vocab_size=30, tgt_vocab_size=30)
        )
        path = tmp_path / f"s{seed}.pt"
        checkpoint.save_state(path, {"format": checkpoint.FORMAT, "model": model.state_dict()})
        states.append((path, model.state_dict()))
    averaged = checkpoint.average_weights([p for p, _ in states])
    name = "decoder.combine.weight"
    expected = sum(s[name] for _, s in states) / 3
    torch.testing.assert_close(averaged[name], expected)
    Seq2Seq(
        ModelConfig(embed_size=8, hidden_size=12, src_vocab_size=30, tgt_vocab_size=30)
    ).load_state_dict(averaged)


def logged_lrs(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["lr"] for r in checkpoint.read_log(run_dir) if "loss" in r}


def test_warmup_rises_linearly_then_holds(tmp_path):
    run_dir = training.train(task_config(tmp_path, lr=0.004, warmup_steps=5, log_every=1))
    lrs = logged_lrs(run_dir)
    for step in range(1, 6):
        assert lrs[step] == pytest.approx(0.004 * step / 5)
    assert all(lrs[step] == pytest.approx(0.004) for step in range(6, 13))


def test_plateau_halves_after_patience_and_stops_at_min_lr(tmp_path, monkeypatch):
    bleus = iter([10.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0])  # best first, then stalls

    def scripted_validation(session):
        return {"valid_loss": 1.0, "valid_ppl": math.e, "valid_bleu": next(bleus)}

    monkeypatch.setattr(training, "validate", scripted_validation)
    # average_last=0: the script has a score for each validation, none for an average at the end
    cfg = task_config(
        tmp_path, lr=0.008, lr_patience=1, lr_factor=0.5, min_lr=0.002, patience=0,
        valid_every=1, max_steps=7, log_every=1, average_last=0,
    )  # fmt: skip
    run_dir = training.train(cfg)
    after = [r["lr"] for r in checkpoint.read_log(run_dir) if "valid_bleu" in r]
    # patience 1: the second stalled validation halves the rate; never below min_lr
    assert after == pytest.approx([0.008, 0.008, 0.004, 0.004, 0.002, 0.002, 0.002])
    lrs = logged_lrs(run_dir)
    assert lrs[4] == pytest.approx(0.004) and lrs[7] == pytest.approx(0.002)


def test_max_minutes_stops_the_run_on_the_clock(tmp_path, monkeypatch):
    clock = {"now": 1000.0}
    real_step = training.train_step

    def one_minute_step(session, batch, scaler):
        clock["now"] += 60.0  # each step takes a minute of the fake clock
        return real_step(session, batch, scaler)

    monkeypatch.setattr(training, "time", SimpleNamespace(perf_counter=lambda: clock["now"]))
    monkeypatch.setattr(training, "train_step", one_minute_step)
    run_dir = training.train(task_config(tmp_path, max_minutes=3.0, max_steps=0, valid_every=0))
    state = checkpoint.load_state(RunDir(run_dir).state)
    assert state["progress"]["step"] == 3
    assert state["progress"]["stopped"] == "reached max_minutes=3.0"
    assert state["progress"]["train_seconds"] == pytest.approx(180.0)


def test_validation_decodes_with_valid_beam(tmp_path, monkeypatch):
    real_decode, beams = training.decode_corpus, []

    def recording_decode(model, src, cfg, device, **kwargs):
        beams.append(cfg.beam_size)
        return real_decode(model, src, cfg, device, **kwargs)

    monkeypatch.setattr(training, "decode_corpus", recording_decode)
    # average_last=0: no validation of averaged snapshots at the end (see test_snapshots.py)
    training.train(
        task_config(tmp_path / "beam", max_steps=4, valid_every=2, valid_beam=3, average_last=0)
    )
    assert beams == [3, 3]
    beams.clear()
    training.train(task_config(tmp_path / "greedy", max_steps=4, valid_every=2, average_last=0))
    assert beams == [1, 1]


def test_validation_perplexity_covers_every_pair_and_bleu_the_first_valid_max_pairs(
    tmp_path, monkeypatch
):
    decoded, scored = [], []
    real_decode, real_loss = training.decode_corpus, training.teacher_forced_loss

    def recording_decode(model, src, cfg, device, **kwargs):
        decoded.append(len(src))
        return real_decode(model, src, cfg, device, **kwargs)

    def recording_loss(model, data, max_tokens, device):
        scored.append(len(data))
        return real_loss(model, data, max_tokens, device)

    monkeypatch.setattr(training, "decode_corpus", recording_decode)
    monkeypatch.setattr(training, "teacher_forced_loss", recording_loss)
    cfg = task_config(tmp_path, max_steps=2, valid_every=2, valid_max_pairs=7, average_last=0)
    training.train(cfg)
    assert scored == [40] and decoded == [7]  # data.max_valid_pairs=40 of the task's 400


def test_a_second_trainer_fails_at_once_and_a_dead_ones_lock_does_not_block(tmp_path):
    cfg = task_config(tmp_path)
    run_dir = Path(cfg.train.out_dir) / cfg.train.name
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import pathlib, sys, time\n"
            "from seq2seq import checkpoint\n"
            "held = checkpoint.lock_run_dir(pathlib.Path(sys.argv[1]))\n"
            "held.__enter__()\n"
            "print('locked', flush=True)\n"
            "time.sleep(120)\n",
            str(run_dir),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        for resume in (False, True):
            with pytest.raises(checkpoint.RunLocked, match=f"process {holder.pid} is training"):
                training.train(cfg, resume=resume)
        assert sorted(p.name for p in run_dir.iterdir()) == [RunDir.LOCK_FILE]
    finally:
        holder.kill()  # as kill -9: the lock file stays behind, the lock does not
        holder.wait()
    assert RunDir(run_dir).lock.is_file()
    training.train(cfg)
    assert checkpoint.load_state(RunDir(run_dir).state)["progress"]["step"] == 12


def test_a_log_line_cut_short_does_not_block_resume(tmp_path):
    run_dir = training.train(task_config(tmp_path))
    with RunDir(run_dir).log.open("a") as log:
        log.write('{"step": 13, "loss": 2.')  # the process died while writing this line
    with pytest.warns(UserWarning, match=rf"{RunDir.LOG_FILE}: skipping line \d+, cut short"):
        training.train(task_config(tmp_path, max_steps=14), resume=True)
    steps = [r["step"] for r in checkpoint.read_log(run_dir) if "loss" in r]
    assert steps == [2, 4, 6, 8, 10, 12, 14]
    lines = RunDir(run_dir).log.read_text().splitlines()
    lines[2] = lines[2][:10]
    RunDir(run_dir).log.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"{RunDir.LOG_FILE}, line 3: not a JSON record"):
        checkpoint.read_log(run_dir)


def with_valid(cfg: RunConfig, spec: str) -> RunConfig:
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, valid=spec))


def test_an_empty_validation_set_is_refused_before_training_and_resume_takes_new_paths(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "src.txt").write_text("")
    (empty / "tgt.txt").write_text("")
    empty_spec = f"{empty / 'src.txt'},{empty / 'tgt.txt'}"
    cfg = task_config(tmp_path)
    with pytest.raises(ValueError, match="validation set .* holds no sentence pairs"):
        training.train(with_valid(cfg, empty_spec))
    run_dir = Path(cfg.train.out_dir) / cfg.train.name
    assert not RunDir(run_dir).state.exists()  # nothing to be stuck on
    training.train(cfg)  # the corrected data starts the run afresh
    # --resume reads the data paths it is given, not the ones saved with the run
    longer = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_steps=16))
    with pytest.raises(ValueError, match="holds no sentence pairs"):
        training.train(with_valid(longer, empty_spec), resume=True)
    other = write_task_files(tmp_path / "other", 30, seed=11)
    training.train(with_valid(longer, other), resume=True)
    saved, _ = checkpoint.load_config(run_dir)
    assert saved.data.valid == other


@pytest.mark.parametrize(
    ("section", "change", "flag"),
    [
        ("model", {"hidden_size": 48}, "--model.hidden_size"),
        ("subword", {"vocab_size": 200}, "--subword.vocab_size"),
        ("data", {"tgt_lang": "zz"}, "--data.tgt_lang"),
    ],
)
def test_resume_refuses_a_changed_model_or_vocabulary(tmp_path, section, change, flag):
    cfg = task_config(tmp_path, max_steps=2)
    training.train(cfg)
    changed = dataclasses.replace(
        cfg, **{section: dataclasses.replace(getattr(cfg, section), **change)}
    )
    with pytest.raises(ValueError, match=f"{flag} differ from the run being resumed"):
        training.train(changed, resume=True)


def test_the_start_line_says_how_many_pairs_train(tmp_path, capsys):
    cfg = task_config(tmp_path, max_steps=1)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, max_train_pairs=50))
    training.train(cfg)
    err = capsys.readouterr().err
    assert "kept 400 of 400 pairs" in err and "training on the first 50" in err
