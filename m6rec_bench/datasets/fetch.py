"""Downloads that are verified before they are kept, and archive extraction that cannot escape.

:func:`download` streams into a temporary sibling of the destination while hashing, and moves it
into place only when the byte count and the checksum match. :func:`safe_extract` checks every
member of a zip or tar archive (no absolute paths, no ``..``, no links) before extracting anything,
extracts into a temporary directory and moves that into place.

Both have limits, because the URL comes from a ``datasets.yaml`` anyone can hand us: a download
has an overall deadline (a server that trickles a byte every 20 s never trips the per-read socket
timeout) and a size cap (a server that sends no ``Content-Length`` could fill the disk), and an
archive may not expand beyond a size cap nor beyond :data:`MAX_RATIO` times its own size (a
417 KB zip expanding to 400 MB is a zip bomb, not a dataset). Each limit has an environment
variable, read when the function runs.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from m6rec_bench.envvars import env_number
from m6rec_bench.errors import ChecksumError, DataError, UsageError
from m6rec_bench.io import atomic_path

CHUNK = 1 << 16
USER_AGENT = "m6rec-bench (python-urllib)"

#: Overall time a download may take, in seconds (``M6BENCH_DOWNLOAD_DEADLINE``).
DEFAULT_DEADLINE_S = 30 * 60.0
#: Largest download, in bytes (``M6BENCH_DOWNLOAD_MAX_BYTES``); public recommendation datasets are < 5 GB.
DEFAULT_MAX_DOWNLOAD = 16 << 30
#: Largest total extracted size of one archive, in bytes (``M6BENCH_EXTRACT_MAX_BYTES``).
DEFAULT_MAX_EXTRACT = 64 << 30
#: Largest ratio of extracted bytes to archive bytes (``M6BENCH_EXTRACT_MAX_RATIO``): rating tables
#: compress 3-10x, a deflate bomb ~1000x.
MAX_RATIO = 100.0


def _size(n: float) -> str:
    return f"{n / (1 << 20):,.1f} MB" if n >= 1 << 20 else f"{int(n):,} bytes"


def parse_checksum(checksum: str) -> tuple[str, str]:
    """Split ``"md5:<hex>"`` / ``"sha256:<hex>"`` into ``(algorithm, hex)``."""
    algo, sep, digest = checksum.strip().lower().partition(":")
    if not sep or algo not in ("md5", "sha256") or not digest:
        raise UsageError(f"checksum {checksum!r} must look like 'md5:<hex>' or 'sha256:<hex>'")
    return algo, digest


def file_checksum(path: str | os.PathLike[str], algo: str = "sha256") -> str:
    """``"<algo>:<hex>"`` of a file's bytes."""
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return f"{algo}:{h.hexdigest()}"


def _progress(enabled: bool, label: str):  # type: ignore[no-untyped-def]
    """A rich download progress bar on stderr, or ``None`` when disabled."""
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True, emoji=False),
        transient=False,
    )


def download(
    url: str,
    dest: str | os.PathLike[str],
    checksum: str,
    progress: bool = True,
    *,
    timeout: float = 60.0,
    deadline: float | None = None,
    max_bytes: int | None = None,
) -> Path:
    """Download ``url`` to ``dest``, verified against ``checksum``; return ``dest``.

    Nothing is left at ``dest`` (or beside it) unless the whole file arrived and its checksum
    matches. ``timeout`` bounds each network wait, ``deadline`` (seconds, default
    ``$M6BENCH_DOWNLOAD_DEADLINE`` or 30 min) the whole download, ``max_bytes`` (default
    ``$M6BENCH_DOWNLOAD_MAX_BYTES`` or 16 GB) its size, announced or not. Raises DataError for
    network failures, short reads and exceeded limits, ChecksumError on mismatch.
    """
    algo, expected = parse_checksum(checksum)
    dest = Path(dest)
    deadline = deadline if deadline is not None else env_number("M6BENCH_DOWNLOAD_DEADLINE", DEFAULT_DEADLINE_S)
    max_bytes = int(max_bytes if max_bytes is not None else env_number("M6BENCH_DOWNLOAD_MAX_BYTES", DEFAULT_MAX_DOWNLOAD))
    start = time.monotonic()
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with atomic_path(dest) as tmp:
        h = hashlib.new(algo)
        received = 0
        total: int | None = None
        bar = _progress(progress, dest.name)
        try:
            with urllib.request.urlopen(request, timeout=min(timeout, deadline)) as resp, open(tmp, "wb") as fh:
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                if total is not None and total > max_bytes:
                    raise DataError(f"download of {url} is {_size(total)}, over the {_size(max_bytes)} limit — nothing "
                                    "was downloaded; raise M6BENCH_DOWNLOAD_MAX_BYTES if the file is right")
                if bar is not None:
                    from rich.markup import escape

                    bar.start()
                    task = bar.add_task(escape(f"downloading {dest.name}"), total=total)
                # read1: whatever has arrived (read(n) would wait for all n bytes of a trickling server)
                while chunk := resp.read1(CHUNK):
                    fh.write(chunk)
                    h.update(chunk)
                    received += len(chunk)
                    if bar is not None:
                        bar.update(task, completed=received)
                    if received > max_bytes:
                        raise DataError(f"download of {url} sent more than {_size(max_bytes)} — stopped, nothing was "
                                        "cached; raise M6BENCH_DOWNLOAD_MAX_BYTES if the file is right")
                    if time.monotonic() - start > deadline:
                        raise DataError(f"download of {url} took longer than {deadline:g} s (got {_size(received)}"
                                        f"{f' of {_size(total)}' if total else ''}) — stopped, nothing was cached; "
                                        "retry, or raise M6BENCH_DOWNLOAD_DEADLINE on a slow connection")
                fh.flush()
                os.fsync(fh.fileno())
        except http.client.IncompleteRead as exc:
            raise DataError(
                f"download of {url} was cut short: got {received + len(exc.partial)} of {total} bytes — "
                "nothing was cached; retry"
            ) from None
        except urllib.error.HTTPError as exc:
            raise DataError(f"download of {url} failed: HTTP {exc.code} {exc.reason} — check the URL in datasets.yaml") from None
        except TimeoutError:
            raise DataError(f"download of {url} stalled: nothing arrived for {min(timeout, deadline):g} s — "
                            "nothing was cached; retry") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DataError(f"download of {url} failed: {reason} — check your connection and retry") from None
        finally:
            if bar is not None:
                bar.stop()
        if total is not None and received != total:
            raise DataError(
                f"download of {url} was cut short: got {received} of {total} bytes — nothing was cached; retry"
            )
        got = h.hexdigest()
        if got != expected:
            raise ChecksumError(
                f"checksum mismatch for {url}: expected {algo}:{expected}, got {algo}:{got} — "
                "the file was not cached; retry, or report a changed upstream file"
            )
    return dest


def _unsafe(name: str) -> bool:
    """True for absolute paths, drive letters and any ``..`` component (either slash style)."""
    if not name or name.startswith(("/", "\\")) or PureWindowsPath(name).drive:
        return True
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return ".." in parts


def _check_zip(zf: zipfile.ZipFile, archive: str) -> None:
    for info in zf.infolist():
        mode = info.external_attr >> 16
        if _unsafe(info.filename):
            raise DataError(
                f"archive {archive} has an unsafe member '{info.filename}' (absolute path or '..') — "
                "nothing was extracted; the file is corrupt or malicious"
            )
        if stat.S_ISLNK(mode):
            raise DataError(f"archive {archive} has a symbolic link member '{info.filename}' — nothing was extracted")


def _check_tar(tf: tarfile.TarFile, archive: str) -> None:
    for member in tf.getmembers():
        if _unsafe(member.name):
            raise DataError(
                f"archive {archive} has an unsafe member '{member.name}' (absolute path or '..') — "
                "nothing was extracted; the file is corrupt or malicious"
            )
        if not (member.isfile() or member.isdir()):
            raise DataError(f"archive {archive} has a link or special member '{member.name}' — nothing was extracted")


@dataclass
class _Budget:
    """How many bytes an archive may still expand to; :meth:`spend` refuses going over."""

    archive: str
    archive_bytes: int
    limit: int
    written: int = 0

    def check_declared(self, declared: int) -> None:
        if declared > self.limit:
            raise self._error(f"declares {_size(declared)} of files")

    def spend(self, n: int) -> None:
        self.written += n
        if self.written > self.limit:
            raise self._error(f"expanded to more than {_size(self.limit)} while extracting")

    def _error(self, what: str) -> DataError:
        return DataError(
            f"archive {self.archive} ({_size(self.archive_bytes)}) {what}, over the limit of {_size(self.limit)} "
            f"(at most {env_number('M6BENCH_EXTRACT_MAX_RATIO', MAX_RATIO):g}x the archive, "
            "M6BENCH_EXTRACT_MAX_RATIO / M6BENCH_EXTRACT_MAX_BYTES) — nothing was extracted; the file is corrupt or "
            "a zip bomb"
        )


def _budget(archive: Path, label: str) -> _Budget:
    size = archive.stat().st_size
    ratio = env_number("M6BENCH_EXTRACT_MAX_RATIO", MAX_RATIO)
    cap = env_number("M6BENCH_EXTRACT_MAX_BYTES", DEFAULT_MAX_EXTRACT)
    return _Budget(label, size, int(min(cap, max(ratio * size, 1 << 20))))


def _extract_zip(zf: zipfile.ZipFile, out: Path, budget: _Budget) -> None:
    """Extract member by member, counting the bytes really written (a member may lie about its size)."""
    budget.check_declared(sum(info.file_size for info in zf.infolist()))
    for info in zf.infolist():
        target = out.joinpath(*PurePosixPath(info.filename.replace("\\", "/")).parts)
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, open(target, "wb") as dst:
            while chunk := src.read(CHUNK):
                budget.spend(len(chunk))
                dst.write(chunk)


def safe_extract(archive: str | os.PathLike[str], dest: str | os.PathLike[str], *, label: str | None = None) -> Path:
    """Extract a zip or tar ``archive`` into the directory ``dest`` (replacing it); return ``dest``.

    Every member is checked first; one unsafe member, or members declaring more bytes than the
    budget (:data:`MAX_RATIO` × the archive, at most ``$M6BENCH_EXTRACT_MAX_BYTES``), means
    nothing is extracted (DataError); bytes written beyond the budget stop the extraction and
    remove what was written. Errors call the archive ``label`` (e.g. the URL it came from; default
    its path).
    """
    archive, dest = Path(archive), Path(dest)
    name = label or str(archive)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extract-", dir=dest.parent))
    try:
        budget = _budget(archive, name)
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                _check_zip(zf, name)
                _extract_zip(zf, tmp, budget)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                _check_tar(tf, name)
                budget.check_declared(sum(m.size for m in tf.getmembers() if m.isfile()))
                tf.extractall(tmp, filter="data")
        else:
            raise DataError(f"{name} is neither a zip nor a tar archive — delete it and fetch again")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, NotImplementedError) as exc:
        raise DataError(f"{name} is a damaged archive ({exc}) — delete it and fetch again") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest
