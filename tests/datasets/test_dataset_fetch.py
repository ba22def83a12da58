"""download() and safe_extract() against a real HTTP server on 127.0.0.1 and archives built here."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from m6rec_bench.datasets.fetch import download, file_checksum, safe_extract
from m6rec_bench.errors import ChecksumError, DataError

PAYLOAD = b"0123456789abcdef" * 10_000


def test_download_verifies_and_moves_into_place(tmp_path: Path, file_server, dsh) -> None:
    url = file_server.add("/data.bin", PAYLOAD)
    dest = tmp_path / "raw" / "data.bin"
    assert download(url, dest, dsh.md5(PAYLOAD), progress=True) == dest
    assert dest.read_bytes() == PAYLOAD
    assert sorted(p.name for p in dest.parent.iterdir()) == ["data.bin"]
    assert file_checksum(dest, "md5") == dsh.md5(PAYLOAD)


def test_download_sha256(tmp_path: Path, file_server) -> None:
    url = file_server.add("/data.bin", PAYLOAD)
    download(url, tmp_path / "d.bin", file_checksum_bytes(PAYLOAD), progress=False)
    assert (tmp_path / "d.bin").read_bytes() == PAYLOAD


def file_checksum_bytes(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_checksum_mismatch_leaves_nothing(tmp_path: Path, file_server) -> None:
    url = file_server.add("/data.bin", PAYLOAD)
    wrong = "md5:" + "0" * 32
    with pytest.raises(ChecksumError) as exc:
        download(url, tmp_path / "d.bin", wrong, progress=False)
    msg = str(exc.value)
    assert f"checksum mismatch for {url}: expected {wrong}, got md5:" in msg
    assert "the file was not cached" in msg
    assert list(tmp_path.iterdir()) == []


def test_truncated_download_is_an_error(tmp_path: Path, file_server, dsh) -> None:
    url = file_server.add("/cut.bin", PAYLOAD, truncate=True)
    with pytest.raises(DataError, match=r"cut short: got \d+ of 160000 bytes") as exc:
        download(url, tmp_path / "d.bin", dsh.md5(PAYLOAD), progress=False)
    assert not isinstance(exc.value, ChecksumError)
    assert list(tmp_path.iterdir()) == []


def test_http_error_is_a_data_error(tmp_path: Path, file_server, dsh) -> None:
    with pytest.raises(DataError, match="HTTP 404"):
        download(file_server.base + "/missing.zip", tmp_path / "d.zip", dsh.md5(b""), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_host_is_a_data_error(tmp_path: Path, dsh) -> None:
    with pytest.raises(DataError, match="failed"):
        download("http://127.0.0.1:9/x.zip", tmp_path / "d.zip", dsh.md5(b""), progress=False, timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_safe_extract_zip(tmp_path: Path, dsh) -> None:
    archive = tmp_path / "a.zip"
    archive.write_bytes(dsh.make_zip({"top/a.txt": b"a", "top/sub/b.txt": b"b"}))
    dest = safe_extract(archive, tmp_path / "out")
    assert (dest / "top" / "a.txt").read_bytes() == b"a"
    assert (dest / "top" / "sub" / "b.txt").read_bytes() == b"b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip", "out"]


@pytest.mark.parametrize("evil", ["../evil.txt", "top/../../evil.txt", "/tmp/evil.txt", "..\\evil.txt"])
def test_safe_extract_rejects_escaping_members(tmp_path: Path, dsh, evil: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    archive = work / "a.zip"
    archive.write_bytes(dsh.make_zip({"top/ok.txt": b"ok", evil: b"evil"}))
    with pytest.raises(DataError) as exc:
        safe_extract(archive, work / "out")
    assert f"unsafe member '{evil}'" in str(exc.value)
    assert sorted(p.name for p in work.iterdir()) == ["a.zip"]  # nothing extracted, no temp dir
    assert not (tmp_path / "evil.txt").exists()


def _tar(tmp_path: Path, add) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / "a.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        add(tf)
    return path


def test_safe_extract_tar(tmp_path: Path) -> None:
    def add(tf: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("top/a.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"a"))

    dest = safe_extract(_tar(tmp_path, add), tmp_path / "out")
    assert (dest / "top" / "a.txt").read_bytes() == b"a"


def test_safe_extract_rejects_tar_links(tmp_path: Path) -> None:
    def add(tf: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("top/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)

    with pytest.raises(DataError, match="link or special member 'top/link'"):
        safe_extract(_tar(tmp_path, add), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_safe_extract_rejects_zip_symlinks(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("top/link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(DataError, match="symbolic link"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_safe_extract_rejects_non_archives(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not an archive")
    with pytest.raises(DataError, match="neither a zip nor a tar"):
        safe_extract(junk, tmp_path / "out")
