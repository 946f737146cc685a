"""Run under torchrun by test_train: a few DDP steps, then each rank saves what it holds."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from seq2seq import train as training
from seq2seq.config import DataConfig, ModelConfig, RunConfig, SubwordConfig, TrainConfig
from seq2seq.session import setup


def main(spec: str, out: Path) -> None:
    cfg = RunConfig(
        data=DataConfig(corpus="files", src_lang="xx", tgt_lang="yy", train=spec, valid=spec),
        subword=SubwordConfig(vocab_size=300, model_type="bpe"),
        model=ModelConfig(
            embed_size=16, hidden_size=32, dropout=0.0, src_vocab_size=300, tgt_vocab_size=300
        ),
        train=TrainConfig(name="ddp", out_dir=str(out), max_tokens=200, lr=5e-3, threads=1),
    )
    session = setup(cfg)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    losses, seen = [], []
    for epoch in range(3):
        for indices in session.sampler.batches(epoch):
            loss, _, _ = training.train_step(session, session.train_data.collate(indices), scaler)
            losses.append(loss)
            seen.append(indices)
    rank = dist.get_rank()
    torch.save(
        {"model": session.model.state_dict(), "losses": losses, "indices": seen},
        out / f"rank{rank}.pt",
    )
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
