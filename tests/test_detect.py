"""`optimize init`: guesses for real project layouts, JDK module-access advice, and `--check` on a real project."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import parse_spec
from tools import detect

ROOT = Path(__file__).resolve().parents[1]


def layout(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def guessed(root: Path) -> tuple[dict, str]:
    found = detect.guess(root)
    assert found is not None
    parse_spec(found[0], "guess")  # every guess is a valid spec
    return found


def test_maven_with_a_throughput_test(tmp_path: Path) -> None:
    repo = layout(tmp_path, {"pom.xml": "<project/>", "src/main/java/a/Engine.java": "class Engine {}",
                             "src/test/java/a/EngineTest.java": "class EngineTest {}",
                             "src/test/java/a/ThroughputTest.java":
                                 'class ThroughputTest { void t() { System.out.println("rate: " + r + " MT/s"); } }'})
    data, why = guessed(repo)
    assert data["test"]["cmd"] == "mvn -B -o test"  # no -q; the XML reports give the inventory anyway
    assert "-Dtest=ThroughputTest" in data["bench"]["cmd"]
    assert "ThroughputTest.java is the bench" in why and "MT/s" in why


def test_maven_with_jmh(tmp_path: Path) -> None:
    pom = "<project><dependency><groupId>org.openjdk.jmh</groupId></dependency></project>"
    repo = layout(tmp_path, {"pom.xml": "<project><modules><module>bench</module></modules></project>",
                             "bench/pom.xml": pom})
    data, why = guessed(repo)
    assert data["bench"]["cmd"].startswith("java -jar bench/target/benchmarks.jar")
    assert "JMH" in why
    sample = "Benchmark          Mode  Cnt     Score    Error  Units\nBook.match        thrpt    3  1234.567 ± 12.3  ops/s\n"
    assert re.findall(data["bench"]["metric"]["regex"], sample) == ["1234.567"]


def test_python_bench_script_with_seed_gets_a_metric_and_a_holdout(tmp_path: Path) -> None:
    bench = ('import argparse\np = argparse.ArgumentParser()\np.add_argument("--seed", type=int, default=7)\n'
             'print(f"checksum: {c}")\nprint(f"throughput: {n / t / 1000:.2f} klines/s")\n')
    repo = layout(tmp_path, {"lib.py": "", "tests/test_lib.py": "", "bench.py": bench,
                             "tests/conftest.py": 'def pytest_addoption(parser):\n    parser.addoption("--seed")\n'})
    data, why = guessed(repo)
    assert data["test"]["cmd"].endswith("--seed {seed}")
    assert data["bench"]["metric"]["regex"] == "throughput: ([0-9.]+)" and data["bench"]["metric"]["unit"] == "klines/s"
    assert data["bench"]["same_output"] == ["^checksum"]
    assert data["bench"]["holdout"] == {"args": "--seed {seed}", "runs": 2}
    assert "hold-out" in why


def test_python_pyperf_and_asv(tmp_path: Path) -> None:
    repo = layout(tmp_path / "a", {"lib.py": "", "tests/test_lib.py": "",
                                   "benchmarks/bench_parse.py": "import pyperf\nrunner = pyperf.Runner()\n"})
    data, why = guessed(repo)
    assert data["bench"]["cmd"] == "python benchmarks/bench_parse.py --fast --quiet" and "pyperf" in why
    repo = layout(tmp_path / "b", {"lib.py": "", "tests/test_lib.py": "", "asv.conf.json": "{}"})
    data, why = guessed(repo)
    assert "asv run --python=same --quick" in data["bench"]["cmd"]


def test_cargo_bench_and_go_bench(tmp_path: Path) -> None:
    data, _ = guessed(layout(tmp_path / "rs", {"Cargo.toml": "[dev-dependencies]\ncriterion = '0.5'\n"}))
    assert data["bench"]["cmd"] == "cargo bench --offline" and "-q" not in data["test"]["cmd"]
    data, _ = guessed(layout(tmp_path / "go", {"go.mod": "module x\n", "x_test.go": "func BenchmarkX(b *testing.B) {}\n"}))
    assert data["test"]["cmd"] == "go test -json ./..." and "-bench ." in data["bench"]["cmd"]


def test_nothing_recognisable(tmp_path: Path) -> None:
    assert detect.guess(layout(tmp_path, {"README": "hello"})) is None


REFLECT = """import java.lang.reflect.Field;
public class Reflect {
    public static void main(String[] args) throws Exception {
        Field f = String.class.getDeclaredField("value");
        f.setAccessible(true);
        System.out.println("opened");
    }
}
"""


@pytest.mark.skipif(not shutil.which("java"), reason="no JDK")
def test_add_opens_from_a_real_jdk_module_access_failure(tmp_path: Path) -> None:
    (tmp_path / "Reflect.java").write_text(REFLECT)
    denied = subprocess.run(["java", "Reflect.java"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert denied.returncode != 0 and "InaccessibleObjectException" in denied.stderr
    flags = detect.add_opens(denied.stdout + denied.stderr)
    assert flags == ["--add-opens java.base/java.lang=ALL-UNNAMED"]
    fixed = subprocess.run(["java", *flags[0].split(), "Reflect.java"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=120)
    assert fixed.returncode == 0 and "opened" in fixed.stdout


def optimize(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from agent.cli import main; main()", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=900, env={**os.environ, "COLUMNS": "300"})


@pytest.mark.slow
def test_init_check_on_the_loganalyzer_project(tmp_path: Path) -> None:
    # the bundled project without its optimize.toml, as a user would bring it: guess, then run the guess once
    repo = tmp_path / "loganalyzer"
    shutil.copytree(ROOT / "targets/loganalyzer", repo, ignore=shutil.ignore_patterns("optimize.toml", "showcase*",
                                                                                       "__pycache__"))
    done = optimize("init", "--repo", str(repo), "--check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "hold-out" in done.stdout and "takes --seed" in done.stdout
    assert "✓ tests (python -m pytest -q -p no:cacheprovider --seed {seed}): " in done.stdout
    assert "test gate by test identity: 7 passed" in done.stdout
    assert "klines/s in" in done.stdout and "✓ same_output: 1 checked line(s)" in done.stdout
    assert "✓ hold-out (python bench.py --seed {seed}): runs" in done.stdout
    assert not (repo / ".pytest_cache").exists() and not list(repo.rglob("__pycache__"))  # checked on a copy
    # a broken spec is named, exit 2
    (repo / "optimize.toml").write_text((repo / "optimize.toml").read_text().replace("python bench.py", "python nope.py"))
    bad = optimize("init", "--repo", str(repo), "--check")
    assert bad.returncode == 2 and "✗ bench (python nope.py)" in bad.stdout, bad.stdout + bad.stderr
