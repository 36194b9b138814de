"""``make bench``: time and peak memory of each step on generated data from 1x to 100x.

Datasets: (a) the 1x sample; (b) the same conversions with 100x non-converting background
sessions (~45 M rows); (c) everything 10x. Each stage runs in its own process, so its wall time
and peak RSS are its own; the local IHC engine is trained on each dataset (a stage of its own),
and the API phase talks to the local server, serving those parameters at a fixed latency, which
reports the engine's CPU time. Every dataset runs on each database: its SQLite file, and a copy
loaded into PostgreSQL (a server the bench starts in ``--work`` and removes afterwards, unless
``--postgres-url`` names one). After the report stage, the floor stage times what the report
cannot beat (:data:`FLOOR_QUERY`); after the API stage, the transport stage times what the API
step cannot beat (:func:`post_all`). Writes ``bench/results.md`` with the machine it ran on.

``python -m tools.bench [--datasets 1x,100x-background,10x] [--databases sqlite,postgres] [--work bench/data]``
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import platform
import re
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from include import markov, model_comparison, pipeline, roles, run_config, settings, warehouse
from include.attributions import ChunkResult, WriteResult
from include.chunks import ChunkInfo, read_chunk
from include.extract import CONVERSIONS_FILE, SESSIONS_FILE, STORED_FILE, ExtractResult
from include.ihc_client import ApiTarget, ClientSettings, RequestLimits, iter_requests, local_target
from include.journeys import JourneyStats
from include.report import rebuild_report
from include.run_config import RunContext
from include.warehouse import WarehouseTarget
from tools import engine_parameters, engine_training, postgres_server
from tools.demo import free_port, wait_for_port
from tools.local_airflow import airflow_env, connection_env, local_api_connection
from tools.sample_data import SampleSpec

WINDOW = settings.RunWindow(settings.DateRange(settings.SAMPLE_START_DATE, settings.SAMPLE_END_DATE), 30)
LATENCY_MS = 50
CONCURRENCY = 8
CHUNK_SIZE = 20000
CLIENT = ClientSettings(concurrency=CONCURRENCY)
# Runs of the API stage and its transport floors, of which the bench reports the median.
API_RUNS = 3
RAW_TRANSPORT = "transport (raw-socket server)"
# A free account's sessions per request (ihc_max_sessions_per_request): the api stage reports the
# requests the chunks need at it against one packing of the whole range.
FREE_ACCOUNT_SESSIONS = 200
DATASETS = {
    "1x": SampleSpec(seed=42),
    "100x-background": SampleSpec(seed=42, background_factor=100),
    "10x": SampleSpec(seed=42, scale=10),
}
DATABASES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
# The bench's own PostgreSQL server: memory for joining tens of millions of sessions to their
# costs and for the index builds; wal_level minimal lets the load's COPY after a TRUNCATE skip
# the WAL. (tools.postgres_server starts every server with fsync off.)
POSTGRES_SETTINGS = {
    "shared_buffers": "2GB",
    "work_mem": "256MB",
    "maintenance_work_mem": "1GB",
    "max_wal_size": "8GB",
    "wal_level": "minimal",
    "max_wal_senders": "0",
}


@dataclass
class Measure:
    stage: str
    seconds: float
    peak_rss_mb: float
    detail: dict


def run_stage(stage: str, db: Path | str, run_dir: Path, **extra: str) -> Measure:
    """One stage in a fresh process; its wall time and peak RSS (VmHWM) are the stage's own."""
    args = [sys.executable, "-m", "tools.bench", "stage", stage, "--db", str(db), "--run-dir", str(run_dir)]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", value]
    started = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.PIPE, cwd=settings.PROJECT_ROOT)
    out = process.stdout.read()
    code = process.wait()
    seconds = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"stage {stage} failed on {db}")
    detail = json.loads(out or b"{}")
    return Measure(stage, seconds, detail.pop("peak_rss_mb"), detail)


# What the report cannot beat: the window's sessions read once, their costs summed by channel
# and day, nothing written. Compared with the report step in the same bench run.
FLOOR_QUERY = """
    SELECT s.channel_name, s.event_date, SUM(k.cost)
    FROM session_sources s
    LEFT JOIN session_costs k ON k.session_id = s.session_id
    WHERE s.event_date BETWEEN :first AND :last
    GROUP BY s.channel_name, s.event_date"""


def floor(target: warehouse.WarehouseTarget, first: str, last: str) -> int:
    """The floor query over the report's window, opened and read as report_step does; its row count."""
    with target.open() as db:
        return len(db.execute(FLOOR_QUERY, {"first": first, "last": last}).fetchall())


def part_seconds(run: RunContext, first: str, last: str) -> tuple[dict[str, float], float]:
    """Each part of the report step again, one by one over the same window (each replaces what
    the step wrote with the same rows): what the roles and the models add to channel_reporting,
    in time and in this process's peak RSS while the part ran (SQLite works in it; PostgreSQL in
    its server), and the largest peak RSS of the processes the Markov model read SQLite in (at least
    this process's at their spawn, which Linux counts in: an upper bound of their own). Beside it,
    the highest of this process's readings: each part resets the high-water mark."""
    parts = {
        "reporting": lambda db: rebuild_report(db, first, last),
        "roles": lambda db: roles.rebuild_roles(db, first, last),
        "models": lambda db: model_comparison.rebuild_model_comparison(
            db, first, last, run.config.decay_half_life_days
        ),
        # Every conversion date of the range scored again, as a run that attributed them does.
        "markov": lambda db: markov.refresh(db, run.window, run.window.dates.days()),
    }
    peaks = [peak_rss_mb()]
    seconds = {}
    for name, part in parts.items():
        reset_peak_rss()
        started = time.perf_counter()
        with run.warehouse.open() as db:
            part(db)
        seconds[f"{name}_s"] = time.perf_counter() - started
        seconds[f"{name}_mb"] = peak_rss_mb()
        peaks.append(seconds[f"{name}_mb"])
    seconds["reader_process_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return seconds, max(peaks)


def reset_peak_rss() -> None:
    """VmHWM back to the current RSS (Linux's clear_refs 5), so the next reading is one part's."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb() -> float:
    """This process's own high-water RSS (VmHWM: unlike ru_maxrss, nothing inherited at fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def requests_at(max_sessions: int, max_journeys: int, chunk_files: list[Path]) -> tuple[int, int]:
    """Requests the chunk files need at ``max_sessions`` per request, packed chunk by chunk as
    the API tasks do, and in one packing of all their journeys (the range's): equal when the
    chunks end at request boundaries of that packing. Counted as packed, so the stage's peak
    RSS stays the client's."""
    limits = RequestLimits(max_journeys, max_sessions)
    chunked = sum(sum(1 for _ in iter_requests(read_chunk(f), limits)) for f in chunk_files)
    whole = sum(1 for _ in iter_requests(itertools.chain.from_iterable(map(read_chunk, chunk_files)), limits))
    return chunked, whole


def free_account_chunks(run: RunContext, extracted: ExtractResult) -> list[Path]:
    """The run's chunk files as the DAG forms them with ihc_max_sessions_per_request = 200 and the
    default ihc_chunk_size, from the same extract files, in a folder of their own."""
    folder = run.run_dir / "free-account"
    shutil.rmtree(folder, ignore_errors=True)
    for name in (CONVERSIONS_FILE, SESSIONS_FILE, STORED_FILE):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).symlink_to((run.run_dir / name).absolute())
    client = replace(run.config.client, max_sessions_per_request=FREE_ACCOUNT_SESSIONS)
    config = replace(run.config, chunk_size=int(settings.CHUNK_SIZE.default), client=client)
    return [
        folder / c.file for c in pipeline.journeys_step(replace(run, run_dir=folder, config=config), extracted).chunks
    ]


def bench_context(db: WarehouseTarget, run_dir: Path, url: str) -> RunContext:
    """The run's context as the first task would build it, with the bench's settings."""
    config = run_config.resolve(WINDOW.dates, {settings.CHUNK_SIZE.name: CHUNK_SIZE}.get, local_target())
    config = replace(config, client=CLIENT, api=replace(config.api, base_url=url or config.api.base_url))
    return RunContext(config, run_dir, db, run_dir / "output", lambda: settings.LOCAL_API_KEY)


def stage_main(argv: list[str]) -> None:
    """Inside a stage process: do the stage, print its numbers as JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("stage")
    parser.add_argument("--db", help="a SQLite path or a postgresql:// URL")
    parser.add_argument("--run-dir", type=Path)
    parser.add_argument("--url")
    parser.add_argument("--engine-dir", type=Path)
    args = parser.parse_args(argv)
    run_dir: Path = args.run_dir
    state = run_dir / "bench-state.json"
    db = engine_training.warehouse_target(args.db)
    run = bench_context(db, run_dir, args.url or "")
    earlier_peaks: list[float] = []  # high-water marks read before a reset (the report's parts)
    if args.stage == "init_db":
        pipeline.prepare(run)
        detail: dict = {}
    elif args.stage == "journeys":
        extracted = pipeline.extract_step(run)
        journeys = pipeline.journeys_step(run, extracted)
        state.write_text(
            json.dumps({"extracted": asdict(extracted), "chunks": journeys.to_xcom(), "stats": asdict(journeys.stats)})
        )
        detail = {"sessions_read": extracted.sessions, "journeys": sum(c.journeys for c in journeys.chunks)}
    elif args.stage == "train":
        started = time.perf_counter()
        trained = engine_training.train(db, WINDOW.dates, settings.DEFAULT_CONV_TYPE_ID, WINDOW.lookback_days)
        engine_parameters.write(args.engine_dir, trained)
        detail = {
            "train_s": time.perf_counter() - started,
            "journeys": trained.trained_on.journeys,
            "gaps": trained.trained_on.gaps,
        }
    elif args.stage == "api":
        saved = json.loads(state.read_text())
        chunks = [ChunkInfo.from_xcom(c) for c in saved["chunks"]]
        started = time.perf_counter()
        results = [pipeline.attribute_step(run, c) for c in chunks]
        elapsed = time.perf_counter() - started
        ideal = ideal_seconds(r.requests for r in results)
        state.write_text(json.dumps({**saved, "results": [r.to_xcom() for r in results]}))
        detail = {"requests": sum(r.requests for r in results), "ideal_s": ideal, "efficiency": ideal / elapsed}
        files = free_account_chunks(run, ExtractResult(**saved["extracted"]))
        chunked, whole = requests_at(FREE_ACCOUNT_SESSIONS, CLIENT.max_journeys_per_request, files)
        detail |= {
            f"chunks_at_{FREE_ACCOUNT_SESSIONS}_sessions": len(files),
            f"requests_at_{FREE_ACCOUNT_SESSIONS}_sessions": chunked,
            f"whole_range_packing_at_{FREE_ACCOUNT_SESSIONS}": whole,
        }
    elif args.stage == "transport":
        saved = json.loads(state.read_text())
        target = ApiTarget(args.url, settings.LOCAL_API_KEY, settings.DEFAULT_CONV_TYPE_ID)
        bodies = [request_bodies(target, run_dir / ChunkInfo.from_xcom(c).file) for c in saved["chunks"]]
        started = time.perf_counter()
        for chunk_bodies in bodies:
            asyncio.run(post_all(target, chunk_bodies))
        elapsed = time.perf_counter() - started
        ideal = ideal_seconds(map(len, bodies))
        detail = {"requests": sum(map(len, bodies)), "efficiency": ideal / elapsed}
    elif args.stage == "write":
        saved = json.loads(state.read_text())
        started = time.perf_counter()
        written = pipeline.write_step(
            run, [ChunkInfo.from_xcom(c) for c in saved["chunks"]], [ChunkResult(**r) for r in saved["results"]]
        )
        detail = {"rows": written.rows, "rows_per_s": written.rows / (time.perf_counter() - started)}
        state.write_text(json.dumps({**saved, "written": asdict(written)}))
    elif args.stage == "report":
        saved = json.loads(state.read_text())
        started = time.perf_counter()
        result = pipeline.report_step(run, WriteResult(**saved["written"]))
        detail = {"report_rows": result.rows, "report_s": time.perf_counter() - started}
        parts, highest_peak = part_seconds(run, result.first, result.last)
        detail |= parts
        earlier_peaks.append(highest_peak)
        state.write_text(json.dumps({**saved, "report": asdict(result)}))
    elif args.stage == "floor":
        saved = json.loads(state.read_text())
        started = time.perf_counter()
        rows = floor(db, saved["report"]["first"], saved["report"]["last"])
        detail = {"floor_rows": rows, "floor_s": time.perf_counter() - started}
    elif args.stage == "export":
        saved = json.loads(state.read_text())
        started = time.perf_counter()
        summary = pipeline.export_step(
            run,
            ExtractResult(**saved["extracted"]),
            JourneyStats(**saved["stats"]),
            WriteResult(**saved["written"]),
            pipeline.ReportResult(**saved["report"]),
        )
        detail = {
            "csv_rows": summary.report_rows,
            "export_s": time.perf_counter() - started,
            "html_kb": Path(summary.html_path).stat().st_size / 1024,
        }
    else:
        raise SystemExit(f"unknown stage {args.stage}")
    print(json.dumps({**detail, "peak_rss_mb": max([peak_rss_mb(), *earlier_peaks])}))


def ideal_seconds(requests_per_chunk: Iterable[int]) -> float:
    """The API phase with nothing but the latency: each chunk's requests in full rounds of
    CONCURRENCY, one chunk after another."""
    return sum(math.ceil(n / CONCURRENCY) for n in requests_per_chunk) * LATENCY_MS / 1000


def request_bodies(target: ApiTarget, chunk_file: Path) -> list[bytes]:
    """The chunk's requests as the client packs and encodes them."""
    limits = RequestLimits(CLIENT.max_journeys_per_request, CLIENT.max_sessions_per_request)
    return [target.body(request) for request in iter_requests(read_chunk(chunk_file), limits)]


async def post_all(target: ApiTarget, bodies: list[bytes]) -> None:
    """The transport floor of a chunk: its requests, encoded beforehand, sent over one session at
    most CONCURRENCY at a time and their answers read; nothing packed, checked or written."""
    semaphore = asyncio.Semaphore(CONCURRENCY)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:

        async def post(body: bytes) -> None:
            async with (
                semaphore,
                session.post(target.url, params=target.query, data=body, headers=target.headers) as answer,
            ):
                answer.raise_for_status()
                await answer.read()

        await asyncio.gather(*map(post, bodies))


def dag_run(db: Path, work: Path, url: str) -> Measure:
    """One whole DAG run in real Airflow (``airflow dags test``), as ``make demo`` does it."""
    home = work / "airflow"
    env = (
        airflow_env(home)
        | local_api_connection(url, settings.LOCAL_API_KEY)
        | connection_env(settings.WAREHOUSE_CONN_ID, {"conn_type": "sqlite", "host": str(db)})
        | {settings.DATA_DIR_ENV: str(work / "dag-data"), "AIRFLOW_VAR_IHC_REQUEST_CONCURRENCY": str(CONCURRENCY)}
    )
    airflow = str(Path(sys.executable).with_name("airflow"))
    conf = json.dumps({"start_date": settings.SAMPLE_START_DATE, "end_date": settings.SAMPLE_END_DATE})
    with (work / "dag-run.log").open("w") as log:
        for args in (["db", "migrate"], ["pools", "set", settings.API_POOL, "4", "IHC"]):
            subprocess.run([airflow, *args], env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
        started = time.perf_counter()
        command = [airflow, "dags", "test", settings.DAG_ID, "-c", conf]
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"the DAG run failed; see {work / 'dag-run.log'}")
    return Measure("whole DAG run (airflow dags test)", time.perf_counter() - started, usage.ru_maxrss / 1024, {})


def generate(spec: SampleSpec, db: Path) -> Measure:
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.sample_data",
            "--out",
            str(db),
            "--seed",
            str(spec.seed),
            "--scale",
            str(spec.scale),
            "--background-factor",
            str(spec.background_factor),
        ],
        check=True,
        cwd=settings.PROJECT_ROOT,
    )
    return Measure("generate (not a pipeline stage)", time.perf_counter() - started, 0, {})


def server_counters(url: str) -> dict:
    request = urllib.request.Request(f"{url}/local/faults", headers={"x-api-key": settings.LOCAL_API_KEY})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def start_server(engine_dir: Path) -> tuple[subprocess.Popen, str]:
    """The local server with the dataset's trained parameters, answering after LATENCY_MS."""
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tools.local_server",
            "--port",
            str(port),
            "--latency-ms",
            str(LATENCY_MS),
            "--engine-dir",
            str(engine_dir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, server)
    return server, settings.local_api_url(port=port)


def report(name: str, measure: Measure) -> Measure:
    print(
        f"  {name:<26} {measure.stage:<10} {measure.seconds:8.2f} s {measure.peak_rss_mb:7.0f} MB {measure.detail}",
        flush=True,
    )
    return measure


def bench_dataset(
    name: str, spec: SampleSpec, root: Path, with_dag: bool, databases: list[str], postgres_url: str | None = None
) -> dict[str, list[Measure]]:
    """The dataset's measures on each database; generating the SQLite file counts to the first.

    ``postgres_url``: the server to load the PostgreSQL copy into (needed for "postgres")."""
    source = root / name / "challenge.db"
    prepared = [] if source.exists() else [generate(spec, source)]
    runs: dict[str, list[Measure]] = {}
    for database in databases:
        label = f"{name} {database}"
        if database == "sqlite":
            drop_outputs(source)
            runs[database] = prepared + bench_warehouse(label, source, root / name, "", with_dag)
        else:
            with postgres_copy(source, postgres_url, name) as (url, load):
                loaded = [report(label, load)]
                runs[database] = prepared + loaded + bench_warehouse(label, url, root / name, "-postgres", False)
        prepared = []
    return runs


def drop_outputs(db: Path) -> None:
    """init_db then pays its first-run cost (the indexes) every time, as on a new PostgreSQL copy."""
    with sqlite3.connect(db) as conn:
        for table in ("attribution_customer_journey", "channel_reporting"):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
        indexes = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'idx_%'").fetchall()
        for (index,) in indexes:
            conn.execute(f"DROP INDEX {index}")


@contextmanager
def postgres_copy(source: Path, server_url: str, name: str) -> Iterator[tuple[str, Measure]]:
    """The dataset's input tables loaded (timed, by tools.postgres_load) into a new database on
    the server, dropped afterwards; yields its URL and the load's measure."""
    database = "bench_" + name.replace("-", "_")
    url = server_url.rsplit("/", 1)[0] + "/" + database
    drop = f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"
    with warehouse.postgres_target(server_url, "bench admin").open() as admin:
        admin.execute(drop)
    started = time.perf_counter()
    command = [sys.executable, "-m", "tools.postgres_load", "--sqlite", str(source), "--url", url]
    subprocess.run(command, check=True, cwd=settings.PROJECT_ROOT, stdout=subprocess.DEVNULL)
    load = Measure("load (not a pipeline stage)", time.perf_counter() - started, 0, {})
    try:
        yield url, load
    finally:
        with warehouse.postgres_target(server_url, "bench admin").open() as admin:
            admin.execute(drop)


@contextmanager
def bench_postgres(url: str | None, work: Path) -> Iterator[str]:
    """The server ``url`` names, or the bench's own on 127.0.0.1 in a folder under ``work``,
    stopped and removed afterwards."""
    if url:
        yield url
        return
    work.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="postgres-", dir=work))
    try:
        yield postgres_server.start(folder, POSTGRES_SETTINGS)
    finally:
        postgres_server.stop(folder)


def bench_warehouse(name: str, db: Path | str, work: Path, suffix: str, with_dag: bool) -> list[Measure]:
    """Every stage on one warehouse (a SQLite path or a PostgreSQL URL), with its own run and
    engine folders in ``work``."""
    measures: list[Measure] = []
    run_dir = work / f"run{suffix}"
    run_dir.mkdir(parents=True, exist_ok=True)
    engine_dir = work / f"engine{suffix}"
    for stage in ("init_db", "journeys", "train"):
        measures.append(report(name, run_stage(stage, db, run_dir, engine_dir=str(engine_dir))))
    settle(db)
    server, url = start_server(engine_dir)
    try:
        measures += [report(name, m) for m in api_measures(db, run_dir, url)]
        for stage in ("write", "report", "floor", "export"):
            measures.append(report(name, run_stage(stage, db, run_dir)))
        if with_dag:
            measures.append(dag_run(db, work, url))
    finally:
        server.terminate()
        server.wait()
    return measures


def settle(db: Path | str) -> None:
    """Let the disk catch up before the API stages: after a load or an index build, gigabytes of
    written pages drain in the background, taking CPU from the stages and holding up their fsync
    (the result file's) behind the writeback. PostgreSQL's own buffers go first (CHECKPOINT)."""
    if not isinstance(db, Path):
        # A server named by --postgres-url may not let this user checkpoint: then only the sync.
        with engine_training.warehouse_target(db).open() as warehouse_db, suppress(warehouse.WarehouseError):
            warehouse_db.execute("CHECKPOINT")
    os.sync()


def api_measures(db: Path | str, run_dir: Path, url: str) -> list[Measure]:
    """The API stage and its transport floors, API_RUNS times in turn on a warmed-up server; of
    each, the run of median efficiency (the figure varies from run to run by a few hundredths)."""
    run_stage("transport", db, run_dir, url=url)  # the server's threads and code paths warmed up
    runs: dict[str, list[Measure]] = {"api": [], "transport": [], RAW_TRANSPORT: []}
    with FixedLatencyServer() as raw_url:
        for _ in range(API_RUNS):
            before = server_counters(url)["engine_cpu_seconds"]
            api = run_stage("api", db, run_dir, url=url)
            cpu = server_counters(url)["engine_cpu_seconds"] - before
            api.detail["engine_cpu_ms_per_request"] = 1000 * cpu / api.detail["requests"]
            runs["api"].append(api)
            runs["transport"].append(run_stage("transport", db, run_dir, url=url))
            runs[RAW_TRANSPORT].append(replace(run_stage("transport", db, run_dir, url=raw_url), stage=RAW_TRANSPORT))
    return [median_run(measures) for measures in runs.values()]


def median_run(measures: list[Measure]) -> Measure:
    ordered = sorted(measures, key=lambda m: m.detail["efficiency"])
    middle = ordered[len(ordered) // 2]
    return replace(
        middle, detail={**middle.detail, "efficiency_runs": [round(m.detail["efficiency"], 3) for m in measures]}
    )


class FixedLatencyServer:
    """HTTP/1.1 with keep-alive on plain sockets, a thread per connection, answering every request
    with one small JSON body LATENCY_MS after it arrived: the transport floor of any HTTP client
    on this machine, without the local server's own HTTP stack and engine. ``with ... as url``."""

    ANSWER = b'{"statusCode": 200, "value": [], "partialFailureErrors": []}'

    def __init__(self) -> None:
        self._listener = socket.create_server((settings.LOCAL_API_HOST, 0))
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        return f"http://{settings.LOCAL_API_HOST}:{self._listener.getsockname()[1]}"

    def __exit__(self, *exc: object) -> None:
        self._listener.close()

    def _accept(self) -> None:
        with suppress(OSError):  # the listener closed
            while True:
                conn, _ = self._listener.accept()
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(self.ANSWER)
        pending = b""
        with conn, suppress(OSError):
            while data := conn.recv(1 << 20):
                arrived = time.perf_counter()
                pending += data
                while (end := pending.find(b"\r\n\r\n")) >= 0:
                    declared = re.search(rb"(?i)content-length: *(\d+)", pending[:end])
                    length = int(declared.group(1)) if declared else 0
                    if len(pending) < end + 4 + length:
                        break
                    pending = pending[end + 4 + length :]
                    time.sleep(max(0.0, arrived + LATENCY_MS / 1000 - time.perf_counter()))
                    conn.sendall(answer + self.ANSWER)


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    from importlib.metadata import version

    airflow_version = version("apache-airflow")
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB RAM, {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, apache-airflow {airflow_version}"
    )


def sessions_in(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as conn:
        return (
            conn.execute("SELECT MAX(rowid) FROM session_sources").fetchone()[0],
            conn.execute("SELECT COUNT(*) FROM conversions").fetchone()[0],
        )


def write_results(results: dict[str, dict[str, list[Measure]]], root: Path, out: Path) -> None:
    """results: by dataset, then by database, the measures in the order taken."""
    lines = [
        "# Benchmark",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `make bench` on: {machine()}.",
        f"API phase: local server at {LATENCY_MS} ms latency, {CONCURRENCY} concurrent requests per chunk, "
        f"chunks of {CHUNK_SIZE} journeys attributed one after another; efficiency = ideal time "
        "(requests / concurrency × latency) / measured time. Each stage is its own process (wall time includes "
        "its start, ~0.2 s); peak RSS is that process's VmHWM. PostgreSQL: a copy of each dataset loaded with "
        "COPY into a local server (" + ", ".join(f"{k}={v}" for k, v in POSTGRES_SETTINGS.items()) + ", fsync off), "
        "every stage run against it.",
        "",
        *floor_table(results),
        *parts_table(results),
        *transport_table(results),
    ]
    for name, runs in results.items():
        sessions, conversions = sessions_in(root / name / "challenge.db")
        lines += [f"## {name}: {sessions:,} sessions, {conversions:,} conversions", ""]
        for database, measures in runs.items():
            lines += [f"### {DATABASES[database]}", ""]
            lines += ["| stage | wall time | peak RSS | detail |", "|---|---:|---:|---|"]
            for m in measures:
                detail = ", ".join(f"{k} {detail_value(v)}" for k, v in m.detail.items())
                rss = f"{m.peak_rss_mb:,.0f} MB" if m.peak_rss_mb else ""
                lines.append(f"| {m.stage} | {m.seconds:,.2f} s | {rss} | {detail} |")
            lines.append("")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))


def detail_value(value: object) -> str:
    if isinstance(value, list):
        return "[" + " ".join(map(detail_value, value)) + "]"
    return f"{value:,.3f}" if isinstance(value, float) else f"{value:,}"


def stage_details(results: dict[str, dict[str, list[Measure]]]) -> Iterator[tuple[str, str, dict[str, dict]]]:
    """(dataset, database label, each stage's detail) of every run, for the summary tables."""
    for name, runs in results.items():
        for database, measures in runs.items():
            yield name, DATABASES[database], {m.stage: m.detail for m in measures}


def floor_table(results: dict[str, dict[str, list[Measure]]]) -> list[str]:
    """The report step against its floor, per dataset and database: both timed inside their
    stage processes around the work (the warehouse connection included, the process start not)."""
    lines = [
        "## The report step against its floor",
        "",
        "Floor: the window's cost summed by channel and day, nothing written (`FLOOR_QUERY` in "
        "`tools/bench.py`). Both timed inside their stage processes around the work, opening the warehouse "
        "included, process start not.",
        "",
        "| dataset | database | report | floor | report / floor |",
        "|---|---|---:|---:|---:|",
    ]
    for name, database, by_stage in stage_details(results):
        report_s, floor_s = by_stage["report"]["report_s"], by_stage["floor"]["floor_s"]
        lines.append(f"| {name} | {database} | {report_s:,.2f} s | {floor_s:,.2f} s | {report_s / floor_s:.2f} |")
    return [*lines, ""]


NO_READER = {DATABASES["sqlite"]: "one range, read in the process", DATABASES["postgres"]: "read in the server"}


def parts_table(results: dict[str, dict[str, list[Measure]]]) -> list[str]:
    """The report step's parts, each timed alone after the step: the roles and the Markov model
    (the models' rebuild includes it) against channel_reporting, what the step computed before."""
    lines = [
        "## The report step's parts",
        "",
        "Each part timed alone after the report step, over the same window (opening the warehouse included). "
        "Models: every model's rows of channel_model_comparison, from the stored credits; Markov: the day paths "
        "counted, and every conversion date of the range scored again, its credits stored (markov.refresh). "
        "Peak RSS: the stage process's high-water mark while the part ran, "
        "reset before it (SQLite works in the process, PostgreSQL in its server). On SQLite the Markov model "
        "reads its ranges of users in processes of its own, one per core at once: the last column is the largest "
        "one's peak RSS (ru_maxrss, an upper bound: Linux counts in it the parent's pages at the spawn).",
        "",
        "| dataset | database | report step | channel_reporting | roles | models | Markov "
        "| (roles + Markov) / channel_reporting | peak RSS: channel_reporting, roles, Markov "
        "| peak RSS of a Markov reader process |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, database, by_stage in stage_details(results):
        d = by_stage["report"]
        ratio = (d["roles_s"] + d["markov_s"]) / d["reporting_s"]
        memory = ", ".join(f"{d[f'{part}_mb']:,.0f} MB" for part in ("reporting", "roles", "markov"))
        reader = f"{d['reader_process_mb']:,.0f} MB" if d["reader_process_mb"] else f"none ({NO_READER[database]})"
        lines.append(
            f"| {name} | {database} | {d['report_s']:,.2f} s | {d['reporting_s']:,.2f} s | {d['roles_s']:,.2f} s "
            f"| {d['models_s']:,.2f} s | {d['markov_s']:,.2f} s | {ratio:.2f} | {memory} | {reader} |"
        )
    return [*lines, ""]


def transport_table(results: dict[str, dict[str, list[Measure]]]) -> list[str]:
    """The API step's efficiency against its transport floor's, per dataset and database."""
    lines = [
        "## The API step against its transport floor",
        "",
        "Transport floor: the same requests, packed and encoded beforehand, sent to the same local server by a "
        "bare aiohttp session at the same concurrency, answers read and nothing else (`post_all` in "
        "`tools/bench.py`): what HTTP round trips cost on this machine, before any reading, checking or writing. "
        "On a raw-socket server (`FixedLatencyServer`), which answers every request exactly the latency after it "
        f"arrived, the same floor shows the aiohttp client's own share. Each figure is the median of {API_RUNS} "
        "runs taken in turn on a warmed-up server (all runs in the tables below).",
        "",
        "| dataset | database | API step efficiency | transport floor efficiency | API step / floor "
        "| transport floor on a raw-socket server |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, database, by_stage in stage_details(results):
        api, floor = by_stage["api"]["efficiency"], by_stage["transport"]["efficiency"]
        raw = by_stage[RAW_TRANSPORT]["efficiency"]
        lines.append(f"| {name} | {database} | {api:.2f} | {floor:.2f} | {api / floor:.2f} | {raw:.2f} |")
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "stage":
        stage_main(argv[1:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--databases", default=",".join(DATABASES), help="sqlite, postgres or both")
    parser.add_argument(
        "--postgres-url", help="a PostgreSQL server to load the datasets into (default: the bench starts its own)"
    )
    parser.add_argument("--work", type=Path, default=settings.PROJECT_ROOT / "bench" / "data")
    parser.add_argument("--out", type=Path, default=settings.PROJECT_ROOT / "bench" / "results.md")
    args = parser.parse_args(argv)
    work: Path = args.work.resolve()  # Airflow's SQLite URL and the server's folder need it absolute
    databases = args.databases.split(",")
    unknown = set(databases) - set(DATABASES)
    if unknown:
        parser.error(f"unknown databases {sorted(unknown)}: choose from {', '.join(DATABASES)}")
    results: dict[str, dict[str, list[Measure]]] = {}
    server = bench_postgres(args.postgres_url, work) if "postgres" in databases else nullcontext(None)
    with server as postgres_url:
        for name in args.datasets.split(","):
            print(f"dataset {name}", flush=True)
            results[name] = bench_dataset(name, DATASETS[name], work, name == "1x", databases, postgres_url)
            write_results(results, work, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
