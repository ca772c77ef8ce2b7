"""tools/maven.py against a real, tiny Maven project (one passing and one failing JUnit 5 test).

Runs Maven offline: `make -C targets/matching-engine setup` fetches the same plugin and JUnit versions."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tools import maven
from tools.maven import jvm_versions, surefire_failures

M2 = Path.home() / ".m2/repository"
needs_maven = pytest.mark.skipif(
    not shutil.which("mvn") or not (M2 / "org/apache/maven/surefire/surefire-junit-platform/3.2.5").is_dir(),
    reason="Maven or the offline artifacts are missing: run make -C targets/matching-engine setup",
)

POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>t</groupId><artifactId>tiny</artifactId><version>1</version>
  <properties>
    <maven.compiler.release>17</maven.compiler.release>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
  </properties>
  <dependencies>
    <dependency><groupId>org.junit.jupiter</groupId><artifactId>junit-jupiter</artifactId>
      <version>5.10.2</version><scope>test</scope></dependency>
  </dependencies>
  <build><plugins>
    <plugin><artifactId>maven-resources-plugin</artifactId><version>3.3.1</version></plugin>
    <plugin><artifactId>maven-compiler-plugin</artifactId><version>3.13.0</version></plugin>
    <plugin><artifactId>maven-surefire-plugin</artifactId><version>3.2.5</version></plugin>
  </plugins></build>
</project>
"""

TEST = """package t;
import static org.junit.jupiter.api.Assertions.assertEquals;
import org.junit.jupiter.api.Test;
class MathTest {
    @Test void adds() { assertEquals(4, 2 + 2); }
    @Test void multiplies() { assertEquals(5, 2 * 2, "two times two"); }
    @Test void explodes() { throw new IllegalStateException("boom\\nsecond line"); }
}
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny-maven")
    (root / "pom.xml").write_text(POM)
    src = root / "src/test/java/t"
    src.mkdir(parents=True)
    (src / "MathTest.java").write_text(TEST)
    return root


def mvn(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mvn", "-B", "-q", "-o", *args], cwd=root, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@needs_maven
def test_failures_parsed_from_real_surefire_reports(tiny: Path) -> None:
    proc = mvn(tiny, "test")
    assert proc.returncode != 0
    failures = surefire_failures(tiny)
    assert sorted(failures) == [
        "t.MathTest#explodes: boom",
        "t.MathTest#multiplies: two times two ==> expected: <5> but was: <4>",
    ]


@pytest.mark.slow
@needs_maven
def test_selection_flag_runs_only_the_chosen_test(tiny: Path) -> None:
    proc = mvn(tiny, "test", maven.test_selection_flag(["t.MathTest#adds"]))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert surefire_failures(tiny) == []


def test_no_reports_means_no_failures(tmp_path: Path) -> None:
    assert surefire_failures(tmp_path) == []


def test_selection_flag_groups_methods_by_class() -> None:
    flag = maven.test_selection_flag(["a.b.FooTest#one", "FooTest#two", "a.BarTest", "FooTest#one", "a.Baz#p(int)[1]"])
    assert flag == "-Dtest=FooTest#one+two,BarTest,Baz#p"


@needs_maven
def test_jvm_versions_name_both_tools() -> None:
    v = jvm_versions()
    assert v["java"] and "version" in v["java"]
    assert v["maven"] and v["maven"].startswith("Apache Maven")
