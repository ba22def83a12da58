"""``m6bench serve``: an HTTP service (FastAPI + uvicorn) answering from one trained artifact."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Annotated

import typer

from m6rec_bench.cli.common import console, friendly_errors
from m6rec_bench.errors import UsageError


def dataset_name(dataset: str) -> str:
    """The name records are filed under (``movielens`` → ``ml-100k``; a folder → its prepared name)."""
    from m6rec_bench import datasets
    from m6rec_bench.datasets.prepare import looks_like_path

    if not looks_like_path(dataset):
        try:
            return datasets.get_spec(dataset).name
        except UsageError:
            if not Path(dataset).is_dir():
                raise
    return datasets.resolve(dataset, progress=False).name


def record_for(model: str, dataset: str, protocol: str, seed: int | None, runs_dir: Path) -> Path:
    """A record path from ``--model``: a record JSON, an artifact folder, or a model name in ``runs_dir``."""
    from m6rec_bench import artifacts

    path = Path(model)
    if path.suffix == ".json" or path.name.endswith(artifacts.SUFFIX) or path.exists():
        if not path.exists():
            raise UsageError(f"{path} does not exist — give a record (runs/<dataset>/<protocol>/<model>/seed*.json), "
                             "its .artifact folder, or a model name")
        return path
    return artifacts.find_record(runs_dir, dataset_name(dataset), model, protocol=protocol, seed=seed)


def check_port(host: str, port: int) -> None:
    """UsageError now, rather than a uvicorn log line after loading, when ``host:port`` cannot be bound."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(f"--host {host}: cannot be resolved ({exc.strerror})") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as exc:
            why = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
            raise UsageError(f"port {port} on {host} {why} — pick another with --port") from None


@friendly_errors
def serve(
    model: Annotated[str, typer.Option("--model", "-m", help="A record JSON, its .artifact folder, or a model name (e.g. M6-Fusion).")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="With a model name: its dataset (default movielens).")] = "movielens",
    protocol: Annotated[str, typer.Option("--protocol", "-p", help="With a model name: its protocol (default: default).")] = "default",
    seed: Annotated[int | None, typer.Option("--seed", help="With a model name: its seed (default: the newest cell).")] = None,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", metavar="DIR", help="Where m6bench run kept records (default ./runs).")] = Path("runs"),
    host: Annotated[str, typer.Option("--host", help="Address to listen on (default 127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port (default 8000).")] = 8000,
    threads: Annotated[int, typer.Option("--threads", min=1, help="torch threads (default 1).")] = 1,
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log", help="Log one line per request (default off).")] = False,
) -> None:
    """Serve a trained model over HTTP: top-k for known users, fold-in for anonymous item lists, new interactions.

    \b
    Endpoints:
      GET  /users/{user_id}/recommendations?k=10
      POST /recommendations {"items": [...], "k": 10}
      POST /users/{user_id}/interactions {"items": [...]}
      GET  /health;  OpenAPI docs at /docs

    Posted interactions live in memory until the service stops. --model takes a record
    (runs/<dataset>/<protocol>/<model>/seed*.json), its .artifact folder, or a model name whose
    newest trained cell is looked up in --runs-dir. --host 0.0.0.0 listens on every interface.
    --threads: a request is one matrix-vector product, so more threads only add overhead at
    MovieLens scale; an access log line costs about as much as scoring a request.
    """
    import torch

    from m6rec_bench import artifacts

    path = record_for(model, dataset, protocol, seed, runs_dir)
    check_port(host, port)
    torch.set_num_threads(threads)
    console.print(f"loading {path} …", markup=False, highlight=False)
    loaded = artifacts.load(path)

    import uvicorn

    from m6rec_bench.serve.app import create_app

    app = create_app(loaded)
    rec = app.state.recommender
    fold = "yes" if rec.scorer.can_fold_in else "no (known users only)"
    console.print(f"serving {rec.label} seed {loaded.record.seed} ({rec.n_users} users, {rec.n_items} items; fold-in: "
                  f"{fold}) on http://{host}:{port} — API docs at http://{host}:{port}/docs", markup=False, highlight=False)
    uvicorn.run(app, host=host, port=port, access_log=access_log, log_level="info")
