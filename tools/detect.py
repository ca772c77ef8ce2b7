"""Guess a target spec from what a repository contains: Maven, Gradle, Zig, Cargo, Go, Python, Make.

Returns plain data (the caller validates it as a TargetSpec) and the reasons for each choice, so a
user sees what was guessed and why. Test commands are chosen so the harness can read their test
inventory (no `-q` where it would hide per-test lines; Maven's XML reports are read whatever the
console says); benchmarks prefer the project's own: JMH, throughput/perf tests, criterion,
pytest-benchmark, asv, pyperf, a bench script. `add_opens` turns a JDK module-access failure into the
`--add-opens` flags that fix it.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

SKIP = {".git", "node_modules", "target", "build", ".venv", "venv", "__pycache__", ".tox", "dist"}


def _files(repo: Path, suffix: str, limit: int = 5000) -> list[Path]:
    """Files with `suffix` under repo, build outputs and vendored folders skipped, symlinks not followed."""
    out: list[Path] = []
    for folder, dirs, files in os.walk(repo):
        dirs[:] = sorted(d for d in dirs if d not in SKIP)
        out += [Path(folder) / f for f in sorted(files) if f.endswith(suffix)]
        if len(out) >= limit:
            break
    return out


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _bench_script(repo: Path) -> str | None:
    for name in ("bench.py", "benchmark.py", "benchmarks/bench.py", "bench/bench.py"):
        if (repo / name).is_file():
            return name
    return None


def guess(repo: Path) -> tuple[dict, str] | None:
    """Spec data and the reasons for the guess (one string, '; '-separated), or None when nothing is recognised."""
    for kind in (_maven, _gradle, _zig, _cargo, _go, _python, _make):
        if (found := kind(repo)) is not None:
            data, reasons = found
            return {"name": repo.resolve().name, **data}, "; ".join(reasons)
    return None


# --- JVM ---------------------------------------------------------------------------------------------

JMH_METRIC = {"regex": r"\s(?:thrpt|avgt)\s+\d+\s+([0-9.]+)", "unit": "score", "better": "higher"}
PERF_TEST = re.compile(r"(Perf|Performance|Throughput|Latency|Benchmark|Bench)\w*\.java$")
RATE = re.compile(r'"[^"\n]*?([A-Za-z]+/s(?:ec)?)\b')  # a printed rate like "... MT/s" or "ops/sec"


def _perf_tests(repo: Path) -> list[Path]:
    return [p for p in _files(repo, ".java") if "/src/test/" in p.as_posix() and PERF_TEST.search(p.name)]


def _maven(repo: Path) -> tuple[dict, list[str]] | None:
    if not (repo / "pom.xml").is_file():
        return None
    poms = "\n".join(_read(p) for p in _files(repo, "pom.xml"))
    reasons = ["pom.xml found: a Maven project",
               "tests: `mvn -B -o test` (offline: dependencies come from ~/.m2, which the sandbox shows read-only); "
               "the test inventory is read from Surefire's XML reports"]
    data: dict = {"build": {"cmd": "mvn -B -q -o -DskipTests package", "timeout": "15m"},
                  "test": {"cmd": "mvn -B -o test", "timeout": "30m"},
                  "guard": {"protected": ["src/test/**", "optimize.toml"]}, "profile": {"kind": "jfr"}}
    if "org.openjdk.jmh" in poms:
        jar = next((p.relative_to(repo).as_posix() for p in _files(repo, "pom.xml")
                    if "jmh" in _read(p) and p.parent != repo), "")
        where = f"{Path(jar).parent.as_posix()}/" if jar else ""
        data["bench"] = {"cmd": f"java -jar {where}target/benchmarks.jar -f 1 -wi 2 -i 3", "timeout": "30m",
                         "metric": JMH_METRIC}
        reasons.append("JMH found: the bench runs the benchmarks jar; the metric is the last benchmark's score "
                       "(narrow it to one benchmark with a name pattern after the jar)")
    elif perf := _perf_tests(repo):
        test = perf[0]
        data["bench"] = {"cmd": f"mvn -B -q -o test -Dtest={test.stem} -Dsurefire.failIfNoSpecifiedTests=false",
                         "timeout": "30m"}
        unit = RATE.search(_read(test))
        reasons.append(f"performance test {test.relative_to(repo)} is the bench (its wall time"
                       + (f"; it prints a rate in {unit.group(1)}: set [bench] metric to parse it" if unit else "")
                       + ")" + (f"; others: {', '.join(p.stem for p in perf[1:4])}" if len(perf) > 1 else ""))
    else:
        data["bench"] = {"cmd": "mvn -B -q -o test", "timeout": "30m"}
        reasons.append("no JMH or performance test found: the bench is the test suite's wall time until you set it")
    return data, reasons


def _gradle(repo: Path) -> tuple[dict, list[str]] | None:
    scripts = [n for n in ("build.gradle", "build.gradle.kts") if (repo / n).is_file()]
    if not scripts:
        return None
    gradle = "./gradlew" if (repo / "gradlew").is_file() else "gradle"
    text = "\n".join(_read(repo / n) for n in scripts)
    reasons = [f"{scripts[0]} found: a Gradle project ({gradle}, offline); the test inventory is read from "
               "build/test-results XML"]
    bench: dict = {"cmd": f"{gradle} --offline -q test", "timeout": "30m"}
    if "jmh" in text:
        bench = {"cmd": f"{gradle} --offline jmh", "timeout": "30m", "metric": JMH_METRIC}
        reasons.append("the JMH plugin is applied: `gradle jmh` is the bench")
    else:
        reasons.append("no JMH: the bench is the test suite's wall time until you set it")
    return {"build": {"cmd": f"{gradle} --offline -q assemble", "timeout": "15m"},
            "test": {"cmd": f"{gradle} --offline test", "timeout": "30m"}, "bench": bench,
            "guard": {"protected": ["src/test/**", "optimize.toml"]}, "profile": {"kind": "jfr"}}, reasons


_OPENS = re.compile(r'module ([\w.]+) does not "opens ([\w.]+)" to unnamed module')
_EXPORTS = re.compile(r'module ([\w.]+) does not "exports ([\w.]+)" to unnamed module')


def add_opens(output: str) -> list[str]:
    """JDK flags that fix the module-access failures in a build or test log (InaccessibleObjectException,
    IllegalAccessError): `--add-opens java.base/java.lang=ALL-UNNAMED` and the like, each once."""
    flags = [f"--add-opens {m}/{p}=ALL-UNNAMED" for m, p in _OPENS.findall(output)]
    flags += [f"--add-exports {m}/{p}=ALL-UNNAMED" for m, p in _EXPORTS.findall(output)]
    return list(dict.fromkeys(flags))


# --- native --------------------------------------------------------------------------------------------

def _zig(repo: Path) -> tuple[dict, list[str]] | None:
    if not (repo / "build.zig").is_file():
        return None
    return {"build": {"cmd": "python -m ziglang build -Doptimize=ReleaseFast"},
            "test": {"cmd": "python -m ziglang build test"},
            "bench": {"cmd": "python -m ziglang build run -Doptimize=ReleaseFast"},
            "guard": {"protected": ["optimize.toml"]}, "profile": {"kind": "perf"}}, [
        "build.zig found: a Zig project (its test runner reports no per-test ids: the run will say the test gate is weak)"]


def _cargo(repo: Path) -> tuple[dict, list[str]] | None:
    if not (repo / "Cargo.toml").is_file():
        return None
    toml = _read(repo / "Cargo.toml")
    reasons = ["Cargo.toml found: a Rust project; `cargo test` without -q, so libtest names every test"]
    if "criterion" in toml or (repo / "benches").is_dir():
        bench = {"cmd": "cargo bench --offline", "timeout": "30m"}
        reasons.append("benches/ or criterion found: `cargo bench` is the bench (its wall time; narrow it with a "
                       "bench name)")
    else:
        bench = {"cmd": "cargo run --release --offline"}
        reasons.append("no benches: `cargo run --release` is the bench")
    return {"build": {"cmd": "cargo build --release --offline"}, "test": {"cmd": "cargo test --release --offline"},
            "bench": bench, "guard": {"protected": ["tests/**", "benches/**", "optimize.toml"]},
            "profile": {"kind": "perf"}}, reasons


def _go(repo: Path) -> tuple[dict, list[str]] | None:
    if not (repo / "go.mod").is_file():
        return None
    has_bench = any("func Benchmark" in _read(p) for p in _files(repo, "_test.go")[:500])
    bench = ({"cmd": "go test -run '^$' -bench . -benchtime 1x ./..."} if has_bench
             else {"cmd": "go test ./..."})
    return {"build": {"cmd": "go build ./..."}, "test": {"cmd": "go test -json ./..."}, "bench": bench,
            "guard": {"protected": ["**/*_test.go", "optimize.toml"]}, "profile": {"kind": "perf"}}, [
        "go.mod found: a Go module; `go test -json` names every test",
        "Benchmark functions found: `go test -bench` is the bench" if has_bench else "no Benchmark functions: the "
        "bench is the test suite's wall time until you set it"]


def _make(repo: Path) -> tuple[dict, list[str]] | None:
    if not (repo / "Makefile").is_file():
        return None
    return {"build": {"cmd": "make"}, "test": {"cmd": "make test"}, "bench": {"cmd": "make bench"},
            "guard": {"protected": ["optimize.toml"]}, "profile": {"kind": "perf"}}, [
        "Makefile found: make / make test / make bench"]


# --- Python --------------------------------------------------------------------------------------------

CHECKED = re.compile(r"print\(f?[\"']((checksum|result|digest|hash|total|count)\w*)\s*[:=]", re.IGNORECASE)


def _python(repo: Path) -> tuple[dict, list[str]] | None:
    python = any(repo.glob("*.py")) or (repo / "pyproject.toml").is_file() or (repo / "setup.py").is_file()
    tests = (repo / "tests").is_dir() or (repo / "test").is_dir() or any(repo.glob("test_*.py"))
    if not (python and tests):
        return None
    pytest = "python -m pytest -q -p no:cacheprovider"
    reasons = ["a Python project with pytest tests (the harness reads pytest's own test ids)"]
    protected = ["tests/**", "test/**", "test_*.py", "optimize.toml"]
    conftests = "\n".join(_read(p) for p in repo.glob("**/conftest.py") if not SKIP & set(p.parts))
    test_cmd = pytest + (" --seed {seed}" if re.search(r"addoption\(\s*[\"']--seed", conftests) else "")
    if "{seed}" in test_cmd:
        reasons.append("the tests take --seed: each verification passes a fresh one")
    bench: dict = {"cmd": pytest}
    sources = {p: _read(p) for p in _files(repo, ".py")[:2000]}
    script = _bench_script(repo)
    pyperf = next((p for p, t in sources.items() if re.search(r"^\s*import pyperf|^\s*from pyperf", t, re.M)
                   and "bench" in p.as_posix()), None)
    uses_benchmark = any(re.search(r"def test_\w+\([^)]*\bbenchmark\b", t) for t in sources.values())
    if (repo / "asv.conf.json").is_file():
        bench = {"cmd": "python -m asv run --python=same --quick --show-stderr --machine nightshift", "timeout": "30m"}
        reasons.append("asv.conf.json found: asv runs the benchmarks once each in this environment (its wall time)")
    elif pyperf is not None:
        bench = {"cmd": f"python {pyperf.relative_to(repo).as_posix()} --fast --quiet", "timeout": "30m"}
        protected.append(pyperf.relative_to(repo).as_posix())
        reasons.append(f"{pyperf.relative_to(repo)} uses pyperf: it is the bench (--fast; its wall time)")
    elif script:
        text = (repo / script).read_text(errors="replace")
        bench = {"cmd": f"python {script}"}
        protected.append(script)
        reasons.append(f"{script} is the benchmark")
        if m := re.search(r"([\w ]+): \{[^}]*\}\s*(k?[\w/]+/s)\"", text):
            bench["metric"] = {"regex": rf"{re.escape(m.group(1).strip())}: ([0-9.]+)", "unit": m.group(2),
                               "better": "higher"}
            reasons.append(f"it prints '{m.group(1).strip()}' in {m.group(2)}: that is the metric")
        checked = CHECKED.search(text)
        if checked:
            bench["same_output"] = [f"^{checked.group(1)}"]
        if "{seed}" not in script and re.search(r"[\"']--seed[\"']", text):
            if checked:
                bench["holdout"] = {"args": "--seed {seed}", "runs": 2}
                reasons.append(f"{script} takes --seed: a hold-out runs it on seeds the model never sees, "
                               f"its '{checked.group(1)}' line must match the unmodified code's")
            else:
                reasons.append(f"{script} takes --seed: add [bench] same_output and holdout = "
                               "{ args = '--seed {seed}' } to check answers on inputs the model never sees")
    elif uses_benchmark and importlib.util.find_spec("pytest_benchmark") is not None:
        bench = {"cmd": f"{pytest} --benchmark-only"}
        test_cmd += " --benchmark-disable"
        reasons.append("pytest-benchmark tests found: `--benchmark-only` is the bench, the tests run with "
                       "--benchmark-disable")
    else:
        reasons.append("no bench script, pyperf, asv or pytest-benchmark: the tests' wall time is the benchmark")
    return {"test": {"cmd": test_cmd}, "bench": bench, "guard": {"protected": protected},
            "profile": {"kind": "py-spy"}}, reasons
