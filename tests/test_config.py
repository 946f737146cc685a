"""Config dataclasses: defaults valid, bad values and unknown keys named, YAML and flags merge."""

from __future__ import annotations

import pytest

from seq2seq.cli import build_parser, config_from_args
from seq2seq.config import DecodeConfig, ModelConfig, RunConfig, TrainConfig


def test_defaults_are_valid_and_round_trip_through_a_dict():
    cfg = RunConfig()
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda: ModelConfig(cell="transformer"), "cell='transformer'"),
        (lambda: ModelConfig(attention="luong"), "attention='luong'"),
        (lambda: ModelConfig(dropout=1.5), "dropout"),
        (lambda: ModelConfig(hidden_size=511), "hidden_size=511"),
        (lambda: ModelConfig(src_vocab_size=10, tgt_vocab_size=20), "share_embeddings"),
        (lambda: TrainConfig(lr=0), "lr"),
        (lambda: DecodeConfig(beam_size=2, nbest=3), "nbest=3"),
    ],
)
def test_bad_values_name_the_field(make, needle):
    with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
        make()


def test_unknown_key_is_an_error_that_lists_valid_keys():
    with pytest.raises(
        ValueError, match=r"unknown key\(s\) in config.model: hiden_size.*hidden_size"
    ):
        RunConfig.from_dict({"model": {"hiden_size": 3}})
    with pytest.raises(ValueError, match="unknown key.*in config: modle"):
        RunConfig.from_dict({"modle": {}})


def test_wrong_type_is_an_error():
    with pytest.raises(ValueError, match="config.model.num_layers must be int"):
        RunConfig.from_dict({"model": {"num_layers": "two"}})
    with pytest.raises(ValueError, match="bidirectional must be true or false"):
        RunConfig.from_dict({"model": {"bidirectional": "yes"}})


def test_yaml_then_flags_override_defaults(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("model:\n  cell: lstm\n  hidden_size: 128\ntrain:\n  lr: 0.001\n")
    args = build_parser().parse_args(
        [
            "train",
            "--config",
            str(path),
            "--model.hidden_size",
            "64",
            "--model.bidirectional",
            "false",
        ]
    )
    cfg = config_from_args(args, ("data", "clean", "subword", "model", "train", "decode"))
    assert cfg.model.cell == "lstm"  # from YAML
    assert cfg.model.hidden_size == 64  # flag wins over YAML
    assert cfg.model.bidirectional is False
    assert cfg.train.lr == 0.001
    assert cfg.model.embed_size == ModelConfig().embed_size  # default kept


def test_unknown_yaml_key_stops_the_command(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("train:\n  learning_rate: 0.1\n")
    args = build_parser().parse_args(["train", "--config", str(path)])
    with pytest.raises(SystemExit, match="learning_rate"):
        config_from_args(args, ("train",))
