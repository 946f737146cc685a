"""Multi30k task 1: download with SHA-256 checksums into a cache that never holds a bad file.

Files come from the dataset's public repository (or a mirror: another URL or a local folder), are
written to a temporary name, verified and only then renamed into `data/multi30k/`. The later test
sets have no published checksum here: their hash is recorded on first download (trust on first
use) in the cache's SHA256SUMS, and every later load must match it.

`language_name` gives the English names of Multi30k's language codes, for people to read (the
demo, model cards).
"""

from __future__ import annotations

import hashlib
import http.client
import io
import logging
import os
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

MULTI30K_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/"
DOWNLOAD_TIMEOUT = 60.0  # seconds without any data before a download is abandoned
MANIFEST_NAME = "SHA256SUMS"  # in the cache dir: checksums recorded on first use (sha256sum format)

# Which (split, language) files Multi30k task 1 publishes; files are named f"{split}.{lang}.gz".
MULTI30K_LANGS: dict[str, tuple[str, ...]] = {
    "train": ("de", "en", "fr", "cs"),
    "val": ("de", "en", "fr", "cs"),
    "test_2016_flickr": ("de", "en", "fr", "cs"),
    "test_2017_flickr": ("de", "en", "fr"),
    "test_2017_mscoco": ("de", "en", "fr"),
    "test_2018_flickr": ("de", "en", "fr", "cs"),
}
LANGUAGE_NAMES = {"de": "German", "en": "English", "fr": "French", "cs": "Czech"}

# None: no checksum recorded yet; such a file is trusted on first use (see fetch_multi30k_file).
MULTI30K_SHA256: dict[str, str | None] = {
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.fr.gz": "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c",
    "train.cs.gz": "a65adb8b32e3bc664f21ecba7a6e7f6950fd1f405e135f7c312faabdb6255077",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.fr.gz": "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9",
    "val.cs.gz": "b63226e05c4bd5dd6a42897d74b86a1b9d2c31498252c572b1ea7f7996927fcc",
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "test_2016_flickr.fr.gz": "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90",
    "test_2016_flickr.cs.gz": "200a4a74cc9560f051924abb9803be008d1908d77f747e9141aeb86dfd2797f1",
    "test_2017_flickr.de.gz": None,
    "test_2017_flickr.en.gz": None,
    "test_2017_flickr.fr.gz": None,
    "test_2017_mscoco.de.gz": None,
    "test_2017_mscoco.en.gz": None,
    "test_2017_mscoco.fr.gz": None,
    "test_2018_flickr.de.gz": None,
    "test_2018_flickr.en.gz": None,
    "test_2018_flickr.fr.gz": None,
    "test_2018_flickr.cs.gz": None,
}


def language_name(code: str) -> str:
    """``"German"`` for ``"de"``; a code of another corpus is its own name."""
    return LANGUAGE_NAMES.get(code, code)


def language_pair_name(src: str, tgt: str) -> str:
    """``"German → English"`` for ``("de", "en")``."""
    return f"{language_name(src)} → {language_name(tgt)}"


class DownloadError(RuntimeError):
    """A corpus file could not be fetched intact; nothing of it was left in the cache."""


# --- Multi30k download --------------------------------------------------------------------------


def multi30k_file_name(split: str, lang: str) -> str:
    """The file name of one side of a Multi30k split; ValueError listing what exists if none."""
    if lang not in MULTI30K_LANGS.get(split, ()):
        available = "; ".join(f"{s} ({' '.join(langs)})" for s, langs in MULTI30K_LANGS.items())
        raise ValueError(f"Multi30k task 1 has no {split}.{lang}; available: {available}")
    return f"{split}.{lang}.gz"


def fetch_multi30k_file(
    split: str,
    lang: str,
    cache_dir: str | Path = Path("data/multi30k"),
    mirror: str = "",
    *,
    timeout: float = DOWNLOAD_TIMEOUT,
) -> Path:
    """Return the verified local copy of one Multi30k task 1 file, downloading it if needed.

    A cached file is checked on every call; one with a wrong checksum is deleted and fetched again.
    Downloads go to a temporary ``NAME.part-*`` file beside the target and are renamed only once
    complete and verified, so an interrupted or corrupt download never looks like a cached file.

    Files with a published checksum in `MULTI30K_SHA256` must match it. The later test sets have
    none: they are trusted on first use, i.e. the first copy's sha256 is recorded in the cache's
    ``SHA256SUMS`` with a logged warning that it is unverified, and later loads and re-downloads
    must match that record.

    Args:
        split: a key of `MULTI30K_LANGS`, e.g. ``"train"`` or ``"test_2016_flickr"``.
        lang: a language code the split has, e.g. ``"de"``.
        cache_dir: where files are kept.
        mirror: another base URL (``http(s)://...``) or a local folder holding the same files;
            empty for `MULTI30K_URL`.
        timeout: seconds to wait for data before giving up.

    Raises:
        ValueError: the split has no such language.
        DownloadError: the file could not be fetched, arrived short, or failed its checksum.
    """
    name = multi30k_file_name(split, lang)
    path = Path(cache_dir) / name
    if path.is_file() and _cached_file_ok(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    expected = _expected_sha256(path)
    actual = _download(_source_location(name, mirror), path, expected, timeout)
    if expected is None:
        _trust_on_first_use(path, actual)
    return path


def multi30k_pair(
    split: str,
    src_lang: str,
    tgt_lang: str,
    cache_dir: str | Path = Path("data/multi30k"),
    mirror: str = "",
) -> tuple[Path, Path]:
    """Fetch both sides of a Multi30k split; see `fetch_multi30k_file`."""
    for lang in (src_lang, tgt_lang):  # fail on a bad language before downloading either side
        multi30k_file_name(split, lang)
    return (
        fetch_multi30k_file(split, src_lang, cache_dir, mirror),
        fetch_multi30k_file(split, tgt_lang, cache_dir, mirror),
    )


def _source_location(name: str, mirror: str) -> str:
    base = mirror or MULTI30K_URL
    if "://" in base:
        return base.rstrip("/") + "/" + name
    if not Path(base).is_dir():
        raise DownloadError(
            f"mirror folder {base} not found: give the folder that holds the Multi30k files "
            f"(such as {name}) or an http(s) URL, or no mirror to download from {MULTI30K_URL}"
        )
    return str(Path(base) / name)


def _expected_sha256(path: Path) -> str | None:
    """The published checksum, else the one recorded on first use, else None."""
    return MULTI30K_SHA256.get(path.name) or _read_manifest(path.parent).get(path.name)


def _cached_file_ok(path: Path) -> bool:
    """Check a cached file; delete it and return False if its checksum is wrong."""
    expected = _expected_sha256(path)
    with path.open("rb") as f:
        actual = hashlib.file_digest(f, "sha256").hexdigest()
    if expected is None:  # placed there by hand, or the manifest was lost
        _trust_on_first_use(path, actual)
        return True
    if actual == expected:
        return True
    log.warning("%s has sha256 %s, expected %s: downloading it again", path, actual, expected)
    path.unlink()
    return False


def _download(location: str, dest: Path, expected: str | None, timeout: float) -> str:
    """Copy `location` to `dest` through a temporary file and return its sha256.

    The temporary file becomes `dest` only when complete and matching `expected` (if given); on any
    failure, interruption included, it is removed.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=f"{dest.name}.part-", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            actual = _copy_from(location, out, timeout)
            out.flush()
            os.fsync(out.fileno())  # the rename must not land before the data
        if expected is not None and actual != expected:
            raise DownloadError(
                f"checksum mismatch for {dest.name} from {location}: "
                f"expected sha256 {expected}, got {actual}"
            )
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return actual


def _copy_from(location: str, out: io.BufferedIOBase, timeout: float) -> str:
    """Stream `location` into `out`; return the sha256 of what was copied."""
    digest = hashlib.sha256()
    copied = 0
    try:
        with _open_source(location, timeout) as (src, size):
            while chunk := src.read(1 << 16):
                digest.update(chunk)
                out.write(chunk)
                copied += len(chunk)
    except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, IncompleteRead
        raise DownloadError(f"could not download {location}: {exc}") from exc
    # http.client's read(n) returns b"" when the server hangs up early instead of raising.
    if size is not None and copied != size:
        raise DownloadError(
            f"incomplete download of {location}: got {copied} of {size} bytes "
            "(the connection closed early)"
        )
    return digest.hexdigest()


@contextmanager
def _open_source(location: str, timeout: float) -> Iterator[tuple[io.BufferedIOBase, int | None]]:
    """Open a URL or a local path; yield the stream and its announced size (None if unknown)."""
    if "://" not in location:
        path = Path(location)
        with path.open("rb") as f:
            yield f, path.stat().st_size
        return
    with urllib.request.urlopen(location, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        yield response, int(length) if length and length.isdigit() else None


def _read_manifest(cache_dir: Path) -> dict[str, str]:
    path = cache_dir / MANIFEST_NAME
    if not path.is_file():
        return {}
    entries = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        if name:
            entries[name] = digest
    return entries


def _trust_on_first_use(path: Path, digest: str) -> None:
    """Record the checksum of a file nobody published one for, and say so."""
    entries = _read_manifest(path.parent) | {path.name: digest}
    manifest = path.parent / MANIFEST_NAME
    fd, tmp = tempfile.mkstemp(prefix=f"{MANIFEST_NAME}.part-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.writelines(f"{d}  {n}\n" for n, d in sorted(entries.items()))
    os.replace(tmp, manifest)
    log.warning(
        "%s is unverified: Multi30k publishes no checksum for it. Recorded sha256 %s in %s; "
        "later loads must match it (trust on first use).",
        path,
        digest,
        manifest,
    )
