"""Tests for seq2seq.download: Multi30k fetched from a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import gzip
import hashlib
import logging
import shutil
import threading
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from seq2seq.corpus import read_parallel_files
from seq2seq.download import (
    MANIFEST_NAME,
    MULTI30K_SHA256,
    DownloadError,
    fetch_multi30k_file,
    multi30k_pair,
)

# --- A local HTTP server ------------------------------------------------------------------------


class _Handler(SimpleHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        if not self.server.truncate:
            super().do_GET()
            return
        # Announce the full size, send half, hang up: a server that dies mid-transfer.
        data = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


class _Server(ThreadingHTTPServer):
    def __init__(self, root: Path, truncate: bool) -> None:
        super().__init__(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
        self.paths: list[str] = []  # every GET, to prove the cache makes no request
        self.truncate = truncate

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/"


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., _Server]]:
    """Start a server for a folder: ``serve(root, truncate=False)``; all stop after the test."""
    monkeypatch.setenv("no_proxy", "*")  # a proxy from the environment must not see 127.0.0.1
    servers: list[_Server] = []

    def start(root: Path, truncate: bool = False) -> _Server:
        server = _Server(root, truncate)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def write_gzip(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode("utf-8")))
    return path


DOWNLOAD_LOGGER = "seq2seq.download"


def warnings_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The warnings seq2seq.download logged while caplog captured it."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == DOWNLOAD_LOGGER and r.levelno == logging.WARNING
    ]


# --- Multi30k download --------------------------------------------------------------------------


def test_fetch_downloads_verifies_and_then_uses_the_cache(multi30k_dir, serve, tmp_path):
    server = serve(multi30k_dir)
    cache = tmp_path / "cache"
    path = fetch_multi30k_file("val", "de", cache, server.url)
    assert path == cache / "val.de.gz"
    assert sha256(path) == MULTI30K_SHA256["val.de.gz"]
    assert path.read_bytes() == (multi30k_dir / "val.de.gz").read_bytes()
    assert sorted(p.name for p in cache.iterdir()) == ["val.de.gz"]  # no temp file left

    assert fetch_multi30k_file("val", "de", cache, server.url) == path
    assert server.paths == ["/val.de.gz"]  # the second call made no request


def test_corrupted_download_is_rejected_and_leaves_nothing(multi30k_dir, serve, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    shutil.copy(multi30k_dir / "val.en.gz", mirror)
    flip_byte(mirror / "val.en.gz")
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="checksum") as error:
        fetch_multi30k_file("val", "en", cache, serve(mirror).url)
    assert MULTI30K_SHA256["val.en.gz"] in str(error.value)
    assert sha256(mirror / "val.en.gz") in str(error.value)
    assert list(cache.iterdir()) == []


@pytest.mark.parametrize("split", ["val", "test_2017_flickr"])  # with and without a checksum
def test_connection_closed_mid_transfer_leaves_nothing(multi30k_dir, serve, tmp_path, split):
    mirror = tmp_path / "mirror"
    shutil.copytree(multi30k_dir, mirror)
    write_gzip(mirror / "test_2017_flickr.de.gz", "Ein Hund.\n" * 500)
    server = serve(mirror, truncate=True)
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match=rf"{split}\.de\.gz.* got \d+ of \d+ bytes"):
        fetch_multi30k_file(split, "de", cache, server.url, timeout=10)
    assert server.paths == [f"/{split}.de.gz"]
    assert list(cache.iterdir()) == []


def test_corrupted_cache_is_downloaded_again(multi30k_dir, serve, tmp_path, caplog):
    server = serve(multi30k_dir)
    path = fetch_multi30k_file("val", "de", tmp_path, server.url)
    flip_byte(path)
    with caplog.at_level(logging.WARNING, logger=DOWNLOAD_LOGGER):
        assert fetch_multi30k_file("val", "de", tmp_path, server.url) == path
    (warning,) = warnings_logged(caplog)
    assert str(path) in warning and "downloading it again" in warning
    assert f"expected {MULTI30K_SHA256['val.de.gz']}" in warning
    assert sha256(path) == MULTI30K_SHA256["val.de.gz"]
    assert server.paths == ["/val.de.gz"] * 2


def test_local_folder_mirror_and_pair(multi30k_dir, tmp_path):
    src, tgt = multi30k_pair("val", "de", "en", tmp_path, mirror=str(multi30k_dir))
    assert (src.name, tgt.name) == ("val.de.gz", "val.en.gz")
    assert len(read_parallel_files(src, tgt)) == 1014
    with pytest.raises(
        DownloadError, match=r"test_2018_flickr\.cs\.gz"
    ):  # not in the shared folder
        fetch_multi30k_file("test_2018_flickr", "cs", tmp_path, mirror=str(multi30k_dir))
    assert not list(tmp_path.glob("test_2018*"))


def test_unverified_file_is_trusted_on_first_use_then_checked(serve, tmp_path, caplog):
    mirror = tmp_path / "mirror"
    first = write_gzip(mirror / "test_2017_mscoco.fr.gz", "Un chat.\n")
    server = serve(mirror)
    cache = tmp_path / "cache"
    with caplog.at_level(logging.WARNING, logger=DOWNLOAD_LOGGER):
        path = fetch_multi30k_file("test_2017_mscoco", "fr", cache, server.url)
    (warning,) = warnings_logged(caplog)
    assert str(path) in warning and "unverified" in warning
    assert sha256(first) in warning
    manifest = (cache / MANIFEST_NAME).read_text()
    assert manifest == f"{sha256(first)}  test_2017_mscoco.fr.gz\n"

    # Upstream changes and the cached copy is damaged: the re-download must match the record.
    write_gzip(first, "Un chien.\n")
    flip_byte(path)
    with pytest.raises(DownloadError, match=f"expected sha256 {manifest.split()[0]}"):
        fetch_multi30k_file("test_2017_mscoco", "fr", cache, server.url)
    assert sorted(p.name for p in cache.iterdir()) == [MANIFEST_NAME]


def test_http_error_names_the_url(serve, tmp_path):
    (tmp_path / "empty").mkdir()
    server = serve(tmp_path / "empty")
    with pytest.raises(DownloadError, match=rf"{server.url}val\.fr\.gz.*404"):
        fetch_multi30k_file("val", "fr", tmp_path / "cache", server.url)
    assert list((tmp_path / "cache").iterdir()) == []


def test_missing_split_or_language_lists_what_exists(tmp_path):
    with pytest.raises(ValueError, match=r"test_2017_flickr\.cs.*test_2017_flickr \(de en fr\)"):
        fetch_multi30k_file("test_2017_flickr", "cs", tmp_path)
    with pytest.raises(ValueError, match=r"train \(de en fr cs\)"):
        multi30k_pair("train", "de", "xx", tmp_path)
    assert list(tmp_path.iterdir()) == []
