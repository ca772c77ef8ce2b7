"""Guess a target spec from what a repository contains (pytest, Maven, Zig, Cargo, Make)."""

from __future__ import annotations

from pathlib import Path

from agent.config import TargetSpec, parse_spec


def _bench_script(repo: Path) -> str | None:
    for name in ("bench.py", "benchmark.py", "benchmarks/bench.py", "bench/bench.py"):
        if (repo / name).is_file():
            return name
    return None


def guess(repo: Path) -> tuple[TargetSpec, str] | None:
    """A spec and the reason for the guess, or None when nothing is recognised."""
    name = repo.resolve().name
    if (repo / "pom.xml").is_file():
        return parse_spec({
            "name": name,
            "build": {"cmd": "mvn -q -o -DskipTests package", "timeout": "15m"},
            "test": {"cmd": "mvn -q -o test", "timeout": "30m"},
            "bench": {"cmd": "mvn -q -o test", "timeout": "30m"},
            "guard": {"protected": ["src/test/**", "pom.xml", "optimize.toml"]},
            "profile": {"kind": "jfr"},
        }, "guess"), "pom.xml found: a Maven project (bench is the test suite's wall time until you set [bench])"
    if (repo / "build.zig").is_file():
        return parse_spec({
            "name": name,
            "build": {"cmd": "python -m ziglang build -Doptimize=ReleaseFast"},
            "test": {"cmd": "python -m ziglang build test"},
            "bench": {"cmd": "python -m ziglang build run -Doptimize=ReleaseFast"},
            "guard": {"protected": ["build.zig", "optimize.toml"]},
            "profile": {"kind": "perf"},
        }, "guess"), "build.zig found: a Zig project"
    if (repo / "Cargo.toml").is_file():
        return parse_spec({
            "name": name,
            "build": {"cmd": "cargo build --release"},
            "test": {"cmd": "cargo test --release"},
            "bench": {"cmd": "cargo run --release"},
            "guard": {"protected": ["tests/**", "benches/**", "Cargo.toml", "optimize.toml"]},
            "profile": {"kind": "perf"},
        }, "guess"), "Cargo.toml found: a Rust project"
    python = any(repo.glob("*.py")) or (repo / "pyproject.toml").is_file() or (repo / "setup.py").is_file()
    tests = (repo / "tests").is_dir() or any(repo.glob("test_*.py"))
    if python and tests:
        bench = _bench_script(repo)
        protected = ["tests/**", "test_*.py", "conftest.py", "optimize.toml"] + ([bench] if bench else [])
        return parse_spec({
            "name": name,
            "test": {"cmd": "python -m pytest -q -p no:cacheprovider"},
            "bench": {"cmd": f"python {bench}" if bench else "python -m pytest -q -p no:cacheprovider"},
            "guard": {"protected": protected},
            "profile": {"kind": "py-spy"},
        }, "guess"), "a Python project with pytest tests" + (f"; {bench} is the benchmark" if bench else
                                                             " (no bench script: the tests' wall time is the benchmark)")
    if (repo / "Makefile").is_file():
        return parse_spec({
            "name": name,
            "build": {"cmd": "make"},
            "test": {"cmd": "make test"},
            "bench": {"cmd": "make bench"},
            "guard": {"protected": ["Makefile", "optimize.toml"]},
            "profile": {"kind": "perf"},
        }, "guess"), "Makefile found: make / make test / make bench"
    return None
