"""Past one machine: two Celery workers (Redis broker), each in its own folder with its own copy of
the code, share only a PostgreSQL warehouse and run folders on an S3 API (moto's server, reached
through the Amazon provider). Chunks run on both, and the tables equal a single-worker run's.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import boto3
import pytest

from include import settings, warehouse
from tests.airflow_helpers import AIRFLOW, DAG_ID, migrate_metadata_db
from tests.airflow_rest import AirflowApi
from tests.warehouse_rows import OUTPUT_TABLES
from tools.demo import free_port
from tools.local_airflow import airflow_env, connection_env, local_api_connection
from tools.local_stack import LOGIN, LocalStack

BUCKET = "ihc-runs"
S3_KEYS = {"login": "testing", "password": "testing"}
CHUNK_SIZE = 150
WORKERS = ("worker-1", "worker-2")
RANGE = {"start_date": settings.SAMPLE_START_DATE, "end_date": settings.SAMPLE_END_DATE}


@pytest.fixture(scope="module")
def s3_url() -> str:
    """moto's S3 server on 127.0.0.1 with an empty bucket; stops with the module."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address=settings.LOCAL_API_HOST, port=port)
    server.start()
    url = f"http://{settings.LOCAL_API_HOST}:{port}"
    s3_client(url).create_bucket(Bucket=BUCKET)
    yield url
    server.stop()


def s3_client(url: str):
    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=S3_KEYS["login"],
        aws_secret_access_key=S3_KEYS["password"],
        region_name="us-east-1",
    )


def aws_connection(url: str) -> dict[str, str]:
    return connection_env(
        "aws_default", {"conn_type": "aws", **S3_KEYS, "extra": {"endpoint_url": url, "region_name": "us-east-1"}}
    )


@pytest.fixture(scope="module")
def sample_copies(postgres_admin, postgres_server_url: str, sample_postgres_template: str):
    """Two fresh copies of the sample on the PostgreSQL server: the multi- and the single-worker
    run's warehouses."""
    names = [f"ihc_workers_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    for name in names:
        postgres_admin.execute(f"CREATE DATABASE {name} TEMPLATE {sample_postgres_template}")
    yield [postgres_server_url.rsplit("/", 1)[0] + "/" + name for name in names]
    for name in names:
        postgres_admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def stack(sample_copies, s3_url, tmp_path_factory, trained_engine, airflow_metadata_url):
    root = tmp_path_factory.mktemp("celery")
    extra_env = {
        "ATTRIBUTION_AIRFLOW_DB": airflow_metadata_url,
        "AIRFLOW_CONN_IHC_WAREHOUSE": sample_copies[0],
        **aws_connection(s3_url),
        "ATTRIBUTION_WORK_DIR": f"s3://{BUCKET}/runs",
        "ATTRIBUTION_WORK_CONN_ID": "aws_default",
        "ATTRIBUTION_DATA_DIR": str(root / "data"),
        "ATTRIBUTION_RETRY_DELAY_SECONDS": "1",
        "AIRFLOW_VAR_IHC_CHUNK_SIZE": str(CHUNK_SIZE),
    }
    with LocalStack(
        root / "airflow",
        port=free_port(),
        extra_env=extra_env,
        server_args=["--latency-ms", "300"],
        engine_dir=Path(trained_engine.path).parent,
        workers=len(WORKERS),
    ) as s:
        yield s


def single_worker_run(stack: LocalStack, warehouse_url: str, home: Path) -> None:
    """The same range in one process (``airflow dags test``), local run folder, same IHC server."""
    env = (
        airflow_env(home)
        | local_api_connection(stack.ihc_url, settings.LOCAL_API_KEY)
        | {
            "AIRFLOW_CONN_IHC_WAREHOUSE": warehouse_url,
            "ATTRIBUTION_DATA_DIR": str(home / "data"),
            "AIRFLOW_VAR_IHC_CHUNK_SIZE": str(CHUNK_SIZE),
        }
    )
    for key in ("ATTRIBUTION_WORK_DIR", "ATTRIBUTION_WORK_CONN_ID", "ATTRIBUTION_AIRFLOW_DB"):
        env.pop(key, None)
    migrate_metadata_db(env)
    done = subprocess.run(
        [AIRFLOW, "dags", "test", DAG_ID, "-c", json.dumps(RANGE)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def output_tables(url: str) -> dict[str, list[tuple]]:
    with warehouse.postgres_target(url, "compare").open() as db:
        return {table: db.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3").fetchall() for table in OUTPUT_TABLES}


def test_chunks_run_on_both_workers_through_s3_and_the_tables_equal_a_single_worker_run(
    stack, sample_copies, s3_url, tmp_path
):
    api = AirflowApi(stack.url, *LOGIN)
    api.wait_for_dag(DAG_ID)
    api.patch(f"/dags/{DAG_ID}", {"is_paused": False})

    run_id = api.trigger(DAG_ID, RANGE)
    assert api.wait_run(DAG_ID, run_id) == "success"

    instances = api.task_instances(DAG_ID, run_id)
    chunks = [ti for ti in instances if ti["task_id"] == "attribute_chunk"]
    assert len(chunks) > 4
    assert {ti["hostname"] for ti in chunks} == set(WORKERS)
    assert {ti["hostname"] for ti in instances} <= set(WORKERS), "every task ran on a Celery worker"

    keys = {o["Key"] for o in s3_client(s3_url).list_objects_v2(Bucket=BUCKET, Prefix="runs/")["Contents"]}
    chunk_files = {k for k in keys if "/chunks/" in k}
    result_files = {k for k in keys if "/results/" in k}
    assert len(chunk_files) == len(result_files) == len(chunks)
    assert any(k.endswith("/summary.json") for k in keys)
    latest = Path(stack.extra_env["ATTRIBUTION_DATA_DIR"]) / "output" / "channel_reporting.csv"
    assert latest.is_file(), "the latest CSV where the stack's report page reads it"
    for worker in WORKERS:
        assert not (stack.worker_home(int(worker.rsplit("-", 1)[1])) / "data" / "runs").exists(), (
            "no run file on a worker's disk"
        )

    single_worker_run(stack, sample_copies[1], tmp_path / "single")
    multi, single = output_tables(sample_copies[0]), output_tables(sample_copies[1])
    assert all(multi[table] for table in OUTPUT_TABLES)
    assert multi == single
