"""Every bad input gets one clear message, a documented exit code, no traceback, and changes nothing."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import pytest

from tests.test_loop import optimize
from tests.tiny_target import SPEC, git, make_repo, transcript


def refs(repo: Path) -> str:
    return git(repo, "for-each-ref") + git(repo, "status", "--porcelain") + git(repo, "worktree", "list")


def run_bad(tmp_path: Path, repo: Path, *extra: str, code: int, says: list[str]) -> None:
    before = refs(repo) if (repo / ".git").exists() else None
    script = transcript(tmp_path / "t.jsonl")
    args = ["--repo", str(repo), "--runs-dir", str(tmp_path / "runs"), "--no-profile", *extra]
    if "--llm" not in extra:
        args += ["--llm", f"replay:{script}"]
    r = optimize(*args)
    assert r.returncode == code, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    for words in says:
        assert words in r.stderr, r.stderr
    if before is not None:
        assert refs(repo) == before


def test_missing_repo(tmp_path: Path) -> None:
    run_bad(tmp_path, tmp_path / "nope", code=2, says=["no such directory", "bundled"])


def test_repo_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    run_bad(tmp_path, tmp_path / "f.txt", code=2, says=["not a directory"])


def test_plain_folder_with_nothing_recognisable(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hello")
    run_bad(tmp_path, tmp_path / "empty", code=2, says=["no optimize.toml", "optimize init"])


def test_dirty_tree(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "work.py").write_text((repo / "work.py").read_text() + "# wip\n")
    run_bad(tmp_path, repo, code=2, says=["uncommitted changes", "work.py", "--allow-dirty"])
    assert "# wip" in (repo / "work.py").read_text()


def test_invalid_spec_names_the_key(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", spec=SPEC.replace('timeout = "60s"', 'timeout = "soon"', 1))
    run_bad(tmp_path, repo, code=2, says=["optimize.toml", "test.timeout", "duration"])


def test_unknown_key_in_spec(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", spec=SPEC + "\n[bench2]\ncmd = 'x'\n")
    run_bad(tmp_path, repo, code=2, says=["bench2", "Extra inputs"])


def test_build_fails_at_baseline(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", spec=SPEC.replace("[test]", '[build]\ncmd = "echo compiler says no >&2; exit 1"\n[test]'))
    run_bad(tmp_path, repo, code=2, says=["build fails", "compiler says no"])


def test_red_tests_at_baseline_show_the_failure(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", test="def test_broken():\n    assert 1 + 1 == 3, 'arithmetic is off'\n")
    run_bad(tmp_path, repo, code=2, says=["tests fail", "arithmetic is off"])


def test_metric_regex_never_matches(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", spec=SPEC.replace("rate: ([0-9.]+) Mops/s", "speed=([0-9.]+)"))
    run_bad(tmp_path, repo, code=2, says=["no metric", "speed=", "rate:"])


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_endpoint_unreachable(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    run_bad(tmp_path, repo, "--llm", url, code=3, says=[url, "vllm serve moonshotai/Kimi-K2.6"])
    assert not list((tmp_path / "runs").glob("*/run.json"))


def test_wrong_model_name(tmp_path: Path, fake_openai) -> None:
    repo = make_repo(tmp_path / "repo")
    srv = fake_openai([])
    run_bad(tmp_path, repo, "--llm", srv.base_url, "--model", "kimi-k9", code=3, says=["kimi-k9", srv.base_url])


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere; covered by the read-only path below")
def test_runs_dir_not_writable_chmod(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    r = optimize("--repo", str(repo), "--runs-dir", str(ro / "runs"), "--llm", "replay:x")
    assert r.returncode == 2 and "not writable" in r.stderr


def test_runs_dir_not_writable(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    r = optimize("--repo", str(repo), "--runs-dir", str(blocker / "runs"), "--llm", f"replay:{transcript(tmp_path / 't.jsonl')}")
    assert r.returncode == 2 and "not writable" in r.stderr and "Traceback" not in r.stderr


def test_init_writes_a_guess_for_a_pytest_project(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "optimize.toml").unlink()
    r = optimize("init", "--repo", str(repo))
    assert r.returncode == 0, r.stderr
    text = (repo / "optimize.toml").read_text()
    assert "pytest" in text and "bench.py" in text
    assert optimize("init", "--repo", str(repo)).returncode == 2  # never overwrites without --force


def test_ray_executor_without_a_reachable_cluster(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="ray is not installed (the [ray] extra; make python installs it)")
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    repo = make_repo(tmp_path / "repo")
    run_bad(tmp_path, repo, "--executor", "ray", "--ray-address", f"127.0.0.1:{port}", code=2,
            says=["--executor ray", "no Ray head answers", "ray start --head"])
    assert not any((tmp_path / "runs").glob("*"))  # a run that never started leaves no record


def test_unknown_executor(tmp_path: Path) -> None:
    run_bad(tmp_path, make_repo(tmp_path / "repo"), "--executor", "slurm", code=2, says=["--executor slurm"])


# ----------------------------------------------------------------------------- usage mistakes, every subcommand

USAGE_MISTAKES = [
    # (arguments, words the one line must contain)
    (["--api-key", "x"], ["--repo"]),  # a flag that exists, without the required --repo
    (["--repo", "tiny", "--iterations", "abc"], ["--iterations", "abc"]),
    (["--repo", "tiny", "--bogus"], ["--bogus"]),
    (["--repo", "tiny", "--endpoint-patience", "soon"], ["--endpoint-patience", "soon"]),
    (["run", "--repo", "tiny", "--lanes", "0"], ["--lanes"]),
    (["resume", "RUN", "--bogus"], ["--bogus"]),
    (["resume", "no-such-run"], ["no-such-run"]),
    (["replay", "RUN", "--bogus"], ["--bogus"]),
    (["replay", "RUN", "--fork-at", "abc"], ["--fork-at"]),
    (["replay", "no-such-run"], ["no-such-run"]),
    (["init", "--bogus"], ["--bogus"]),
    (["init", "--repo", "/no/such/dir"], ["/no/such/dir"]),
    (["runs", "--bogus"], ["--bogus"]),
    (["runs", "--json", "extra"], ["extra"]),
    (["show", "RUN", "--bogus"], ["--bogus"]),
    (["show", "RUN", "--iteration", "abc"], ["--iteration"]),
    (["show", "no-such-run"], ["no-such-run"]),
    (["report", "RUN", "--out", "x.html"], ["--out"]),
    (["report", "no-such-run"], ["no-such-run"]),
    (["ab", "--a", "true", "--b", "true", "--bogus"], ["--bogus"]),
    (["ab", "--a", "true", "--b", "true", "--max-pairs", "abc"], ["--max-pairs"]),
    (["ab", "--a", "true"], ["--b"]),
    (["profile", "--repo", "tiny", "--bogus"], ["--bogus"]),
    (["profile", "--repo", "/no/such/dir"], ["/no/such/dir"]),
    (["no-such-command"], ["no-such-command"]),
]


@pytest.mark.parametrize("args,says", USAGE_MISTAKES, ids=[" ".join(a) for a, _ in USAGE_MISTAKES])
def test_every_subcommand_answers_a_usage_mistake_with_one_line_and_exit_2(tmp_path: Path, args: list[str],
                                                                            says: list[str]) -> None:
    runs = ["--runs-dir", str(tmp_path / "runs")] if args[0] in ("resume", "replay", "runs", "show", "report") \
        and "--bogus" not in args and "extra" not in args else []
    r = optimize(*args, *runs)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ")
    for words in says:
        assert words in lines[0], lines[0]


def test_messages_name_only_flags_that_exist() -> None:
    from agent import cli

    text = "\n".join(p.read_text() for p in Path(cli.__file__).parent.glob("*.py"))
    helps = "".join(optimize(c, "--help").stdout for c in ("run", "resume", "replay", "init", "show", "report"))
    for flag in sorted(set(re.findall(r"(?:pass|with) (--[a-z][a-z-]+)", text))):
        assert flag in helps, f"a message tells the user to pass {flag}, which no subcommand has"
