"""download() and safe_extract() against a real HTTP server on 127.0.0.1 and archives built here."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from m6rec_bench.datasets.fetch import download, file_checksum, safe_extract
from m6rec_bench.errors import ChecksumError, DataError, UsageError

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


# ---------------------------------------------------------------- limits: time, size, expansion; concurrent first fetches


def test_download_has_an_overall_deadline(tmp_path: Path, file_server, dsh, monkeypatch) -> None:
    """A server sending a byte every 0.05 s never trips the socket timeout; the deadline stops it."""
    url = file_server.add("/slow.bin", PAYLOAD[:2000], trickle=0.05)
    monkeypatch.setenv("M6BENCH_DOWNLOAD_DEADLINE", "0.5")
    start = time.monotonic()
    with pytest.raises(DataError, match=rf"download of {url} took longer than 0\.5 s \(got \d+ bytes of 2,000 bytes\) — "
                                        r"stopped, nothing was cached; .*M6BENCH_DOWNLOAD_DEADLINE"):
        download(url, tmp_path / "d.bin", dsh.md5(PAYLOAD[:2000]), progress=False)
    assert time.monotonic() - start < 5
    assert list(tmp_path.iterdir()) == []


def test_download_size_cap_with_and_without_content_length(tmp_path: Path, file_server, dsh) -> None:
    quiet = file_server.add("/quiet.bin", PAYLOAD, length=False)
    loud = file_server.add("/loud.bin", PAYLOAD)
    with pytest.raises(DataError, match=rf"download of {quiet} sent more than 100,000 bytes — stopped, nothing was cached"):
        download(quiet, tmp_path / "q.bin", dsh.md5(PAYLOAD), progress=False, max_bytes=100_000)
    with pytest.raises(DataError, match=rf"download of {loud} is 160,000 bytes, over the 100,000 bytes limit"):
        download(loud, tmp_path / "l.bin", dsh.md5(PAYLOAD), progress=False, max_bytes=100_000)
    assert list(tmp_path.iterdir()) == []
    # under the cap, a body without Content-Length is fine
    download(quiet, tmp_path / "q.bin", dsh.md5(PAYLOAD), progress=False)
    assert (tmp_path / "q.bin").read_bytes() == PAYLOAD


def test_zip_bomb_is_refused_before_extraction(tmp_path: Path, dsh) -> None:
    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(dsh.make_zip({"ml-100k/u.data": b"\0" * (8 << 20)}))  # ~8 KB expanding to 8 MB
    with pytest.raises(DataError, match=r"archive https://example\.org/bomb\.zip \([\d,]+ bytes\) declares 8\.0 MB of files, "
                                        r"over the limit of 1\.0 MB .* a zip bomb"):
        safe_extract(bomb, tmp_path / "out", label="https://example.org/bomb.zip")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.zip"]


def test_extraction_counts_the_bytes_written(tmp_path: Path, dsh, monkeypatch) -> None:
    """A member may declare fewer bytes than it holds: the bytes really written are capped too."""
    from m6rec_bench.datasets import fetch

    monkeypatch.setattr(fetch._Budget, "check_declared", lambda self, declared: None)  # as if the sizes lied
    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(dsh.make_zip({"a.txt": b"\0" * (4 << 20)}))
    with pytest.raises(DataError, match=r"expanded to more than 1\.0 MB while extracting"):
        safe_extract(bomb, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.zip"]


def test_tar_bomb_is_refused(tmp_path: Path, monkeypatch) -> None:
    data = b"x" * 300_000
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("ml/u.data")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    (tmp_path / "a.tgz").write_bytes(buf.getvalue())
    monkeypatch.setenv("M6BENCH_EXTRACT_MAX_BYTES", "100000")
    with pytest.raises(DataError, match=r"declares 300,000 bytes of files, over the limit of 100,000 bytes"):
        safe_extract(tmp_path / "a.tgz", tmp_path / "out")
    monkeypatch.setenv("M6BENCH_EXTRACT_MAX_BYTES", "lots")
    with pytest.raises(UsageError, match=r"M6BENCH_EXTRACT_MAX_BYTES='lots' must be a positive number"):
        safe_extract(tmp_path / "a.tgz", tmp_path / "out")


RACE = """
import sys
from m6rec_bench.datasets import resolve
ds = resolve("race-ml", progress=False)
print(ds.checksum, sorted(p.name for p in ds.folder.iterdir()))
"""


def test_concurrent_first_fetches_all_succeed(tmp_path: Path, file_server, dsh, monkeypatch, isolated_home) -> None:
    """Eight processes fetching one dataset for the first time: one downloads and converts, the others wait
    and find it; none fails (before: a process replaced the folder while another read prepared.json)."""
    data = dsh.ml100k_zip(300)
    url = file_server.add("/race.zip", data, delay=2.0)  # every process starts before the first download ends
    registry = dsh.write_registry(tmp_path / "datasets.yaml", [dsh.url_entry("race-ml", url, dsh.md5(data))], monkeypatch)
    env = {**os.environ, "M6BENCH_HOME": str(isolated_home), "M6BENCH_DATASETS_YAML": str(registry),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-c", RACE], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(8)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    failed = [err.strip().splitlines()[-1:] for code, _, err in results if code != 0]
    assert not failed, failed
    assert len({out for _, out, _ in results}) == 1  # every process saw the same complete dataset
    assert file_server.requests["/race.zip"] == 1  # downloaded once


def test_conversion_errors_name_the_url_not_a_deleted_temp_folder(tmp_path: Path, file_server, dsh, monkeypatch) -> None:
    from m6rec_bench.datasets import resolve

    files = dsh.raw_ml100k_files(50)
    files["u.data"] += b"1\t2\tx\t4\n"
    data = dsh.make_zip({f"ml-100k/{k}": v for k, v in files.items()})
    url = file_server.add("/bad.zip", data)
    dsh.write_registry(tmp_path / "datasets.yaml", [dsh.url_entry("bad-ml", url, dsh.md5(data))], monkeypatch)
    with pytest.raises(DataError) as exc:
        resolve("bad-ml", progress=False)
    assert str(exc.value).startswith(f"bad-ml (converted from {url})/bad-ml.inter line 52: rating is 'x', not a number")
    assert ".build-" not in str(exc.value) and ".work-" not in str(exc.value)
