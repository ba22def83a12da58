"""Fixtures for the dataset tests: an isolated cache, test registries, a local HTTP server, raw files."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from m6rec_bench.datasets.prepare import bundled_root

BUNDLED = bundled_root() / "ml-100k"
GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own M6BENCH_HOME and Hugging Face cache, and the packaged registry."""
    home = tmp_path / "m6home"
    monkeypatch.setenv("M6BENCH_HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.delenv("M6BENCH_DATASETS_YAML", raising=False)
    return home


def cached_files(home: Path) -> list[Path]:
    """Every file under the dataset cache except the checksum memo."""
    root = home / "datasets"
    if not root.exists():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and ".checksums" not in p.parts)


def md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()


def write_registry(path: Path, entries: list[dict], monkeypatch: pytest.MonkeyPatch) -> Path:
    """Write a test ``datasets.yaml`` holding ``entries`` and point M6BENCH_DATASETS_YAML at it."""
    path.write_text(yaml.safe_dump({"datasets": entries}, sort_keys=False), encoding="utf-8")
    monkeypatch.setenv("M6BENCH_DATASETS_YAML", str(path))
    return path


def url_entry(name: str, url: str, checksum: str, converter: str = "ml100k") -> dict:
    return {
        "name": name,
        "aliases": [f"{name}-alias"],
        "licence": "test data",
        "format": "movielens-100k",
        "converter": converter,
        "features": {"item_text": ["movie_title", "release_year", "class"], "kg": False},
        "sources": [{"kind": "url", "url": url, "checksum": checksum}],
    }


# ---------------------------------------------------------------- raw MovieLens 100K built from the bundled copy


def _rows(path: Path) -> list[list[str]]:
    return [line.rstrip("\n").split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:]]


def raw_ml100k_files(n_inter: int = 300) -> dict[str, bytes]:
    """u.data / u.item / u.user / u.genre in the GroupLens layout, for the first ``n_inter`` ratings."""
    inter = _rows(BUNDLED / "ml-100k.inter")[:n_inter]
    items = {r[1] for r in inter}
    users = {r[0] for r in inter}
    u_data = "".join("\t".join(r) + "\n" for r in inter)
    lines = []
    for item_id, title, year, classes in _rows(BUNDLED / "ml-100k.item"):
        if item_id not in items:
            continue
        flags = ["1" if g in classes.split() else "0" for g in GENRES]
        date = f"01-Jan-{year}" if year.isdigit() else ""
        lines.append("|".join([item_id, f"{title} ({year})" if date else title, date, "", "http://x", *flags]))
    u_item = "\n".join(lines) + "\n"
    u_user = "".join("|".join(r) + "\n" for r in _rows(BUNDLED / "ml-100k.user") if r[0] in users)
    u_genre = "".join(f"{g}|{i}\n" for i, g in enumerate(GENRES)) + "\n"
    return {
        "u.data": u_data.encode(),
        "u.item": u_item.encode("latin-1"),
        "u.user": u_user.encode(),
        "u.genre": u_genre.encode(),
    }


def make_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def ml100k_zip(n_inter: int = 300) -> bytes:
    """A zip in the GroupLens ``ml-100k.zip`` layout (files inside ``ml-100k/``)."""
    return make_zip({f"ml-100k/{k}": v for k, v in raw_ml100k_files(n_inter).items()})


# ---------------------------------------------------------------- a local HTTP server


@dataclass
class FileServer:
    """Serves ``files`` (URL path → bytes) on 127.0.0.1; counts requests per path."""

    files: dict[str, bytes] = field(default_factory=dict)
    truncated: set[str] = field(default_factory=set)
    requests: Counter = field(default_factory=Counter)
    base: str = ""
    trickle: dict[str, float] = field(default_factory=dict)
    unannounced: set[str] = field(default_factory=set)
    delay: dict[str, float] = field(default_factory=dict)

    def add(self, path: str, data: bytes, *, truncate: bool = False, trickle: float | None = None,
            length: bool = True, delay: float | None = None) -> str:
        """Serve ``data`` at ``path``: cut in half (``truncate``), one byte every ``trickle`` seconds,
        without a Content-Length header (``length=False``), or after ``delay`` seconds."""
        self.files[path] = data
        if delay is not None:
            self.delay[path] = delay
        if truncate:
            self.truncated.add(path)
        if trickle is not None:
            self.trickle[path] = trickle
        if not length:
            self.unannounced.add(path)
        return self.base + path


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    state = FileServer()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            state.requests[self.path] += 1
            data = state.files.get(self.path)
            if data is None:
                self.send_error(404)
                return
            time.sleep(state.delay.get(self.path, 0.0))
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            if self.path not in state.unannounced:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.path in state.trickle:
                try:
                    for i in range(len(data)):
                        self.wfile.write(data[i:i + 1])
                        self.wfile.flush()
                        time.sleep(state.trickle[self.path])
                except OSError:  # the client gave up
                    self.close_connection = True
            elif self.path in state.unannounced:
                self.wfile.write(data)
                self.close_connection = True  # the end of the body is the end of the connection
            elif self.path in state.truncated:
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
            else:
                self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def dsh() -> SimpleNamespace:
    """The helpers above, as a fixture (test modules must not ``import conftest``: names clash)."""
    return SimpleNamespace(
        BUNDLED=BUNDLED,
        cached_files=cached_files,
        md5=md5,
        write_registry=write_registry,
        url_entry=url_entry,
        raw_ml100k_files=raw_ml100k_files,
        make_zip=make_zip,
        ml100k_zip=ml100k_zip,
    )
