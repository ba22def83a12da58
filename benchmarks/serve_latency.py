"""Latency of ``m6bench serve`` under a bounded load from a client on 127.0.0.1.

Starts ``m6bench serve`` (a subprocess, the command's defaults unless told otherwise) for a trained
M6-Fusion artifact on ml-100k — the one given with ``--model``, else the newest in ``--runs-dir``,
else one trained first with ``m6bench run --dataset movielens --models M6-Fusion --seeds 1
[--epochs E]`` — then sends ``--requests`` requests over ``--concurrency`` keep-alive connections
(one client thread each): a seeded mix of known-user top-k (GET), anonymous-list fold-in (POST
/recommendations, 5–20 random items) and new interactions (POST /users/{id}/interactions, 1–3
items), k = 10. Reports p50 / p90 / p99 / max latency (client side: request sent to body read) and
requests per second for each kind, and checks the target p99 < 20 ms.

    python benchmarks/serve_latency.py --requests 5000 --concurrency 4
    python benchmarks/serve_latency.py --model runs/ml-100k/default/M6-Fusion/seed2020-<id>.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TARGET_P99_MS = 20.0
KINDS = ("user", "list", "interaction")


def find_or_train(runs_dir: Path, epochs: int | None) -> Path:
    from m6rec_bench import artifacts
    from m6rec_bench.errors import UsageError

    try:
        return artifacts.find_record(runs_dir, "ml-100k", "M6-Fusion")
    except UsageError:
        pass
    cmd = ["m6bench", "run", "--dataset", "movielens", "--models", "M6-Fusion", "--seeds", "1", "--runs-dir", str(runs_dir),
           "--out", str(runs_dir / "leaderboards")]
    if epochs:
        cmd += ["--epochs", str(epochs)]
    print("no trained M6-Fusion in", runs_dir, "— training one:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return artifacts.find_record(runs_dir, "ml-100k", "M6-Fusion")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
    resp = conn.getresponse()
    return resp.status, resp.read()


def wait_until_up(port: int, proc: subprocess.Popen, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"m6bench serve exited with {proc.returncode}; see its log")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            status, body = request(conn, "GET", "/health", None)
            conn.close()
            if status == 200:
                return json.loads(body)
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("m6bench serve did not come up")
        time.sleep(0.5)


def plan(n: int, users: list[str], items: list[str], mix: dict[str, float], k: int, seed: int) -> list[tuple[str, str, str, bytes | None]]:
    """``n`` seeded requests ``(kind, method, path, body)``."""
    rng = random.Random(seed)
    kinds = rng.choices(list(mix), weights=list(mix.values()), k=n)
    out = []
    for kind in kinds:
        if kind == "user":
            out.append((kind, "GET", f"/users/{rng.choice(users)}/recommendations?k={k}", None))
        elif kind == "list":
            body = {"items": rng.sample(items, rng.randint(5, 20)), "k": k}
            out.append((kind, "POST", "/recommendations", json.dumps(body).encode()))
        else:
            body = {"items": rng.sample(items, rng.randint(1, 3))}
            out.append((kind, "POST", f"/users/{rng.choice(users)}/interactions", json.dumps(body).encode()))
    return out


def load(port: int, requests: list[tuple[str, str, str, bytes | None]], concurrency: int) -> tuple[dict[str, list[float]], float, list[str]]:
    """Send ``requests`` over ``concurrency`` keep-alive connections; latencies (s) per kind, wall time, errors."""
    lat: dict[str, list[float]] = {k: [] for k in KINDS}
    errors: list[str] = []
    lock = threading.Lock()
    nxt = iter(range(len(requests)))

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[tuple[str, float]] = []
        while True:
            with lock:
                i = next(nxt, None)
            if i is None:
                break
            kind, method, path, body = requests[i]
            t = time.perf_counter()
            status, payload = request(conn, method, path, body)
            mine.append((kind, time.perf_counter() - t))
            if status != 200:
                with lock:
                    errors.append(f"{method} {path}: {status} {payload[:200]!r}")
        conn.close()
        with lock:
            for kind, dt in mine:
                lat[kind].append(dt)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return lat, time.perf_counter() - t0, errors


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1] if len(values) > 1 else values[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="record JSON or .artifact folder of a trained M6-Fusion (default: newest in --runs-dir)")
    ap.add_argument("--runs-dir", type=Path, default=Path("runs"))
    ap.add_argument("--epochs", type=int, help="when training one: max epochs (default: RecBole's, early stopping)")
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=4, help="client connections (one thread each)")
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--mix", default="user=0.6,list=0.3,interaction=0.1", help="share of each request kind")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--serve-args", default="", help="extra `m6bench serve` options, e.g. '--no-access-log'")
    ap.add_argument("--log", type=Path, default=Path(tempfile.gettempdir()) / "m6bench-serve-latency.server.log",
                    help="the server's output (default: in the temp folder)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    mix = {k: float(v) for k, v in (p.split("=") for p in args.mix.split(","))}
    record = Path(args.model) if args.model else find_or_train(args.runs_dir, args.epochs)
    from m6rec_bench import artifacts

    folder = record if record.name.endswith(artifacts.SUFFIX) else artifacts.folder_for(record)
    meta = json.loads((folder / artifacts.META).read_text())
    users, items = meta["users"][1:], meta["items"][1:]
    port = free_port()
    cmd = ["m6bench", "serve", "--model", str(record), "--port", str(port), *args.serve_args.split()]
    print("server:", " ".join(cmd), flush=True)
    with open(args.log, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            t = time.perf_counter()
            health = wait_until_up(port, proc)
            print(f"up after {time.perf_counter() - t:.1f}s: {health['model']} ({health['n_users']} users, "
                  f"{health['n_items']} items), record {health['record']}", flush=True)
            load(port, plan(args.warmup, users, items, mix, args.k, args.seed + 1), args.concurrency)
            lat, wall, errors = load(port, plan(args.requests, users, items, mix, args.k, args.seed), args.concurrency)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    if errors:
        raise SystemExit(f"{len(errors)} requests failed, e.g. {errors[0]}")

    rows = []
    for kind in KINDS:
        v = lat[kind]
        if v:
            rows.append({"kind": kind, "n": len(v), "p50_ms": 1e3 * pct(v, 50), "p90_ms": 1e3 * pct(v, 90),
                         "p99_ms": 1e3 * pct(v, 99), "max_ms": 1e3 * max(v), "rps": len(v) / wall})
    every = [x for v in lat.values() for x in v]
    rows.append({"kind": "all", "n": len(every), "p50_ms": 1e3 * pct(every, 50), "p90_ms": 1e3 * pct(every, 90),
                 "p99_ms": 1e3 * pct(every, 99), "max_ms": 1e3 * max(every), "rps": len(every) / wall})
    print(f"\n{args.requests} requests, {args.concurrency} connections, k={args.k}, mix {args.mix}, {wall:.1f}s wall\n")
    print("| request | n | p50 ms | p90 ms | p99 ms | max ms | req/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['kind']} | {r['n']} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.1f} | {r['rps']:.0f} |")
    worst = max(r["p99_ms"] for r in rows)
    print(f"\ntarget p99 < {TARGET_P99_MS:.0f} ms: {'met' if worst < TARGET_P99_MS else 'MISSED'} (worst p99 {worst:.2f} ms)")
    if args.json:
        args.json.write_text(json.dumps({"record": str(record), "requests": args.requests, "concurrency": args.concurrency,
                                         "k": args.k, "mix": mix, "wall_s": wall, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
