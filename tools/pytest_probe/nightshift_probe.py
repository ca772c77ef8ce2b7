"""A pytest plugin the harness loads into the target's own test run (`-p nightshift_probe` in
PYTEST_ADDOPTS, this folder on PYTHONPATH). It writes, as JSON into the folder named by
NIGHTSHIFT_TEST_REPORTS: every test pytest collected and its outcome with the first line of its
failure, the tests deselected, the configuration file pytest read and every plugin it loaded
(conftest files included) with its source file. `tools/testreport.py` reads it.

It runs inside code the model may have changed, so it is evidence, not proof: the harness compares
it with the unmodified code's run. Nested pytest sessions (tests that run pytest) are not probed.
"""

from __future__ import annotations

import inspect
import json
import os
import time
from pathlib import Path

import pytest

_OUT = os.environ.pop("NIGHTSHIFT_TEST_REPORTS", None)  # popped: child processes do not inherit it
_state: dict = {"collected": [], "deselected": [], "results": {}, "plugins": [], "config": [], "errors": []}


def _source(plugin: object) -> str | None:
    path = getattr(plugin, "__file__", None)
    if path is None:
        try:
            path = inspect.getsourcefile(plugin if inspect.isclass(plugin) or inspect.ismodule(plugin) else type(plugin))
        except (TypeError, OSError):
            return None
    return str(Path(path).resolve()) if path else None


def pytest_plugin_registered(plugin: object) -> None:
    if _OUT and (src := _source(plugin)) and src not in _state["plugins"]:
        _state["plugins"].append(src)


def pytest_configure(config: pytest.Config) -> None:
    if config.inipath:
        _state["config"].append(str(Path(config.inipath).resolve()))
    _state["rootdir"] = str(config.rootpath)
    _state["cwd"] = os.getcwd()


def _id(nodeid: str) -> str:
    """A test id relative to where the test command ran (the worktree), not to pytest's rootdir: an ini file
    in a folder above the worktree makes that folder the rootdir, and every id would then carry the
    worktree's own path, different for the best and the candidate."""
    path, sep, rest = nodeid.partition("::")
    try:
        rel = (Path(_state["rootdir"]) / path).resolve().relative_to(Path(_state["cwd"]).resolve())
    except (KeyError, ValueError):
        return nodeid
    return rel.as_posix() + sep + rest


def pytest_deselected(items: list[pytest.Item]) -> None:
    _state["deselected"] += [_id(item.nodeid) for item in items]


def pytest_collection_finish(session: pytest.Session) -> None:
    _state["collected"] = [_id(item.nodeid) for item in session.items]


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _state["errors"].append({"id": _id(report.nodeid) if report.nodeid else "(collection)", "message": _first_line(report)})


def _first_line(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # a skip: (path, line, reason)
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(longrepr or "")
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    results, key = _state["results"], _id(report.nodeid)
    previous = results.get(key, {}).get("outcome")
    if hasattr(report, "wasxfail"):
        outcome = "skipped" if report.skipped else "passed"  # xfailed counts as skipped, xpassed as passed
    elif report.failed:
        outcome = "failed" if report.when == "call" else "error"
    elif report.skipped:
        outcome = "skipped"
    elif report.when == "call":
        outcome = "passed"
    else:
        return  # a passing setup or teardown says nothing yet
    if previous in ("failed", "error", "skipped") and outcome == "passed":
        return
    message = f"xfail: {report.wasxfail}" if hasattr(report, "wasxfail") else _first_line(report)
    results[key] = {"outcome": outcome, "message": "" if outcome == "passed" else message}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _OUT:
        return
    folder = Path(_OUT)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"pytest-{os.getpid()}-{time.monotonic_ns()}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**_state, "exitstatus": int(exitstatus)}))
    tmp.replace(path)
