"""What every CLI file shares: consoles, the error boundary, small option parsers."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from m6rec_bench.errors import M6BenchError, Terminated, UsageError

# emoji=False: rich would turn user text such as "--rerank mmr:abc: …" into an emoji (":abc:");
# markup in user text is escaped (or printed with markup=False) where it is printed
console = Console(emoji=False)
err_console = Console(stderr=True, emoji=False)

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(fn: F) -> F:
    """Turn an :class:`M6BenchError` into one line on stderr and its exit code (2 usage, 1 failure).

    A file-system error on a named file (permission denied, not a directory, disk full) becomes one
    line and exit code 1; Ctrl-C one line and exit code 130 (the shell's convention for SIGINT), and
    SIGTERM while cells run (:class:`Terminated`) one line and exit code 143.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except M6BenchError as exc:
            # escaped: a hint such as pip install "m6rec-bench[dask]" is text, not rich markup
            err_console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:
            if exc.filename is None:  # not about a file the user named: a bug, keep the traceback
                raise
            err_console.print(f"[bold red]error:[/bold red] {escape(f'{exc.filename}: {exc.strerror or exc}')}", highlight=False,
                              soft_wrap=True)
            raise typer.Exit(1) from None
        except Terminated:  # SIGTERM (a KeyboardInterrupt subclass: before the Ctrl-C branch)
            err_console.print("[bold red]terminated[/bold red] — workers stopped, finished results are kept; run the "
                              "same command again to resume", highlight=False, soft_wrap=True)
            raise typer.Exit(143) from None
        except KeyboardInterrupt as exc:
            # Ctrl-C: every finished result is already on disk (written atomically); say so, no traceback.
            # A command adds what else helps (where its partial results are) as a note on the exception.
            err_console.print("[bold red]interrupted[/bold red] — finished results are kept; run the same command "
                              "again to resume", highlight=False, soft_wrap=True)
            for note in getattr(exc, "__notes__", ()):
                err_console.print(escape(note), highlight=False, soft_wrap=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


#: The leaderboard root every command writes or reads, ``--out`` on all of them.
LEADERBOARDS = Path("leaderboards")

#: ``--out``: the leaderboard root of a command that reads boards (``leaderboard show|prune``, ``publish``).
OutOption = Annotated[Path | None, typer.Option("--out", "-o", metavar="DIR", show_default=False,
                                                help="Leaderboard root (default ./leaderboards).")]
#: ``--dir``: the old name of ``--out`` on those commands; hidden from --help, still accepted.
LegacyDirOption = Annotated[Path | None, typer.Option("--dir", hidden=True, help="Deprecated name of --out.")]


def leaderboard_root(out: Path | None, legacy_dir: Path | None) -> Path:
    """The root given by ``--out`` or its deprecated alias ``--dir`` (default ./leaderboards)."""
    if out is not None and legacy_dir is not None and out != legacy_dir:
        raise UsageError(f"--dir is the old name of --out; give one of them (got --out {out} and --dir {legacy_dir})")
    return out or legacy_dir or LEADERBOARDS


def warn_skipped(path: Any, reason: str) -> None:
    """One warning line for a file that was skipped (a record that failed validation, say): never silent."""
    err_console.print(f"[yellow]warning:[/yellow] skipped {escape(reason)}", highlight=False, soft_wrap=True)


def split_csv(value: str | None) -> list[str] | None:
    """``"BPR, LightGCN"`` → ``["BPR", "LightGCN"]``; None stays None."""
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise UsageError("expected a comma-separated list, got an empty value")
    return items


#: A larger count is almost surely a seed typed as a count (``--seeds 2022``).
MAX_SEED_COUNT = 100


def parse_seeds(value: str | None) -> int | list[int] | None:
    """``"3"`` → 3 seeds from 2020; ``"2020,2025"`` → those seeds."""
    if value is None:
        return None
    from m6rec_bench.engine.suite import check_seed

    try:
        if "," in value:
            seeds = [int(v) for v in value.split(",") if v.strip()]
            for seed in seeds:
                try:
                    check_seed(seed)
                except ValueError as exc:
                    raise UsageError(f"--seeds {value}: {exc}") from None
            return seeds
        n = int(value)
    except ValueError:
        raise UsageError(f"--seeds takes a count (3) or a list (2020,2021), got '{value}'") from None
    if n < 1:
        raise UsageError(f"--seeds must be at least 1, got {n}")
    if n > MAX_SEED_COUNT:
        raise UsageError(f"--seeds {n} would run {n} seeds; for the single seed {n} write --seeds {n},")
    return n
