"""A small client of Airflow 3's REST API (/api/v2) for tests that drive a real deployment."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

TERMINAL = ("success", "failed")


class AirflowApi:
    def __init__(self, url: str, username: str, password: str) -> None:
        self.url = url
        self.token = self._call("POST", "/auth/token", {"username": username, "password": password})["access_token"]

    def raw(self, method: str, path: str, body: object = None) -> bytes:
        """The answer's body, as this user (path from the server root)."""
        headers = {"Content-Type": "application/json"}
        if getattr(self, "token", None):
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.read()
        except urllib.error.HTTPError as err:
            raise AssertionError(f"{method} {path}: HTTP {err.code} {err.read()[:500]!r}") from None

    def _call(self, method: str, path: str, body: object = None) -> object:
        raw = self.raw(method, path, body)
        return json.loads(raw) if raw else None

    def get(self, path: str) -> dict:
        return self._call("GET", "/api/v2" + path)

    def post(self, path: str, body: object) -> dict:
        return self._call("POST", "/api/v2" + path, body)

    def patch(self, path: str, body: object) -> dict:
        return self._call("PATCH", "/api/v2" + path, body)

    def delete(self, path: str) -> None:
        self._call("DELETE", "/api/v2" + path)

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.get(f"/dags/{dag_id}")
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def set_variable(self, key: str, value: object) -> None:
        body = {"key": key, "value": str(value)}
        try:
            self.patch(f"/variables/{key}", body)
        except AssertionError:
            self.post("/variables", body)

    def trigger(self, dag_id: str, conf: dict) -> str:
        return self.post(f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})["dag_run_id"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.get(f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in TERMINAL:
                return state
            time.sleep(1)
        raise AssertionError(f"run {run_id} did not finish within {timeout} s")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000")["task_instances"]

    def runs(self, dag_id: str) -> list[dict]:
        return self.get(f"/dags/{dag_id}/dagRuns?limit=1000")["dag_runs"]

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> object:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value")["value"]
