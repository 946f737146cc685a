"""The Gradio demo (app.py) on a real trained run, driven through gradio_client."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
from gradio.state_holder import SessionState  # noqa: E402
from gradio_client import Client  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import app  # noqa: E402
from seq2seq.config import DECODE_METHODS  # noqa: E402
from seq2seq.translate import Translator  # noqa: E402
from study.plots import LONG_CURVE_PNG  # noqa: E402

pytestmark = pytest.mark.slow
MODEL = "tiny-de-en"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def translators(trained_run: Path) -> dict[str, Any]:
    return app.load_translators(trained_run.parent)


@contextlib.contextmanager
def served(translators: dict[str, Any]) -> Iterator[str]:
    """The page over ``translators``, served on a free port of 127.0.0.1; its URL."""
    demo = app.build_demo(translators)
    port = free_port()
    try:
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture(scope="module")
def server_url(translators: dict[str, Any]) -> Iterator[str]:
    with served(translators) as url:
        yield url


@pytest.fixture(scope="module")
def client(server_url: str) -> Client:
    return Client(server_url, verbose=False)


@pytest.fixture(scope="module")
def two_pair_demo() -> tuple[gr.Blocks, dict[str, str]]:
    """The page over the shipped German → English and English → German runs, German first;
    with the run names by source language."""
    shipped = app.load_translators(REPO / "checkpoints")
    # The bilingual runs only: a multilingual run's first direction may also be de-en or en-de.
    names = {t.language_pair: name for name, t in shipped.items() if not t.multilingual}
    missing_pairs = {("de", "en"), ("en", "de")} - set(names)
    assert not missing_pairs, f"checkpoints/ has no run for {missing_pairs}"
    de_en, en_de = names["de", "en"], names["en", "de"]
    demo = app.build_demo({de_en: shipped[de_en], en_de: shipped[en_de]})
    return demo, {"de": de_en, "en": en_de}


def block(demo: gr.Blocks, **attributes: Any) -> Any:
    """The one block of the page whose attributes have these values (e.g. elem_id="model")."""
    found = [
        b
        for b in demo.blocks.values()
        if all(getattr(b, key, None) == value for key, value in attributes.items())
    ]
    assert len(found) == 1, f"{len(found)} blocks with {attributes}"
    return found[0]


def fire(demo: gr.Blocks, trigger: Any, event: str, value: Any) -> dict[int, dict[str, Any]]:
    """Run the handler wired to ``trigger``'s ``event`` as the server does (Gradio's pre- and
    postprocessing included); its updates by output block id."""
    handlers = [fn for fn in demo.fns.values() if (trigger._id, event) in fn.targets]
    assert len(handlers) == 1, f"{len(handlers)} handlers for {event} of {trigger}"
    result = asyncio.run(demo.process_api(handlers[0], [value]))
    return {b._id: update for b, update in zip(handlers[0].outputs, result["data"], strict=True)}


def translate(client: Client, text: str, mode: str = "beam", beam: int = 3) -> tuple[Any, ...]:
    job = client.submit(text, MODEL, mode, beam, 1.0, api_name="/translate")
    return tuple(job.result(timeout=120))


# ---------------------------------------------------------------------------------------------
# Through the API


def test_two_lines_give_two_translations(client: Client) -> None:
    output, nbest, timing = translate(client, "Ein Mann fährt Fahrrad.\nZwei Hunde spielen.")
    lines = output.split("\n")
    assert len(lines) == 2 and all(line.strip() for line in lines)
    assert nbest["headers"] == app.NBEST_HEADERS
    assert {row[0] for row in nbest["data"]} == {1, 2}
    assert [row[2] for row in nbest["data"] if row[1] == 1] == lines
    assert "ms" in timing


def test_greedy_gives_one_candidate_per_line(client: Client) -> None:
    output, nbest, timing = translate(client, "Ein Hund läuft.", mode="greedy", beam=7)
    assert output.strip()
    assert len(nbest["data"]) == 1
    assert "greedy" in timing


@pytest.mark.parametrize("text", ["", "   ", " \n\t\n "])
def test_empty_input_is_a_friendly_error(client: Client, text: str) -> None:
    with pytest.raises(AppError, match="Please enter a sentence to translate"):
        translate(client, text)


def test_over_length_input_names_the_limit(client: Client) -> None:
    with pytest.raises(AppError, match=str(app.MAX_INPUT_CHARS)):
        translate(client, "Hund " * (app.MAX_INPUT_CHARS // 5 + 1))


def test_too_many_lines_names_the_limit(client: Client) -> None:
    with pytest.raises(AppError, match=str(app.MAX_LINES)):
        translate(client, "\n".join(["Ein Hund."] * (app.MAX_LINES + 1)))


def test_translator_value_error_is_shown(client: Client) -> None:
    # Short in characters, but byte fallback makes each emoji several subwords: over 400.
    with pytest.raises(AppError, match="subword tokens; the limit is"):
        translate(client, "😀" * 450)


def test_unknown_model_is_a_friendly_error(client: Client) -> None:
    job = client.submit("Ein Hund.", "no-such-run", "beam", 3, 1.0, api_name="/translate")
    with pytest.raises(AppError, match="no-such-run"):  # Gradio checks the choices itself
        job.result(timeout=120)


@pytest.mark.parametrize(
    ("beam", "penalty", "named", "value"),
    [
        ("five", 1.0, "Beam size", "five"),
        (None, 1.0, "Beam size", None),
        (2.5, 1.0, "Beam size", 2.5),
        (0, 1.0, "Beam size", 0),
        (11, 1.0, "Beam size", 11),
        (3, "high", "Length penalty", "high"),
        (3, None, "Length penalty", None),
        (3, -0.5, "Length penalty", -0.5),
        (3, 2.5, "Length penalty", 2.5),
    ],
)
def test_malformed_beam_or_penalty_names_the_parameter(
    client: Client, beam: Any, penalty: Any, named: str, value: Any
) -> None:
    job = client.submit("Ein Hund.", MODEL, "beam", beam, penalty, api_name="/translate")
    with pytest.raises(AppError) as err:
        job.result(timeout=120)
    assert named in str(err.value) and repr(value) in str(err.value)


def call_raw(server_url: str, body: str) -> tuple[str, Any]:
    """POST a hand-written JSON body to Gradio's HTTP route for /translate; the last server-sent
    event's name and data."""
    url = f"{server_url}gradio_api/call/translate"
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        event_id = json.load(response)["event_id"]
    with urllib.request.urlopen(f"{url}/{event_id}", timeout=120) as response:
        stream = response.read().decode()
    events = [
        line.removeprefix("event: ") for line in stream.splitlines() if line.startswith("event:")
    ]
    data = [line.removeprefix("data: ") for line in stream.splitlines() if line.startswith("data:")]
    return events[-1], json.loads(data[-1])


def test_raw_http_translates(server_url: str) -> None:
    event, data = call_raw(server_url, json.dumps({"data": ["Ein Hund.", MODEL, "beam", 2, 1.0]}))
    assert event == "complete" and data[0].strip()


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_length_penalty_over_raw_http_is_refused(server_url: str, literal: str) -> None:
    # Strict JSON has no NaN, but Python's parser (and so Gradio's) reads these literals.
    body = f'{{"data": ["Ein Hund.", "{MODEL}", "beam", 3, {literal}]}}'
    event, data = call_raw(server_url, body)
    assert event == "error", f"{literal} length penalty was translated: {data}"
    assert "Length penalty" in data["error"]


def test_unseen_scripts_emoji_and_control_characters_translate(client: Client) -> None:
    text = "Ein Hund 🐕 läuft\x07 über die Straße\x1b[31m. 日本語 Ωμέγα\u200b\ufeff"
    output, nbest, _ = translate(client, text)
    assert output.strip()
    assert nbest["data"]


def test_only_translate_is_public(client: Client) -> None:
    api = client.view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == {"/translate"}
    params = [p["parameter_name"] for p in api["named_endpoints"]["/translate"]["parameters"]]
    assert params == ["text", "model_name", "mode_name", "beam_size", "length_penalty"]


def test_fifty_concurrent_requests_all_succeed(client: Client) -> None:
    sentences = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee.", "Eine Frau singt."]
    jobs = [
        client.submit(sentences[i % 3], MODEL, "beam", 2, 1.0, api_name="/translate")
        for i in range(50)
    ]
    outputs = [job.result(timeout=300)[0] for job in jobs]
    assert len(outputs) == 50 and all(out.strip() for out in outputs)
    assert outputs[0] == outputs[3]  # same sentence, same settings, same answer


# ---------------------------------------------------------------------------------------------
# In process


def test_blank_lines_keep_their_place(translators: dict[str, Any]) -> None:
    output, table, _, attention = app.run_translation(
        translators, "\nEin Hund.\n\nEine Katze.", MODEL, "beam", 2, 1.0
    )
    lines = output.split("\n")
    assert len(lines) == 4 and lines[0] == "" and lines[2] == ""
    assert lines[1] and lines[3]
    assert {row[0] for row in table["data"]} == {2, 4}
    assert attention is not None
    weights = attention["weights"]
    assert len(weights) == len(attention["output_pieces"])
    assert len(weights[0]) == len(attention["source_pieces"])


def test_heatmap_is_a_figure(translators: dict[str, Any]) -> None:
    *_, attention = app.run_translation(translators, "Ein Hund läuft.", MODEL, "greedy", 1, 1.0)
    assert isinstance(app.draw_attention(attention), Figure)
    assert app.draw_attention(None) is None


def test_a_failed_request_clears_the_previous_timing_and_attention(
    translators: dict[str, Any],
) -> None:
    """As the page runs it: a translation fills the timing line and the plot; the next request
    fails, and what Gradio runs on that failure empties both."""
    demo = app.build_demo(translators)
    [translate] = [fn for fn in demo.fns.values() if fn.api_name == "translate"]
    session = SessionState(demo)  # where the page's gr.State values live between events

    def run(fn: Any, *inputs: Any) -> dict[int, Any]:
        """``fn``'s outputs by block id, as the server computes them for this session."""
        result = asyncio.run(demo.process_api(fn, list(inputs), state=session))
        return {b._id: value for b, value in zip(fn.outputs, result["data"], strict=True)}

    def chained(on_failure: bool) -> Any:
        [fn] = [
            fn
            for fn in demo.fns.values()
            if fn.trigger_after == translate._id and fn.trigger_only_on_failure == on_failure
        ]
        return fn

    timing, plot = block(demo, elem_id="timing"), block(demo, elem_id="attention")
    [attention] = [b for b in translate.outputs if isinstance(b, gr.State)]
    shown = run(translate, "Ein Hund läuft.", MODEL, "beam", 2, 1.0, None)
    assert "ms" in shown[timing._id] and session[attention._id]
    drawn = run(chained(on_failure=False), None)
    assert drawn[plot._id] is not None

    with pytest.raises(gr.Error, match="Please enter a sentence"):
        run(translate, "  ", MODEL, "beam", 2, 1.0, None)
    cleared = run(chained(on_failure=True))
    assert not cleared[timing._id] and cleared[plot._id] is None
    assert session[attention._id] is None


def test_page_with_two_models_builds(translators: dict[str, Any]) -> None:
    translator = translators[MODEL]
    demo = app.build_demo({"a-de-en": translator, "b-de-en": translator})
    dropdowns = [b for b in demo.blocks.values() if isinstance(b, gr.Dropdown)]
    assert dropdowns and dropdowns[0].visible and dropdowns[0].choices
    assert "German → English" in app.pair_label(translator)
    assert "Parameters" in app.facts_table(translator)


def facts_rows(translator: Translator) -> dict[str, str]:
    """The About tab's facts table as {fact: value}."""
    rows = app.facts_table(translator).splitlines()[2:]  # after the header and its rule
    return dict(tuple(cell.strip() for cell in row.strip("|").split("|")) for row in rows)


def test_facts_table_shows_each_fact_of_the_run(translators: dict[str, Any]) -> None:
    trained = translators[MODEL]
    cfg = trained.cfg
    cfg = dataclasses.replace(
        cfg,
        data=dataclasses.replace(cfg.data, src_lang="cs", tgt_lang="fr"),
        model=dataclasses.replace(
            cfg.model, cell="lstm", num_layers=2, bidirectional=False, attention="dot",
            embed_size=48, hidden_size=96,
        ),
        subword=dataclasses.replace(cfg.subword, model_type="bpe", vocab_size=12000),
        decode=dataclasses.replace(cfg.decode, beam_size=4, length_penalty=0.6),
    )  # fmt: skip
    info = {
        "train_pairs": 28998,
        "train_seconds": 5591.7,
        "step": 3132,
        "best_step": 2436,
        "best_valid_bleu": 36.758,
        "stopped": "early stop: no BLEU gain in 4 validations",
    }
    rows = facts_rows(Translator(trained.model, trained.tokenizer, cfg, info))
    assert rows == {
        "Language pair": "Czech → French",
        "Parameters": f"{trained.model.num_parameters():,}",
        "Architecture": "LSTM 2-layer encoder, dot attention, embeddings 48, hidden 96",
        "Subwords": "bpe 12,000",
        "Training pairs": "28,998",
        "Training time": "93.2 min",
        "Steps (best at)": "3132 (2436)",
        "Best validation BLEU": "36.76",
        "Stopped because": "early stop: no BLEU gain in 4 validations",
        "Default decoding": "beam 4, length penalty 0.6",
    }
    # A run stopped before its first validation, written by a version that recorded less.
    older = facts_rows(Translator(trained.model, trained.tokenizer, cfg, {"best_valid_bleu": -1}))
    assert older["Steps (best at)"] == "– (–)"
    for fact in ("Training pairs", "Training time", "Best validation BLEU", "Stopped because"):
        assert older[fact] == "–", fact


def test_switching_model_changes_pair_label_and_examples(
    two_pair_demo: tuple[gr.Blocks, dict[str, str]],
) -> None:
    demo, names = two_pair_demo
    model, pair = block(demo, elem_id="model"), block(demo, elem_id="pair")
    # Each examples block is the column holding one gr.Examples' dataset.
    examples = {
        b.parent._id: [row[0] for row in b.samples]
        for b in demo.blocks.values()
        if isinstance(b, gr.Dataset)
    }
    german, english = app.read_examples("de"), app.read_examples("en")
    assert german and english and german != english
    shown = [examples[i] for i in examples if demo.blocks[i].visible]
    assert "German → English" in pair.value and shown == [german]

    for lang, label, sentences in (
        ("en", "English → German", english),
        ("de", "German → English", german),  # and back again
    ):
        updates = fire(demo, model, "change", names[lang])
        assert label in updates[pair._id]["value"]
        # Every examples block is told whether to show; only the new source language's shows.
        assert set(examples) <= set(updates)
        shown = [examples[i] for i in examples if updates[i]["visible"]]
        assert shown == [sentences], f"{names[lang]} shows {shown}"


def test_greedy_disables_the_beam_slider(two_pair_demo: tuple[gr.Blocks, dict[str, str]]) -> None:
    demo, _ = two_pair_demo
    mode, beam = block(demo, elem_id="mode"), block(demo, label="Beam size")
    assert mode.value == "beam" and beam.interactive is not False and beam.visible
    off = fire(demo, mode, "change", "greedy")[beam._id]
    # Greedy ignores the beam size: the slider is either locked or hidden.
    key = "interactive" if off.get("interactive") is False else "visible"
    assert off.get(key) is False, f"greedy leaves the beam slider usable: {off}"
    on = fire(demo, mode, "change", "beam")[beam._id]
    assert on.get(key) is True, f"beam does not give the slider back: {on}"


def test_int8_models_serve_and_say_so(trained_run: Path, translators: dict[str, Any]) -> None:
    int8 = app.load_translators(trained_run.parent, int8=True)
    assert int8[MODEL].quantized and not translators[MODEL].quantized
    text = "Ein Mann fährt Fahrrad.\nZwei Hunde spielen."
    output, _, timing, _ = app.run_translation(int8, text, MODEL, "beam", 3, 1.0)
    assert len(output.split("\n")) == 2 and all(output.split("\n"))
    assert "int8" in timing
    assert "int8" not in app.run_translation(translators, text, MODEL, "beam", 3, 1.0)[2]


def test_int8_flag_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEQ2SEQ_INT8", raising=False)
    assert not app.parse_args([]).int8 and app.parse_args(["--int8"]).int8
    monkeypatch.setenv("SEQ2SEQ_INT8", "1")
    assert app.parse_args([]).int8
    monkeypatch.setenv("SEQ2SEQ_INT8", "0")
    assert not app.parse_args([]).int8


def test_examples_come_from_validation_or_builtin() -> None:
    german = app.read_examples("de")
    assert 1 <= len(german) <= app.NUM_EXAMPLES and all(german)
    assert app.read_examples("xx") == []


def about_tab_texts(demo: gr.Blocks) -> list[str]:
    """The Markdown texts at the top level of the About tab, in order."""
    tab = block(demo, label="About the models")
    return [child.value for child in tab.children if isinstance(child, gr.Markdown)]


def test_about_tab_opens_with_the_long_sentence_curve_once_drawn(
    translators: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = tmp_path / "docs" / "study.md"
    monkeypatch.setattr(app, "STUDY_REPORT", report)
    assert app.long_curve(report) is None
    before = about_tab_texts(app.build_demo(translators))
    assert before[0].startswith(f"## {MODEL}")
    assert not any("Attention and long sentences" in text for text in before)

    image = report.with_suffix("") / LONG_CURVE_PNG
    image.parent.mkdir(parents=True)
    image.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    texts = about_tab_texts(app.build_demo(translators))
    assert texts[0].startswith("## Attention and long sentences")
    assert "![BLEU by sentence length](data:image/png;base64," in texts[0]
    assert texts[1:] == before


def test_markdown_images_are_inlined(tmp_path: Path) -> None:
    (tmp_path / "plot.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    (tmp_path / "report.md").write_text("# R\n![att](plot.png) ![gone](missing.png)\n")
    text = app.read_markdown(tmp_path / "report.md")
    assert text is not None and "data:image/png;base64," in text
    assert "*[gone: missing.png]*" in text
    assert app.read_markdown(tmp_path / "absent.md") is None


# ---------------------------------------------------------------------------------------------
# Start-up errors


def test_broken_run_names_its_folder(tmp_path: Path) -> None:
    run = tmp_path / "broken-run"
    run.mkdir()
    (run / "config.json").write_text("{not json")
    (run / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(app.SetupError, match="broken-run") as err:
        app.load_translators(tmp_path)
    assert app.TRAIN_COMMAND in str(err.value)


def run_app(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python app.py ARGS` as a user starts it, from the repository root."""
    return subprocess.run(
        [sys.executable, str(REPO / "app.py"), *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=REPO,
    )


def test_cli_without_runs_exits_with_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / "half-trained").mkdir()
    (tmp_path / "half-trained" / "config.json").write_text("{}")
    proc = run_app(
        ["--checkpoints", str(tmp_path)], {**os.environ, "SEQ2SEQ_PORT": str(free_port())}
    )
    assert proc.returncode != 0
    assert str(tmp_path) in proc.stderr
    assert "seq2seq train --config configs/multi30k-de-en.yaml" in proc.stderr
    assert "half-trained" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_port_in_use_is_a_one_line_error(trained_run: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SEQ2SEQ_", "GRADIO_S"))}
        args = ["--checkpoints", str(trained_run.parent), "--host", "127.0.0.1", "--port"]
        proc = run_app([*args, str(port)], env)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert str(port) in errors[0] and "--port" in errors[0]


def test_port_taken_after_the_check_is_a_one_line_error(
    trained_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The port is free when checked and taken when Gradio binds it: the launch itself must fail
    # cleanly too.
    monkeypatch.setattr(app, "port_problem", lambda host, port: None)

    def served(demo: gr.Blocks) -> None:
        demo.close()
        pytest.fail("the demo started on a port that is in use")

    monkeypatch.setattr(gr.Blocks, "block_thread", served)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = [
            "--checkpoints",
            str(trained_run.parent),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        code = app.main(args)
    assert code != 0
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(port) in errors[0] and "--port" in errors[0]


# ---------------------------------------------------------------------------------------------
# Sample mode


def test_modes_are_the_decoding_methods_a_config_can_name() -> None:
    assert app.MODES == DECODE_METHODS


def test_sample_mode_shows_every_sample_ranked(client: Client) -> None:
    text = "Ein Mann fährt Fahrrad.\nZwei Hunde spielen."
    output, nbest, timing = translate(client, text, mode="sample", beam=4)
    lines = output.split("\n")
    for line in (1, 2):
        rows = [row for row in nbest["data"] if row[0] == line]
        assert [row[1] for row in rows] == [1, 2, 3, 4]
        scores = [row[3] for row in rows]
        assert scores == sorted(scores, reverse=True)
        assert rows[0][2] == lines[line - 1]
    assert "4 samples" in timing and "seed" in timing
    # sampled with the page's seed: the same request gives the same samples
    assert translate(client, text, mode="sample", beam=4)[1] == nbest


def test_page_sampling_settings_are_used_and_checked(translators: dict[str, Any]) -> None:
    text = "Ein Hund läuft über die Wiese."
    greedy, *_ = app.run_translation(translators, text, MODEL, "greedy", 1, 1.0)
    only_the_likeliest = {"temperature": 1.0, "top_k": 1, "top_p": 1.0, "seed": 4}
    output, table, timing, _ = app.run_translation(
        translators, text, MODEL, "sample", 3, 1.0, only_the_likeliest
    )
    assert output == greedy and [row[2] for row in table["data"]] == [greedy] * 3
    assert "3 samples" in timing and "top-k 1" in timing and "seed 4" in timing
    for name, value, label in [
        ("temperature", 0.0, "Temperature"),
        ("top_p", 1.5, "Top-p"),
        ("top_k", -1, "Top-k"),
        ("seed", 1.5, "Seed"),
    ]:
        with pytest.raises(gr.Error, match=label):
            app.run_translation(
                translators, text, MODEL, "sample", 3, 1.0, {**only_the_likeliest, name: value}
            )


def test_sample_mode_counts_samples_and_shows_the_sampling_controls(
    two_pair_demo: tuple[gr.Blocks, dict[str, str]],
) -> None:
    demo, _ = two_pair_demo
    mode, count = block(demo, elem_id="mode"), block(demo, label="Beam size")
    controls = block(demo, elem_id="sampling")
    assert controls.visible is False  # the shipped runs decode with beam search
    to_sample = fire(demo, mode, "change", "sample")
    assert to_sample[count._id]["label"] == "Samples"
    assert to_sample[count._id]["interactive"] is True and to_sample[controls._id]["visible"]
    back = fire(demo, mode, "change", "beam")
    assert back[count._id]["label"] == "Beam size" and back[controls._id]["visible"] is False


# ---------------------------------------------------------------------------------------------
# A page that serves a multilingual model

MULTI = "tiny-multi"
FRENCH = "Un homme en chemise bleue est debout sur une échelle."


@pytest.fixture(scope="module")
def multi_translators(trained_multilingual_run: Path, translators: dict[str, Any]) -> dict:
    """The tiny multilingual run first, then the tiny German → English one."""
    return {**app.load_translators(trained_multilingual_run.parent), **translators}


@pytest.fixture(scope="module")
def multi_client(multi_translators: dict[str, Any]) -> Iterator[Client]:
    with served(multi_translators) as url:
        yield Client(url, verbose=False)


def test_a_multilingual_page_adds_source_and_target_to_the_api(
    multi_client: Client, multi_translators: dict[str, Any]
) -> None:
    api = multi_client.view_api(print_info=False, return_format="dict")
    params = [p["parameter_name"] for p in api["named_endpoints"]["/translate"]["parameters"]]
    assert params == [
        "text", "model_name", "mode_name", "beam_size", "length_penalty", "source_lang",
        "target_lang",
    ]  # fmt: skip
    fr_cs = multi_client.predict(FRENCH, MULTI, "greedy", 1, 1.0, "fr", "cs", api_name="/translate")
    expected = multi_translators[MULTI].translate([FRENCH], beam_size=1, target_lang="cs")
    assert fr_cs[0] == expected[0].text
    # A call written for a bilingual page still works: the languages take their defaults.
    output, _, _ = multi_client.predict("Ein Hund.", MODEL, "beam", 2, 1.0, api_name="/translate")
    assert output.strip()


@pytest.mark.parametrize(
    ("source_lang", "target_lang", "needle"),
    [
        ("fr", "it", "not trained to translate into 'it'"),
        ("fr", "fr", "both 'fr'"),
        ("xx", "all", "Unknown source language 'xx'"),
        ("fr", None, "target_lang must be a language code"),
    ],
)
def test_an_unknown_language_is_a_readable_error(
    multi_client: Client, source_lang: Any, target_lang: Any, needle: str
) -> None:
    job = multi_client.submit(
        FRENCH, MULTI, "greedy", 1, 1.0, source_lang, target_lang, api_name="/translate"
    )
    with pytest.raises(AppError, match=needle):
        job.result(timeout=120)


def test_all_languages_translates_into_every_other_language(
    multi_translators: dict[str, Any],
) -> None:
    text = f"{FRENCH}\nDeux chiens."
    result = app.translate_request(
        multi_translators, text, MULTI, "greedy", 1, 1.0, None, "fr", "all"
    )
    assert list(result.by_language) == ["en", "de", "cs"]  # the model's order, never French
    multi = multi_translators[MULTI]
    for lang, name in (("en", "English"), ("de", "German"), ("cs", "Czech")):
        expected = [
            t.text for t in multi.translate(text.split("\n"), beam_size=1, target_lang=lang)
        ]
        assert result.by_language[lang] == "\n".join(expected)
        assert [line for line in result.output.split("\n") if line.startswith(f"{name}: ")] == [
            f"{name}: {line}" for line in expected
        ]
    assert {row[0] for row in result.table["data"]} == {1, 2}  # input lines, per language
    assert len(result.table["data"]) == 6
    assert "into 3 languages" in result.timing
    assert result.attention is not None and result.attention["source_pieces"][0] == "<2en>"


def test_a_bilingual_model_on_a_multilingual_page_ignores_the_languages(
    multi_translators: dict[str, Any],
) -> None:
    alone = app.run_translation(multi_translators, "Ein Hund.", MODEL, "greedy", 1, 1.0)
    asked = app.run_translation(
        multi_translators, "Ein Hund.", MODEL, "greedy", 1, 1.0, None, "fr", "all"
    )
    assert asked[0] == alone[0] and "languages" not in asked[2]


def test_choosing_a_model_or_direction_sets_the_dropdowns_and_boxes(
    multi_translators: dict[str, Any],
) -> None:
    multi, bilingual = multi_translators[MULTI], multi_translators[MODEL]
    examples, boxes = ["en", "de", "fr", "cs"], ["en", "de", "fr", "cs"]
    pair, *rest = app.direction_updates(multi, "fr", "cs", examples, boxes)
    shown_examples, rest = rest[:4], rest[4:]
    source, target, all_row, output, *box_updates = rest
    assert pair["value"] == "### French → Czech"
    assert [u["visible"] for u in shown_examples] == [False, False, True, False]
    assert (source["value"], target["value"]) == ("fr", "cs") and source["visible"]
    assert [code for _, code in target["choices"]] == ["en", "de", "cs", app.ALL_TARGETS]
    assert not all_row["visible"] and output["visible"]

    *_, all_row, output, en, de, fr, cs = app.direction_updates(multi, "fr", "all", examples, boxes)
    assert all_row["visible"] and not output["visible"]
    assert [box["visible"] for box in (en, de, fr, cs)] == [True, True, False, True]

    # A target the new source cannot reach falls back to that source's first target.
    _, *rest = app.direction_updates(multi, "cs", "cs", examples, boxes)
    assert rest[5]["value"] == "en"

    pair, *rest = app.direction_updates(bilingual, "fr", "cs", examples, boxes)
    assert pair["value"] == "### German → English"
    assert [u["visible"] for u in rest[:4]] == [False, True, False, False]
    assert not rest[4]["visible"] and not rest[5]["visible"] and not rest[6]["visible"]


def test_a_multilingual_page_has_examples_in_every_source_language(
    multi_translators: dict[str, Any],
) -> None:
    demo = app.build_demo(multi_translators)
    labels = {b.label for b in demo.blocks.values() if isinstance(b, gr.Dataset)}
    for name in ("English", "German", "French", "Czech"):
        assert any(name in (label or "") for label in labels), labels


def test_the_facts_table_lists_a_multilingual_models_directions(
    multi_translators: dict[str, Any],
) -> None:
    rows = facts_rows(multi_translators[MULTI])
    assert rows["Directions"] == "12 between English, German, French, Czech"
    assert "Language pair" not in rows
