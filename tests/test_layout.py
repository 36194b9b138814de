"""The house rules, read from the code: the pipeline imports no tool and no Airflow, the DAG
folder imports the pipeline and nothing of the tools, and every path the docs name exists."""

from __future__ import annotations

import ast
import hashlib
import re
import subprocess
from pathlib import Path

import pytest

from include import settings

ROOT = settings.PROJECT_ROOT
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def top_level(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


@pytest.mark.parametrize("path", sorted((ROOT / "include").glob("*.py")), ids=lambda p: p.name)
def test_the_pipeline_package_imports_neither_tools_nor_airflow(path: Path) -> None:
    assert top_level(imported_modules(path)) & {"tools", "airflow", "tests", "dags"} == set()


@pytest.mark.parametrize("path", sorted((ROOT / "dags").glob("*.py")), ids=lambda p: p.name)
def test_the_dag_folder_imports_the_pipeline_and_airflow_but_no_tool(path: Path) -> None:
    assert "tools" not in top_level(imported_modules(path))


def test_the_dag_file_imports_only_the_pipeline_its_helpers_and_the_compat_module() -> None:
    ours = top_level(imported_modules(ROOT / "dags" / "ihc_attribution.py")) - {"__future__", "datetime", "pendulum"}
    assert ours == {"include", "run_context", "failure_alerts", "airflow_compat"}


@pytest.mark.parametrize("path", sorted((ROOT / "plugins").glob("*.py")), ids=lambda p: p.name)
def test_the_airflow_plugins_import_the_pipeline_and_airflow_but_no_tool(path: Path) -> None:
    assert top_level(imported_modules(path)) & {"tools", "tests", "dags"} == set()


@pytest.mark.parametrize("path", sorted((ROOT / "tools").glob("*.py")), ids=lambda p: p.name)
def test_tools_do_not_import_the_dags(path: Path) -> None:
    assert (
        top_level(imported_modules(path)) & {"dags", "run_context", "failure_alerts", "airflow_compat", "tests"}
        == set()
    )


# A path in backticks or a link target: a folder or file of this repository.
PATH = re.compile(
    r"(?:`|\]\()((?:dags|include|plugins|tools|tests|docs|bench|\.ci)/[\w./-]*|[\w-]+\.(?:md|yml|txt|toml))[`)]"
)


# Folders the project writes and git ignores (bench/data/, ...): named in the docs, absent in a clone.
GENERATED = {
    line.strip().rstrip("/")
    for line in (ROOT / ".gitignore").read_text().splitlines()
    if line.strip() and not line.startswith("#")
}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_path_the_docs_name_exists(doc: Path) -> None:
    named = {match.group(1).rstrip("/.") for match in PATH.finditer(doc.read_text())} - GENERATED
    assert named, f"{doc.name} names no path at all: the pattern is wrong"
    missing = sorted(name for name in named if not (ROOT / name).exists())
    assert missing == [], f"{doc.name} names paths that do not exist"


def test_the_readme_lists_every_variable_with_its_declared_bounds_and_default() -> None:
    rows = {
        match.group(1): (match.group(2), match.group(3))
        for match in re.finditer(
            r"^\|[^|]*\| Variable `(\w+)`[^|]*\| ([^|]+) \| ([^|]+) \|$", DOCS[0].read_text(), re.M
        )
    }
    assert rows.pop(settings.FAILURE_NOTIFIER)[1] == "unset", "the notifier Variable is optional"
    assert {v.name: (v.bounds, v.default) for v in settings.VARIABLES} == {
        name: (bounds, float(default)) for name, (bounds, default) in rows.items()
    }


def make(*args: str) -> str:
    return subprocess.run(["make", "-s", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize(("target", "tool"), [("server", "tools.local_server"), ("airflow", "tools.local_stack")])
def test_make_help_shows_the_port_the_target_uses(target: str, tool: str) -> None:
    described = next(line for line in make("help").splitlines() if line.split()[:1] == [target])
    port = re.search(rf"-m {tool} --port (\d+)", make("-n", target)).group(1)
    assert f"127.0.0.1:{port} " in described and "$(" not in described
    assert target != "server" or int(port) == settings.LOCAL_API_PORT


def test_make_help_lists_every_target_with_what_it_does() -> None:
    makefile = (ROOT / "Makefile").read_text()
    phony = set(re.search(r"^\.PHONY: (.+)$", makefile, re.M).group(1).split())
    done = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True)
    described = {line.split()[0] for line in done.stdout.splitlines() if len(line.split()) > 1}
    assert phony <= described, f"targets without a '## ...' description: {sorted(phony - described)}"


# sha256 of the Apache License 2.0 as the ASF publishes it (LICENSE-2.0.txt).
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"


def test_the_license_is_the_apache_license_2_under_the_projects_copyright() -> None:
    copyright_line, text = (ROOT / "LICENSE").read_bytes().split(b"\n", 1)
    assert copyright_line == b"Copyright 2026 The IHC attribution pipeline authors"
    assert hashlib.sha256(text).hexdigest() == APACHE_2_SHA256, "the standard text, unchanged"
    assert "Apache License 2.0" in DOCS[0].read_text() and "[LICENSE](LICENSE)" in DOCS[0].read_text()
