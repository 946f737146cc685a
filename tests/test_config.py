"""Config dataclasses: defaults valid, bad values and unknown keys named, YAML and flags merge."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from seq2seq.cli import build_parser, config_from_args
from seq2seq.config import (
    MAX_LENGTH_PENALTY,
    CleanConfig,
    DecodeConfig,
    ModelConfig,
    RunConfig,
    SubwordConfig,
    TrainConfig,
    load_yaml,
)

REPO = Path(__file__).resolve().parents[1]


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


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("alpha", [NAN, INF, -INF, -0.1, MAX_LENGTH_PENALTY + 1e-9, 1000.0])
def test_length_penalty_must_be_finite_and_in_range(alpha):
    with pytest.raises(ValueError, match="length_penalty must be"):
        DecodeConfig(length_penalty=alpha)
    with pytest.raises(ValueError, match="length_penalty must be"):  # YAML's .nan / .inf too
        RunConfig.from_dict({"decode": {"length_penalty": alpha}})


def test_length_penalty_bounds_are_accepted():
    assert DecodeConfig(length_penalty=0.0).length_penalty == 0.0
    assert DecodeConfig(length_penalty=MAX_LENGTH_PENALTY).length_penalty == MAX_LENGTH_PENALTY


@pytest.mark.parametrize(
    ("make", "field_name"),
    [
        (lambda: DecodeConfig(max_length_ratio=INF), "max_length_ratio"),
        (lambda: TrainConfig(lr=NAN), "lr"),
        (lambda: TrainConfig(max_minutes=INF), "max_minutes"),
        (lambda: TrainConfig(clip_norm=NAN), "clip_norm"),
        (lambda: CleanConfig(max_ratio=INF), "max_ratio"),
    ],
)
def test_every_float_setting_must_be_finite(make, field_name):
    with pytest.raises(ValueError, match=f"{field_name} must be a finite number"):
        make()


@pytest.mark.parametrize("name", ["", "  ", ".", "..", "../elsewhere", "a/b", "/tmp/x", "a\\b"])
def test_run_name_must_be_one_folder_inside_out_dir(name):
    with pytest.raises(ValueError, match="train.name"):
        TrainConfig(name=name)


def test_ordinary_run_names_are_accepted():
    for name in ("run", "de-en_gru.v2", "übersetzer"):
        assert TrainConfig(name=name).name == name


def test_malformed_yaml_is_a_value_error_naming_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  lr: [0.1\nmodel:\n  cell: gru\n")
    with pytest.raises(ValueError, match=r"bad\.yaml is not valid YAML: .* at line \d+") as err:
        load_yaml(path)
    assert "\n" not in str(err.value)
    path.write_bytes(b"train:\n  name: \xff\n")
    with pytest.raises(ValueError, match=r"bad\.yaml is not UTF-8"):
        load_yaml(path)


# --- decoding method and sampling settings ---------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"method": "nucleus"}, "method='nucleus' is not one of auto, greedy, beam, sample"),
        ({"temperature": 0.0}, "temperature must be positive"),
        ({"temperature": -1.0}, "temperature must be positive"),
        ({"temperature": NAN}, "temperature must be a finite number"),
        ({"temperature": INF}, "temperature must be a finite number"),
        ({"top_k": -1}, "top_k must be >= 0"),
        ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
        ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
        ({"top_p": NAN}, "top_p must be a finite number"),
        ({"num_samples": 0}, "num_samples must be positive"),
        ({"seed": -1}, "seed must be from 0"),
        ({"seed": 2**63}, "seed must be from 0"),
        ({"method": "sample", "num_samples": 2, "nbest": 3}, "nbest=3 exceeds num_samples=2"),
        ({"method": "greedy", "nbest": 2}, "greedy search gives one hypothesis"),
        ({"method": "beam", "beam_size": 2, "nbest": 3}, "nbest=3 exceeds beam_size=2"),
    ],
)
def test_bad_decoding_settings_name_the_field(changes, needle):
    with pytest.raises(ValueError, match=needle):
        DecodeConfig(**changes)


def test_nbest_is_bounded_by_what_the_method_returns():
    # a method's own width counts, not the beam size it ignores
    assert DecodeConfig(method="sample", beam_size=1, num_samples=4, nbest=4).nbest == 4
    assert DecodeConfig(method="beam", beam_size=3, num_samples=1, nbest=3).nbest == 3
    assert DecodeConfig(method="greedy", beam_size=5).rows_per_sentence == 1


def test_configs_saved_without_a_method_decode_as_before():
    # Runs saved before there was a method field name only a beam size: beam search above 1,
    # greedy at 1. The shipped configs, without the field, stand for such runs.
    for beam_size, method in [(1, "greedy"), (2, "beam"), (5, "beam")]:
        cfg = RunConfig.from_dict({"decode": {"beam_size": beam_size, "length_penalty": 1.4}})
        assert cfg.decode.method == "auto"
        assert cfg.decode.resolved_method == method
        assert cfg.decode.rows_per_sentence == beam_size
    for path in sorted(REPO.glob("checkpoints/*/config.json")):
        saved = json.loads(path.read_text(encoding="utf-8"))["config"]
        saved["decode"].pop("method", None)
        decode = RunConfig.from_dict(saved).decode
        assert decode.resolved_method == "beam" and decode.beam_size == saved["decode"]["beam_size"]


def test_method_and_sampling_flags_reach_the_config():
    args = build_parser().parse_args(
        ["train", "--decode.method", "sample", "--decode.top_p", "0.9", "--decode.seed", "7"]
    )
    cfg = config_from_args(args, ("decode",))
    assert (cfg.decode.method, cfg.decode.top_p, cfg.decode.seed) == ("sample", 0.9, 7)
    args = build_parser().parse_args(["train", "--decode.method", "nucleus"])
    with pytest.raises(SystemExit, match="method='nucleus'"):
        config_from_args(args, ("decode",))


def test_override_changes_what_is_given_and_a_beam_size_means_beam_search():
    sampling = DecodeConfig(method="sample", num_samples=4, nbest=2, temperature=0.7)
    assert sampling.override(temperature=None, seed=3) == dataclasses.replace(sampling, seed=3)
    # a beam size alone asks for beam search (greedy at 1), whatever the base's method
    assert sampling.override(beam_size=3).resolved_method == "beam"
    assert sampling.override(beam_size=1, nbest=1).resolved_method == "greedy"
    assert sampling.override(beam_size=3, method="sample").resolved_method == "sample"
    with pytest.raises(ValueError, match="unknown decoding setting.*temprature.*temperature"):
        sampling.override(temprature=0.5)
    with pytest.raises(ValueError, match="nbest=3 exceeds num_samples=2"):
        sampling.override(num_samples=2, nbest=3)


# --- learning-rate schedule and subword sampling ---------------------------------------------


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda: TrainConfig(lr_schedule="step"), "lr_schedule='step' is not one of plateau"),
        (
            lambda: TrainConfig(lr_schedule="cosine", lr=1e-3, min_lr=2e-3),
            "min_lr=0.002 exceeds lr=0.001",
        ),
        (lambda: SubwordConfig(sampling_alpha=-0.1), "sampling_alpha must be >= 0"),
        (
            lambda: SubwordConfig(model_type="bpe", sampling_alpha=1.5),
            r"sampling_alpha must be in \[0, 1\] with bpe",
        ),
        (lambda: SubwordConfig(nbest_size=0), "nbest_size must be -1"),
        (lambda: SubwordConfig(nbest_size=1), "nbest_size must be -1"),
        (lambda: SubwordConfig(nbest_size=-2), "nbest_size must be -1"),
    ],
)
def test_bad_schedule_and_sampling_settings_name_the_field(make, needle):
    with pytest.raises(ValueError, match=needle):
        make()


def test_schedule_and_sampling_flags_reach_the_config():
    assert TrainConfig().lr_schedule == "plateau" and SubwordConfig().sampling_alpha == 0.0
    flags = ["--train.lr_schedule", "cosine", "--subword.sampling_alpha", "0.1"]
    args = build_parser().parse_args(["train", *flags, "--subword.nbest_size", "64"])
    cfg = config_from_args(args, ("subword", "train"))
    assert (cfg.train.lr_schedule, cfg.subword.sampling_alpha, cfg.subword.nbest_size) == (
        "cosine",
        0.1,
        64,
    )
    assert TrainConfig(lr_schedule="plateau", lr=1e-3, min_lr=2e-3).min_lr == 2e-3  # never cuts


def assert_train_help_says(
    capsys: pytest.CaptureFixture[str], meanings: list[tuple[str, str]]
) -> None:
    """``seq2seq train --help`` says each (flag, meaning): the meaning in the flag's own entry."""
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["train", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for flag, meaning in meanings:
        start = text.rindex(f"{flag} ")  # in the list of options, after the usage line
        assert meaning in text[start : text.find(" --", start + len(flag))], flag


def test_train_help_says_what_the_schedule_and_sampling_settings_mean(capsys):
    assert_train_help_says(
        capsys,
        [
            ("--train.lr_schedule", "min_lr exactly at the end of the budget"),
            (
                "--train.lr_schedule",
                "one of plateau, linear, cosine, inverse_sqrt; default: 'plateau'",
            ),
            ("--subword.sampling_alpha", "never for validation or decoding"),
            ("--subword.nbest_size", "(-1 = all of them, else > 1)"),
        ],
    )


# --- decoder and scaled attention ---------------------------------------------------------------

CGRU = {"decoder": "cgru", "input_feeding": False}


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({**CGRU, "cell": "lstm"}, "decoder='cgru' is a conditional GRU: it needs cell='gru'"),
        ({**CGRU, "cell": "rnn"}, "needs cell='gru', got 'rnn'"),
        ({**CGRU, "attention": "none"}, "needs an attention other than 'none'"),
        ({"decoder": "cgru"}, "set input_feeding to false"),
        ({"decoder": "nematus"}, "decoder='nematus' is not one of luong, cgru"),
    ],
)
def test_settings_the_conditional_gru_cannot_use_are_refused(changes, needle):
    with pytest.raises(ValueError, match=needle):
        ModelConfig(**changes)


def test_the_conditional_gru_takes_every_attention_and_depth():
    for attention in ("bahdanau", "dot", "general", "scaled_dot", "scaled_general"):
        for layers in (1, 2):
            assert ModelConfig(**CGRU, attention=attention, num_layers=layers).decoder == "cgru"


def test_configs_saved_before_the_decoder_and_scaled_attention_build_the_same_model():
    # Runs saved before these settings name no decoder and an unscaled attention: they must
    # rebuild the Luong decoder with its unscaled scores. The shipped configs, without the
    # field, stand for such runs.
    paths = sorted(REPO.glob("checkpoints/*/config.json"))
    assert paths
    for path in paths:
        saved = json.loads(path.read_text(encoding="utf-8"))["config"]
        saved["model"].pop("decoder", None)
        model = RunConfig.from_dict(saved).model
        assert model.decoder == "luong" and model.attention == saved["model"]["attention"]
        assert not model.attention.startswith("scaled_")


def test_decoder_and_attention_flags_reach_the_config_and_say_what_they_mean(capsys):
    flags = ["--model.decoder", "cgru", "--model.input_feeding", "false"]
    args = build_parser().parse_args(["train", *flags, "--model.attention", "scaled_general"])
    model = config_from_args(args, ("model",)).model
    assert (model.decoder, model.attention, model.input_feeding) == (
        "cgru",
        "scaled_general",
        False,
    )
    assert_train_help_says(
        capsys,
        [
            ("--model.decoder", "one of luong, cgru; default: 'luong'"),
            ("--model.decoder", "the conditional GRU of Nematus and Marian"),
            ("--model.attention", "scaled_dot or scaled_general (the same scores divided by"),
            ("--model.input_feeding", "the luong decoder only"),
        ],
    )
