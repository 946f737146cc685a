"""What the command line says about itself: every setting's meaning, default and choices in
``--help``, a line for every subcommand, and ``--version``."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import os
import subprocess
import sys
from typing import Literal, get_args, get_origin, get_type_hints

import pytest

import seq2seq
from seq2seq.cli import SECTIONS, build_parser, main
from seq2seq.config import ModelConfig, RunConfig


def section_classes() -> dict[str, type]:
    return {f.name: type(getattr(RunConfig(), f.name)) for f in dataclasses.fields(RunConfig)}


def literal_fields() -> list[tuple[str, str, tuple[str, ...]]]:
    """(section, field, choices) of every Literal-typed setting, read from the types here."""
    found = []
    for section, cls in section_classes().items():
        for name, kind in get_type_hints(cls).items():
            if get_origin(kind) is Literal:
                found.append((section, name, get_args(kind)))
    return found


def help_text(monkeypatch: pytest.MonkeyPatch, command: str) -> str:
    """``seq2seq COMMAND --help`` at 80 columns, without whitespace (argparse wraps lines at
    spaces and hyphens)."""
    monkeypatch.setenv("COLUMNS", "80")
    return squeeze(subcommands().choices[command].format_help())


def subcommands() -> argparse._SubParsersAction:
    return next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))


def squeeze(text: str) -> str:
    return "".join(text.split())


def test_every_setting_and_section_says_what_it_means():
    assert set(section_classes()) == set(SECTIONS)
    missing = [
        f"RunConfig.{f.name}" for f in dataclasses.fields(RunConfig) if not f.metadata.get("help")
    ]
    for section, cls in section_classes().items():
        missing += [
            f"{section}.{f.name}" for f in dataclasses.fields(cls) if not f.metadata.get("help")
        ]
    assert not missing, f"settings without help text (use config.setting): {missing}"


def test_train_help_shows_each_settings_meaning_default_and_choices(monkeypatch):
    text = help_text(monkeypatch, "train")
    defaults = RunConfig()
    for section in dataclasses.fields(RunConfig):
        assert squeeze(f"{section.name} settings: {section.metadata['help']}") in text
        settings = getattr(defaults, section.name)
        kinds = get_type_hints(type(settings))
        for f in dataclasses.fields(settings):
            default, kind = getattr(settings, f.name), kinds[f.name]
            if get_origin(kind) is Literal:
                metavar = "{" + ",".join(get_args(kind)) + "}"
                listed = f"one of {', '.join(get_args(kind))}; "
            else:
                metavar, listed = type(default).__name__.upper(), ""
            flag = f"--{section.name}.{f.name} {metavar}"
            shown = f"{flag} {f.metadata['help']} ({listed}default: {default!r})"
            assert squeeze(shown) in text


def test_literal_settings_show_their_choices_in_train_and_prepare_help(monkeypatch):
    literals = literal_fields()
    named = {(section, name) for section, name, _ in literals}
    assert {("model", "cell"), ("model", "attention"), ("decode", "method")} <= named
    train, prepare = help_text(monkeypatch, "train"), help_text(monkeypatch, "prepare")
    for section, name, options in literals:
        flag = squeeze(f"--{section}.{name} {{{','.join(options)}}}")
        assert flag in train
        if section in ("data", "clean"):
            assert flag in prepare
    assert "--model.cell" not in prepare  # prepare has only its own sections


def test_grep_for_a_flag_finds_its_choices_and_meaning():
    """`seq2seq train --help | grep -A1 model.cell`, as a user types it."""
    env = {**os.environ, "COLUMNS": "80"}
    shown = subprocess.run(
        [sys.executable, "-m", "seq2seq", "train", "--help"],
        capture_output=True, text=True, env=env, check=True, timeout=60,
    ).stdout.splitlines()  # fmt: skip
    at = next(i for i, line in enumerate(shown) if line.strip().startswith("--model.cell"))
    flag, meaning = shown[at], shown[at + 1].strip()
    assert flag.split() == ["--model.cell", "{rnn,gru,lstm}"]
    cell = next(f for f in dataclasses.fields(ModelConfig) if f.name == "cell")
    assert len(meaning) > 20 and cell.metadata["help"].startswith(meaning)


def test_every_subcommand_has_a_one_line_description(capsys):
    listed = subcommands()
    # a subcommand added without help= is missing here
    described = {action.dest: action.help for action in listed._choices_actions}
    assert set(described) == set(listed.choices)
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    overview = squeeze(capsys.readouterr().out)
    for command, line in described.items():
        assert line and "\n" not in line, command
        assert squeeze(f"{command} {line}") in overview


def test_version_is_the_installed_package_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"seq2seq {importlib.metadata.version('seq2seq')}"


def test_version_without_an_installed_package_is_the_source_tree_version(monkeypatch, capsys):
    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    monkeypatch.setattr(seq2seq, "__version__", "9.8.7")
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == "seq2seq 9.8.7"
