"""Converters on tiny raw files: MovieLens 100K, 1M/10M (``::``) and the CSV releases."""

from __future__ import annotations

from pathlib import Path

import pytest

from m6rec_bench.datasets.atomic import validate_folder
from m6rec_bench.datasets.convert import get_converter, ml1m, ml100k, mlcsv
from m6rec_bench.datasets.convert.common import split_title
from m6rec_bench.errors import DataError, UsageError

INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float"
ITEM = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"
USER = "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token"


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _write(folder: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return folder


def test_every_converter_declares_a_version() -> None:
    for name in ("ml100k", "ml1m", "mlcsv"):
        module = get_converter(name)
        assert isinstance(module.CONVERTER_VERSION, int) and callable(module.convert)
    with pytest.raises(UsageError, match="unknown converter 'ml1n' — did you mean 'ml1m'"):
        get_converter("ml1n")


@pytest.mark.parametrize(
    ("raw", "title", "year"),
    [
        ("Toy Story (1995)", "Toy Story", "1995"),
        ("Usual Suspects, The (1995)", "Usual Suspects, The", "1995"),
        ("Seven (a.k.a. Se7en) (1995) ", "Seven (a.k.a. Se7en)", "1995"),
        ("Fawlty Towers (1975–1979)", "Fawlty Towers", "1975"),
        ("Babylon 5", "Babylon 5", ""),
        ('"Great" Day\tout (2001)', "'Great' Day out", "2001"),
    ],
)
def test_split_title(raw: str, title: str, year: str) -> None:
    assert split_title(raw) == (title, year)


def test_ml100k_matches_the_bundled_atomic_files(tmp_path: Path, dsh) -> None:
    raw = _write(tmp_path / "raw", {f"ml-100k/{k}": v for k, v in dsh.raw_ml100k_files(400).items()})
    out = tmp_path / "out" / "t"
    ml100k.convert(raw, out, "t")
    assert validate_folder(out, "t")["item"][1] == ("movie_title", "token_seq")
    bundled_inter = _lines(dsh.BUNDLED / "ml-100k.inter")
    assert _lines(out / "t.inter") == bundled_inter[:401]
    converted_items = _lines(out / "t.item")
    assert converted_items[0] == ITEM
    bundled_items = {line.split("\t")[0]: line for line in _lines(dsh.BUNDLED / "ml-100k.item")[1:]}
    assert len(converted_items) > 100
    for line in converted_items[1:]:
        assert line == bundled_items[line.split("\t")[0]]
    bundled_users = {line.split("\t")[0]: line for line in _lines(dsh.BUNDLED / "ml-100k.user")[1:]}
    converted_users = _lines(out / "t.user")
    assert converted_users[0] == USER
    assert all(line == bundled_users[line.split("\t")[0]] for line in converted_users[1:])


def test_ml100k_genre_flags_and_missing_dates(tmp_path: Path) -> None:
    flags = ["0"] * 19
    item = "|".join(["7", "Caf\xe9 Movie (1996)", "", "", "http://x", *flags]) + "\n"
    raw = _write(tmp_path / "raw", {"u.data": b"1\t7\t4\t880000000\n", "u.item": item.encode("latin-1")})
    ml100k.convert(raw, tmp_path / "out", "t")
    assert _lines(tmp_path / "out" / "t.item")[1] == "7\tCafé Movie\t1996\tunknown"
    assert not (tmp_path / "out" / "t.user").exists()


def test_ml1m(tmp_path: Path) -> None:
    raw = _write(tmp_path / "raw", {
        "ml-1m/ratings.dat": b"1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n",
        "ml-1m/movies.dat": "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::Am\xe9lie (2001)::Comedy|Romance\n".encode("latin-1"),
        "ml-1m/users.dat": b"1::F::1::10::48067\n2::M::56::16::70072\n",
        "ml-1m/README": b"readme",
    })
    out = tmp_path / "out"
    ml1m.convert(raw, out, "m")
    assert _lines(out / "m.inter") == [INTER, "1\t1193\t5\t978300760", "1\t661\t3\t978302109", "2\t1193\t4\t978298413"]
    assert _lines(out / "m.item") == [
        ITEM,
        "1193\tOne Flew Over the Cuckoo's Nest\t1975\tDrama",
        "661\tAmélie\t2001\tComedy Romance",
    ]
    assert _lines(out / "m.user") == [USER, "1\t1\tF\t10\t48067", "2\t56\tM\t16\t70072"]


def test_ml10m_layout_without_users(tmp_path: Path) -> None:
    raw = _write(tmp_path / "raw", {
        "ml-10M100K/ratings.dat": b"1::122::5::838985046\n1::185::4.5::838983525\n",
        "ml-10M100K/movies.dat": "122::Boomerang (1992)::Comedy|Romance\n185::Net, The (1995)::Action|Crime|Thriller\n".encode(),
        "ml-10M100K/tags.dat": b"15::4973::excellent!::1215184630\n",
    })
    out = tmp_path / "out"
    ml1m.convert(raw, out, "m10")
    assert _lines(out / "m10.inter")[2] == "1\t185\t4.5\t838983525"
    assert _lines(out / "m10.item")[2] == "185\tNet, The\t1995\tAction Crime Thriller"
    assert not (out / "m10.user").exists()


def test_ml1m_damaged_line_names_file_and_line(tmp_path: Path) -> None:
    raw = _write(tmp_path / "raw", {"ratings.dat": b"1::2::3::4\n1::2::3\n", "movies.dat": b"2::X (1990)::Drama\n"})
    with pytest.raises(DataError, match=r"ratings.dat line 2: expected UserID::MovieID::Rating::Timestamp"):
        ml1m.convert(raw, tmp_path / "out", "m")


def test_mlcsv(tmp_path: Path) -> None:
    raw = _write(tmp_path / "raw", {
        "ml-25m/ratings.csv": b"userId,movieId,rating,timestamp\n1,296,5.0,1147880044\n1,306,3.5,1147868817\n",
        "ml-25m/movies.csv": (
            'movieId,title,genres\n'
            '296,Pulp Fiction (1994),Comedy|Crime|Drama|Thriller\n'
            '306,"Three Colors: Red (Trois couleurs: Rouge) (1994)",Drama\n'
            '1000,"American President, The (1995)",Comedy|Drama|Romance\n'
            '2000,"""Great Performances"" Cats (1998)",Musical\n'
            '3000,Les Misérables (2012),(no genres listed)\n'
        ).encode(),
        "ml-25m/tags.csv": b"userId,movieId,tag,timestamp\n",
    })
    out = tmp_path / "out"
    mlcsv.convert(raw, out, "m25")
    assert _lines(out / "m25.inter") == [INTER, "1\t296\t5.0\t1147880044", "1\t306\t3.5\t1147868817"]
    assert _lines(out / "m25.item") == [
        ITEM,
        "296\tPulp Fiction\t1994\tComedy Crime Drama Thriller",
        "306\tThree Colors: Red (Trois couleurs: Rouge)\t1994\tDrama",
        "1000\tAmerican President, The\t1995\tComedy Drama Romance",
        "2000\t'Great Performances' Cats\t1998\tMusical",
        "3000\tLes Misérables\t2012\tunknown",
    ]
    assert not (out / "m25.user").exists()


def test_mlcsv_wrong_header(tmp_path: Path) -> None:
    raw = _write(tmp_path / "raw", {"ratings.csv": b"user,item,rating,ts\n1,2,3,4\n", "movies.csv": b"movieId,title,genres\n"})
    with pytest.raises(DataError, match="ratings.csv: header 'user,item,rating,ts' is not 'userId,movieId,rating,timestamp'"):
        mlcsv.convert(raw, tmp_path / "out", "m")


def test_missing_raw_file_lists_what_is_there(tmp_path: Path) -> None:
    raw = _write(tmp_path / "raw", {"ml-1m/README": b"x", "ml-1m/movies.dat": b""})
    with pytest.raises(DataError, match=r"ratings.dat not found under .* \(found: ml-1m/README, ml-1m/movies.dat\)"):
        ml1m.convert(raw, tmp_path / "out", "m")
    assert not (tmp_path / "out").exists()
