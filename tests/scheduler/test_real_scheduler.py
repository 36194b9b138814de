"""Airflow as users run it: scheduler, dag-processor, triggerer and API server as real processes
(LocalExecutor: mapped chunks run in parallel), driven through the REST API only.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import orjson
import pytest

from include import extract, schema, settings, warehouse
from include.journeys import JourneyStats, build_journeys
from tests.airflow_helpers import DAG_ID, empty_outputs, snapshot
from tests.airflow_rest import AirflowApi
from tools.local_stack import LOGIN, LocalStack

ATTEMPTS = 2


@pytest.fixture(scope="module")
def warehouse_db(sample_db_template: Path, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("warehouse") / "challenge.db"
    shutil.copyfile(sample_db_template, path)
    with warehouse.connect_sqlite(path) as conn:
        schema.init_schema(conn)
    return path


def dags_folder(root: Path) -> Path:
    """The project's DAG folder plus the test's downstream DAG, as a deployment would hold them."""
    folder = root / "dags"
    folder.mkdir()
    for path in [*(settings.PROJECT_ROOT / "dags").iterdir(), Path(__file__).with_name("dags") / "report_consumer.py"]:
        if path.is_file():
            (folder / path.name).symlink_to(path)
    return folder


@pytest.fixture(scope="module")
def stack(warehouse_db: Path, tmp_path_factory, trained_engine, airflow_metadata_url):
    root = tmp_path_factory.mktemp("stack")
    extra_env = {
        "ATTRIBUTION_AIRFLOW_DB": airflow_metadata_url,
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder(root)),
        "AIRFLOW_CONN_IHC_WAREHOUSE": orjson.dumps({"conn_type": "sqlite", "host": str(warehouse_db)}).decode(),
        "ATTRIBUTION_DATA_DIR": str(root / "data"),
        "ATTRIBUTION_RETRY_DELAY_SECONDS": "1",
        # 6 s: every run of these tests misses it; an alert goes out only while a notifier is set
        "ATTRIBUTION_RUN_DEADLINE_MINUTES": "0.1",
    }
    with LocalStack(
        root / "airflow",
        port=_free_port(),
        extra_env=extra_env,
        server_args=["--latency-ms", "1000"],
        engine_dir=Path(trained_engine.path).parent,
    ) as s:
        yield s


@pytest.fixture(scope="module")
def api(stack: LocalStack) -> AirflowApi:
    client = AirflowApi(stack.url, *LOGIN)
    client.wait_for_dag(DAG_ID)
    client.set_variable(settings.MAX_ATTEMPTS.name, ATTEMPTS)
    client.set_variable(settings.BACKOFF_SECONDS.name, 0.01)
    client.patch(f"/dags/{DAG_ID}", {"is_paused": False})
    return client


def _free_port() -> int:
    from tools.demo import free_port

    return free_port()


def set_faults(stack: LocalStack, faults: list[dict]) -> None:
    request = urllib.request.Request(
        f"{stack.ihc_url}/local/faults",
        data=orjson.dumps(faults),
        method="PUT",
        headers={"x-api-key": settings.LOCAL_API_KEY},
    )
    urllib.request.urlopen(request, timeout=10).close()


def journey_ids(db: Path, start: str, end: str) -> list[str]:
    conn = warehouse.connect_sqlite(db)
    sessions = extract.iter_sessions_of_converting_users(conn, start, end, 30)
    journeys = build_journeys(extract.iter_conversions(conn, start, end), sessions, 30, 3000, JourneyStats())
    return [j.conversion_id for j in journeys]


def chunks_of(api: AirflowApi, run_id: str) -> dict[int, dict]:
    return {ti["map_index"]: ti for ti in api.task_instances(DAG_ID, run_id) if ti["task_id"] == "attribute_chunk"}


def run_manual(api: AirflowApi, start: str, end: str) -> str:
    run_id = api.trigger(DAG_ID, {"start_date": start, "end_date": end})
    assert api.wait_run(DAG_ID, run_id) == "success"
    return run_id


def names_while_running(api: AirflowApi, run_id: str) -> tuple[str, dict[str, set]]:
    """Wait for the run; meanwhile collect the names the grid shows for chunks, by state."""
    seen: dict[str, set] = {}
    while (state := api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}")["state"]) not in ("success", "failed"):
        for ti in chunks_of(api, run_id).values():
            seen.setdefault(ti["state"], set()).add(ti["rendered_map_index"])
        time.sleep(0.2)
    return state, seen


def test_chunks_run_in_parallel_retry_on_their_own_and_show_their_names(stack, api, warehouse_db):
    api.set_variable(settings.CHUNK_SIZE.name, 500)
    faulty = journey_ids(warehouse_db, settings.SAMPLE_START_DATE, settings.SAMPLE_END_DATE)[500]
    set_faults(stack, [{"kind": "500", "times": 2 * ATTEMPTS, "conversion_id": faulty}])

    run_id = api.trigger(DAG_ID, {"start_date": settings.SAMPLE_START_DATE, "end_date": settings.SAMPLE_END_DATE})

    state, seen = names_while_running(api, run_id)
    assert state == "success"
    # Airflow 3 renders the name as a try starts (from the chunk task's input); before that, and
    # again for the next try, the grid shows the map index.
    running = {f"chunk {i}/4 · 500 journeys" for i in (1, 2, 3)}
    assert running <= seen.get("running", set()), seen
    chunks = chunks_of(api, run_id)
    assert sorted(chunks) == [0, 1, 2, 3]
    assert {i: ti["rendered_map_index"] for i, ti in chunks.items()} == {
        0: "chunk 1/4 · 500 journeys",
        1: "chunk 2/4 · 500 journeys",
        2: "chunk 3/4 · 500 journeys",
        3: f"chunk 4/4 · {chunks_of_size(chunks)} journeys",
    }
    assert {i: ti["try_number"] for i, ti in chunks.items()} == {0: 1, 1: 3, 2: 1, 3: 1}
    first_tries = [(ti["start_date"], ti["end_date"]) for i, ti in chunks.items() if i != 1]
    assert any(a[0] < b[1] and b[0] < a[1] for a in first_tries for b in first_tries if a is not b), first_tries


def chunks_of_size(chunks: dict[int, dict]) -> str:
    return chunks[3]["rendered_map_index"].split("· ")[1].split(" ")[0]


def test_chunk_count_follows_the_variable_without_code_change(api):
    api.set_variable(settings.CHUNK_SIZE.name, 1000)
    run_id = run_manual(api, settings.SAMPLE_START_DATE, settings.SAMPLE_END_DATE)
    assert sorted(chunks_of(api, run_id)) == [0, 1]

    api.set_variable(settings.CHUNK_SIZE.name, 300)
    run_id = run_manual(api, settings.SAMPLE_START_DATE, settings.SAMPLE_END_DATE)
    assert len(chunks_of(api, run_id)) == 7


def test_three_day_backfill_makes_three_runs_equal_to_one_manual_run(api, warehouse_db):
    api.set_variable(settings.CHUNK_SIZE.name, 300)
    empty_outputs(warehouse_db)
    before = {r["dag_run_id"] for r in api.runs(DAG_ID)}

    runs = wait_backfill(api, start_backfill(api, "2023-09-01", "2023-09-03"), before)

    assert sorted(r["logical_date"][:10] for r in runs) == ["2023-09-01", "2023-09-02", "2023-09-03"]
    assert {r["run_type"] for r in runs} == {"backfill"}
    configs = (api.xcom(DAG_ID, r["dag_run_id"], "init_db") for r in runs)
    windows = sorted((c["window"]["start"], c["window"]["end"]) for c in configs)
    assert windows == [("2023-09-01", "2023-09-01"), ("2023-09-02", "2023-09-02"), ("2023-09-03", "2023-09-03")]
    by_backfill = snapshot(warehouse_db)
    assert all(by_backfill.values()), "the backfill left an output table empty"

    empty_outputs(warehouse_db)
    run_manual(api, "2023-09-01", "2023-09-03")
    assert snapshot(warehouse_db) == by_backfill


def start_backfill(api: AirflowApi, first: str, last: str) -> int:
    """``airflow backfill create`` through the REST API: one run per day, in the scheduler."""
    body = {"dag_id": DAG_ID, "from_date": f"{first}T00:00:00Z", "to_date": f"{last}T00:00:00Z", "max_active_runs": 3}
    return api.post("/backfills", body)["id"]


def wait_backfill(api: AirflowApi, backfill_id: int, before: set[str], timeout: float = 300) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = api.get(f"/backfills/{backfill_id}")["completed_at"] is not None
        runs = [r for r in api.runs(DAG_ID) if r["dag_run_id"] not in before and r["run_type"] == "backfill"]
        if done and all(r["state"] in ("success", "failed") for r in runs):
            assert {r["state"] for r in runs} == {"success"}, runs
            return runs
        time.sleep(1)
    raise AssertionError(f"backfill {backfill_id} did not finish within {timeout} s")


def test_overlapping_backfill_and_range_run_at_the_same_time(api, stack, warehouse_db):
    api.set_variable(settings.CHUNK_SIZE.name, 300)
    empty_outputs(warehouse_db)
    before = {r["dag_run_id"] for r in api.runs(DAG_ID)}

    backfill = start_backfill(api, "2023-09-04", "2023-09-06")
    overlapping = api.trigger(DAG_ID, {"start_date": "2023-09-05", "end_date": "2023-09-07"})
    wait_backfill(api, backfill, before)
    assert api.wait_run(DAG_ID, overlapping) == "success"
    together = snapshot(warehouse_db)

    logs = "\n".join(p.read_text(errors="replace") for p in (stack.home / "logs").rglob("*.log"))
    assert "database is locked" not in logs
    with sqlite3.connect(warehouse_db) as conn:
        sums = conn.execute(
            "SELECT MAX(ABS(s - 1)) FROM (SELECT SUM(ihc) s FROM attribution_customer_journey GROUP BY conv_id)"
        )
        assert sums.fetchone()[0] < 1e-9

    empty_outputs(warehouse_db)
    run_manual(api, "2023-09-04", "2023-09-07")
    assert snapshot(warehouse_db) == together


def test_clearing_one_failed_chunk_reruns_it_and_the_downstream_steps(api, stack, warehouse_db):
    api.set_variable(settings.CHUNK_SIZE.name, 500)
    faulty = journey_ids(warehouse_db, settings.SAMPLE_START_DATE, settings.SAMPLE_END_DATE)[500]
    set_faults(stack, [{"kind": "500", "times": -1, "conversion_id": faulty}])
    run_id = api.trigger(DAG_ID, {"start_date": settings.SAMPLE_START_DATE, "end_date": settings.SAMPLE_END_DATE})

    assert api.wait_run(DAG_ID, run_id) == "failed"
    states = {(ti["task_id"], ti["map_index"]): ti for ti in api.task_instances(DAG_ID, run_id)}
    assert states[("attribute_chunk", 1)]["state"] == "failed"
    assert states[("attribute_chunk", 1)]["try_number"] == 4
    assert states[("write_attributions", -1)]["state"] == "upstream_failed"

    set_faults(stack, [])
    api.post(
        f"/dags/{DAG_ID}/clearTaskInstances",
        {"dag_run_id": run_id, "task_ids": [["attribute_chunk", 1]], "include_downstream": True, "dry_run": False},
    )

    assert api.wait_run(DAG_ID, run_id) == "success"
    after = {(ti["task_id"], ti["map_index"]): ti for ti in api.task_instances(DAG_ID, run_id)}
    assert after[("attribute_chunk", 1)]["try_number"] == 5
    assert [after[("attribute_chunk", i)]["try_number"] for i in (0, 2, 3)] == [1, 1, 1]
    for task_id in ("write_attributions", "build_report", "export_csv"):
        assert after[(task_id, -1)]["state"] == "success"
    assert after[("extract", -1)]["try_number"] == 1


def test_a_malformed_date_is_refused_when_the_run_is_triggered(api):
    before = len(api.runs(DAG_ID))
    with pytest.raises(AssertionError, match=r"HTTP 400.*start_date") as refused:
        api.trigger(DAG_ID, {"start_date": "2023-09-3x", "end_date": settings.SAMPLE_END_DATE})
    assert "date" in str(refused.value)
    assert len(api.runs(DAG_ID)) == before


def test_a_dag_scheduled_on_the_report_asset_runs_after_a_run(api):
    api.wait_for_dag("report_consumer")
    api.patch("/dags/report_consumer", {"is_paused": False})
    run_id = run_manual(api, "2023-09-07", "2023-09-07")

    def triggered_by_the_run() -> list[dict]:
        """The consumer's successful runs whose triggering asset events include this run's."""
        found = []
        for consumer in api.runs("report_consumer"):
            path = f"/dags/report_consumer/dagRuns/{consumer['dag_run_id']}/upstreamAssetEvents"
            sources = {(e["uri"], e["source_run_id"]) for e in api.get(path)["asset_events"]}
            if consumer["state"] == "success" and (settings.REPORT_ASSET_URI, run_id) in sources:
                found.append(consumer)
        return found

    assert len(wait_for(triggered_by_the_run)) == 1


def wait_for(found, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while not (result := found()):
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing found within {timeout} s")
        time.sleep(1)
    return result


def test_a_run_past_its_deadline_alerts_the_configured_notifier(api, tmp_path):
    alerts = tmp_path / "alerts.jsonl"
    spec = {"class": "failure_alerts.FileNotifier", "kwargs": {"path": str(alerts)}}
    api.set_variable(settings.FAILURE_NOTIFIER, orjson.dumps(spec).decode())
    try:
        run_id = run_manual(api, settings.SAMPLE_START_DATE, settings.SAMPLE_END_DATE)

        def alert_for_the_run() -> list[dict]:
            lines = [orjson.loads(line) for line in alerts.read_bytes().splitlines()] if alerts.exists() else []
            return [line for line in lines if line["run_id"] == run_id]

        [alert] = wait_for(alert_for_the_run, timeout=120)
    finally:
        api.delete(f"/variables/{settings.FAILURE_NOTIFIER}")
    assert (alert["event"], alert["dag_id"]) == ("deadline missed", DAG_ID)


def test_the_html_report_is_reachable_from_the_ui_behind_the_login(api, stack):
    run_id = run_manual(api, "2023-09-07", "2023-09-07")

    plugin = next(p for p in api.get("/plugins")["plugins"] if p["name"] == "ihc_report")
    assert {(v["destination"], v["href"]) for v in plugin["external_views"]} == {
        ("nav", "/ihc-report/latest"),
        ("dag_run", "/ihc-report/dags/{DAG_ID}/runs/{RUN_ID}"),
    }
    for path in ("/ihc-report/latest", f"/ihc-report/dags/{DAG_ID}/runs/{urllib.parse.quote(run_id)}"):
        page = api.raw("GET", path)
        assert page.startswith(b"<!DOCTYPE html>") and b"IHC attribution report 2023-09-07 .. 2023-09-07" in page
    for path in (f"/ihc-report/dags/report_consumer/runs/{urllib.parse.quote(run_id)}", "/ihc-report/docs"):
        with pytest.raises(AssertionError, match="HTTP 404"):
            api.raw("GET", path)
    for path, code in (("/ihc-report/latest", 401), ("/ihc-report/openapi.json", 404)):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{stack.url}{path}", timeout=30)
        assert refused.value.code == code, path
