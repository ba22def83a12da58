"""Downloads that are verified before they are kept, and archive extraction that cannot escape.

:func:`download` streams into a temporary sibling of the destination while hashing, and moves it
into place only when the byte count and the checksum match. :func:`safe_extract` checks every
member of a zip or tar archive (no absolute paths, no ``..``, no links) before extracting anything,
extracts into a temporary directory and moves that into place.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath

from m6rec_bench.errors import ChecksumError, DataError, UsageError
from m6rec_bench.io import atomic_path

CHUNK = 1 << 16
USER_AGENT = "m6rec-bench (python-urllib)"


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
        console=Console(stderr=True),
        transient=False,
    )


def download(
    url: str,
    dest: str | os.PathLike[str],
    checksum: str,
    progress: bool = True,
    *,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest``, verified against ``checksum``; return ``dest``.

    Nothing is left at ``dest`` (or beside it) unless the whole file arrived and its checksum
    matches. Raises DataError for network failures and short reads, ChecksumError on mismatch.
    """
    algo, expected = parse_checksum(checksum)
    dest = Path(dest)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with atomic_path(dest) as tmp:
        h = hashlib.new(algo)
        received = 0
        total: int | None = None
        bar = _progress(progress, dest.name)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp, open(tmp, "wb") as fh:
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                if bar is not None:
                    bar.start()
                    task = bar.add_task(f"downloading {dest.name}", total=total)
                while chunk := resp.read(CHUNK):
                    fh.write(chunk)
                    h.update(chunk)
                    received += len(chunk)
                    if bar is not None:
                        bar.update(task, completed=received)
                fh.flush()
                os.fsync(fh.fileno())
        except http.client.IncompleteRead as exc:
            raise DataError(
                f"download of {url} was cut short: got {received + len(exc.partial)} of {total} bytes — "
                "nothing was cached; retry"
            ) from None
        except urllib.error.HTTPError as exc:
            raise DataError(f"download of {url} failed: HTTP {exc.code} {exc.reason} — check the URL in datasets.yaml") from None
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


def _check_zip(zf: zipfile.ZipFile, archive: Path) -> None:
    for info in zf.infolist():
        mode = info.external_attr >> 16
        if _unsafe(info.filename):
            raise DataError(
                f"archive {archive} has an unsafe member '{info.filename}' (absolute path or '..') — "
                "nothing was extracted; the file is corrupt or malicious"
            )
        if stat.S_ISLNK(mode):
            raise DataError(f"archive {archive} has a symbolic link member '{info.filename}' — nothing was extracted")


def _check_tar(tf: tarfile.TarFile, archive: Path) -> None:
    for member in tf.getmembers():
        if _unsafe(member.name):
            raise DataError(
                f"archive {archive} has an unsafe member '{member.name}' (absolute path or '..') — "
                "nothing was extracted; the file is corrupt or malicious"
            )
        if not (member.isfile() or member.isdir()):
            raise DataError(f"archive {archive} has a link or special member '{member.name}' — nothing was extracted")


def safe_extract(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Extract a zip or tar ``archive`` into the directory ``dest`` (replacing it); return ``dest``.

    Every member is checked first; one unsafe member means nothing is extracted (DataError).
    """
    archive, dest = Path(archive), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extract-", dir=dest.parent))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                _check_zip(zf, archive)
                zf.extractall(tmp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                _check_tar(tf, archive)
                tf.extractall(tmp, filter="data")
        else:
            raise DataError(f"{archive} is neither a zip nor a tar archive — delete it and fetch again")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        raise DataError(f"{archive} is a damaged archive ({exc}) — delete it and fetch again") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest
