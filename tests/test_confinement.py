"""Every way candidate code runs is confined: builds, tests, benchmarks, each profiler kind, the reference
run and the Ray path. A real escape script (shell, so it also runs under valgrind) tries to read the
harness's environment through /proc, write into the user's checkout, plant a git hook, write ~/.cache and
write into a frozen worktree. The "harness" is a fresh Python process started with a canary secret in its
environment (only variables present at exec show in /proc/PID/environ), so /proc really holds the secret:
the same script run without a sandbox finds it, which proves the probe can fail.

Harness git operations never run repository hooks, and a failing hook cannot end a run."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path

import pytest

from tests.test_loop import optimize, show
from tests.tiny_target import FAST, make_repo
from tools import gitops, sh

ROOT = Path(__file__).resolve().parent.parent
needs_bwrap = pytest.mark.skipif(not sh.bwrap_available(), reason=f"no bubblewrap: {sh.bwrap_problem()}")

# Tries every escape, then prints one REPORT line naming each leak it saw ("none" when none) and exits 3 so
# the line reaches the harness's record of a failed command (profiler warnings, SampleError, build logs).
# Its writes are judged on the host (digests), not by their exit status: inside the sandbox a path under
# the private /tmp or $HOME can be writable and still lead nowhere.
ESCAPE = r'''tag=$1; hpid=$2; repo=$3; other=$4; canary="confinement-canary-$tag"; found=""
for f in /proc/$hpid/environ /proc/[0-9]*/environ; do
  if grep -aq "$canary" "$f" 2>/dev/null; then found="$found environ"; fi
done
if kill -0 "$hpid" 2>/dev/null; then found="$found sees-harness"; fi
if env | grep -q "$canary"; then found="$found env"; fi
echo x > "$repo/escape-$tag"
echo "#!/bin/sh" > "$repo/.git/hooks/post-commit"
echo x >> "$repo/.git/config"
echo x > "$other/escape-$tag"
mkdir -p "$HOME/.cache" "$HOME/.m2"; echo x > "$HOME/.cache/escape-$tag"; echo x > "$HOME/.m2/escape-$tag"
echo "REPORT:${found:- none}"
exit 3
'''


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` (.git included: hooks, config), by content; symlinks by target."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if "/nightshift/" in f"/{rel}/" or "/worktrees/" in f"/{rel}/" or rel.endswith(("index", "ORIG_HEAD")):
            continue  # the harness's own worktrees and their bookkeeping
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def private_tmp(root: Path) -> Path:
    """A TMPDIR of the test's own: the host lease lives in the temp folder, and these runs check
    confinement, not measurements, so they need not queue behind other runs on this machine. Short,
    under /tmp (Ray's sockets live there), and linked from `root` so it goes with it."""
    link = root / "tmpdir"
    if not link.exists():
        link.symlink_to(tempfile.mkdtemp(prefix="nst-", dir="/tmp"))
    return link.resolve()


class Setup:
    """A user's repository with two harness worktrees: `base` (measured, so frozen) and `best`."""

    def __init__(self, root: Path) -> None:
        self.tag = uuid.uuid4().hex[:10]
        self.canary = f"sk-confinement-canary-{self.tag}"
        self.repo = root / "repo"
        self.repo.mkdir(parents=True)
        (self.repo / "escape.sh").write_text(ESCAPE)
        (self.repo / "prog.py").write_text("print('hello')\n")
        for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "user's code"]):
            subprocess.run(["git", "-c", "user.name=u", "-c", "user.email=u@u", *args], cwd=self.repo, check=True)
        head = gitops.head_commit(self.repo)
        self.base = gitops.add_worktree(self.repo, self.repo / ".git" / "nightshift" / "t" / "base", head)
        self.best = gitops.add_worktree(self.repo, self.repo / ".git" / "nightshift" / "t" / "best", head)
        self.home_canaries = [Path.home() / ".cache" / f"escape-{self.tag}", Path.home() / ".m2" / f"escape-{self.tag}"]

    def cmd(self, hpid: str = "$HARNESS_PID") -> str:
        return f"sh escape.sh {self.tag} {hpid} {self.repo} {self.base}"  # the canary itself is not passed

    def snapshot(self) -> dict:
        from agent.target import digest

        return {"repo": tree_digest(self.repo), "base": digest(self.base), "best": digest(self.best),
                "status": subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=self.repo,
                                         capture_output=True, text=True).stdout}

    def harness(self, code: str, timeout: float = 600) -> dict:
        """Run `code` in a fresh harness process that holds the canary in its environment; it defines
        `result` (JSON-able). HARNESS_PID in commands is replaced by that process's pid."""
        program = textwrap.dedent('''
            import json, os, sys
            from pathlib import Path
            sys.path.insert(0, {root!r})
            PID = str(os.getpid())
            REPO, BASE, BEST = Path({repo!r}), Path({base!r}), Path({best!r})
            CMD = {cmd!r}.replace("$HARNESS_PID", PID)
        ''').format(root=str(ROOT), repo=str(self.repo), base=str(self.base), best=str(self.best),
                    cmd=self.cmd()) + textwrap.dedent(code) + "\nprint('RESULT=' + json.dumps(result))\n"
        env = {**os.environ, "OPENAI_API_KEY": self.canary, "NIGHTSHIFT_CANARY_TOKEN": self.canary,
               "TMPDIR": str(private_tmp(self.repo.parent))}
        done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=env,
                              timeout=timeout, cwd=ROOT)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
        line = next(ln for ln in done.stdout.splitlines() if ln.startswith("RESULT="))
        return json.loads(line.removeprefix("RESULT="))

    def check(self, before: dict, text: str) -> None:
        """The escape script ran (its report is in `text`), every escape failed, nothing changed."""
        assert "REPORT: none" in text, text[-3000:]
        assert self.canary not in text
        assert self.snapshot() == before
        for canary in self.home_canaries:
            assert not canary.exists(), canary


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    s = Setup(tmp_path)
    yield s
    for canary in s.home_canaries:
        canary.unlink(missing_ok=True)
    shutil.rmtree(private_tmp(tmp_path), ignore_errors=True)


def test_the_escape_works_without_the_sandbox(setup: Setup, tmp_path: Path) -> None:
    """Positive control on a copy of the repository: unconfined, the script reads the harness's
    environment through /proc and writes the checkout, its hooks and the other worktree."""
    control = Setup(tmp_path / "control")
    result = control.harness('''
        from tools import sh
        r = sh.run(CMD, BEST, 60)
        result = r.output
    ''')
    assert "environ" in result and "sees-harness" in result, result
    assert (control.repo / f"escape-{control.tag}").exists() and (control.base / f"escape-{control.tag}").exists()
    assert (control.repo / ".git" / "hooks" / "post-commit").exists()
    for canary in control.home_canaries:
        assert canary.exists()
        canary.unlink()


PROFILERS = [
    ("py-spy", "py-spy"),
    ("jfr", "java"),
    ("perf", "perf"),
    ("callgrind", "valgrind"),
]


@needs_bwrap
@pytest.mark.parametrize("kind,tool", PROFILERS, ids=[k for k, _ in PROFILERS])
def test_every_profiler_kind_runs_confined(setup: Setup, tmp_path: Path, kind: str, tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    before = setup.snapshot()
    out = tmp_path / "profile"
    result = setup.harness(f'''
        from agent import target
        from tools.profile import profile_target
        target.check_measured(BASE)  # the base has been measured: frozen
        res = profile_target({kind!r}, CMD, BEST, Path({str(out)!r}), timeout=120)
        result = {{"profiler": res.profiler, "text": res.summary + " ".join(res.warnings)}}
    ''')
    assert result["profiler"] == kind or (kind == "perf" and result["profiler"] == "callgrind")
    setup.check(before, result["text"])
    # nothing written by the profiled code outside raw/, and no link or FIFO left there
    assert all(p.is_dir() or p.is_file() for p in (out / "raw").rglob("*"))


@needs_bwrap
def test_profile_outputs_cannot_point_the_harness_at_its_own_secrets(setup: Setup, tmp_path: Path) -> None:
    """The profiled program knows where tracemalloc writes its dumps (its environment says so) and plants
    links there to /proc/self/environ, which the harness would read as its own; and a FIFO that would
    block the reader. Neither is followed: the summary holds no trace of the harness's environment."""
    plant = ("import os\nd = os.environ['NIGHTSHIFT_ALLOC_DIR']\n"
             "for i in range(3):\n    os.symlink('/proc/self/environ', f'{d}/alloc-{i}.txt')\n"
             "os.mkfifo(f'{d}/alloc-fifo.txt')\n")
    (setup.best / "plant.py").write_text(plant)
    out = tmp_path / "profile"
    result = setup.harness(f'''
        from tools.profile import profile_target
        res = profile_target("py-spy", f"{{sys.executable}} plant.py", BEST, Path({str(out)!r}), timeout=60)
        text = res.summary + " ".join(res.warnings)
        text += "".join(p.read_text(errors="replace") for p in Path({str(out)!r}).glob("*.txt"))
        result = {{"text": text}}
    ''', timeout=300)
    assert setup.canary not in result["text"] and "PATH=" not in result["text"]
    assert not any(p.is_symlink() for p in (out / "raw").rglob("*"))


@needs_bwrap
def test_build_tests_benchmark_and_reference_run_confined(setup: Setup) -> None:
    before = setup.snapshot()
    result = setup.harness('''
        from agent import target, verify
        from agent.config import TargetSpec
        from tools.bench import SampleError
        spec = TargetSpec.model_validate({"name": "escape", "build": {"cmd": CMD}, "test": {"cmd": CMD},
                                          "bench": {"cmd": "sh -c 'echo ok'", "reference_cmd": CMD}})
        target.check_measured(BASE)
        t = target.Target(spec, BEST)
        text = t.build().output + t.test().output
        try:  # what Session.reference does: the reference command measured against the best
            verify.measure(spec, verify.Arm("x", BEST, cmd=spec.bench.reference_cmd), verify.Arm("x", BEST),
                           looks=[2], min_effect=0.0)
        except SampleError as e:
            text += str(e) + e.output_tail
        result = text
    ''')
    assert result.count("REPORT:") == 3, result
    setup.check(before, result)


@needs_bwrap
def test_ray_path_runs_confined(setup: Setup, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    (setup.best / "fast.txt").write_text("a change\n")
    subprocess.run(["git", "add", "fast.txt"], cwd=setup.best, check=True)
    subprocess.run(["git", "-c", "user.name=u", "-c", "user.email=u@u", "commit", "-qm", "cand"], cwd=setup.best,
                   check=True)
    before = setup.snapshot()
    logs = tmp_path / "logs"
    logs.mkdir()
    result = setup.harness(f'''
        import subprocess
        from agent.config import TargetSpec
        from agent.remote import RayExecutor
        from agent.verify import Arm
        spec = TargetSpec.model_validate({{"name": "escape", "build": {{"cmd": CMD}}, "test": {{"cmd": "true"}},
                                          "bench": {{"cmd": "true"}}}})
        head = lambda wt: subprocess.run(["git", "rev-parse", "HEAD"], cwd=wt, capture_output=True,
                                         text=True).stdout.strip()
        ex = RayExecutor(REPO, spec)
        try:
            o = ex.verify(Arm(head(BASE), BASE), Arm(head(BEST), BEST), min_effect=0.05, expected=[],
                          protected_attempts=[], logs=Path({str(logs)!r}))
        finally:
            ex.close()
        result = o.reason + " " + o.detail + "".join(p.read_text() for p in Path({str(logs)!r}).iterdir())
    ''', timeout=900)
    assert "build-failed" in result
    setup.check(before, result)


# --- git hooks ----------------------------------------------------------------------------------------

HOOKS = ["pre-commit", "commit-msg", "prepare-commit-msg", "post-commit", "post-checkout", "post-rewrite",
         "pre-rebase", "reference-transaction", "post-index-change", "pre-auto-gc"]


def plant_hooks(folder: Path, marks: Path) -> None:
    """Hooks that record that they ran, with the environment they saw (the key), and then fail."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in HOOKS:
        hook = folder / name
        hook.write_text(f"#!/bin/sh\nmkdir -p {marks}\nenv > {marks}/{name}\nexit 1\n")
        hook.chmod(0o755)


def test_harness_git_never_runs_hooks(tmp_path: Path) -> None:
    marks = tmp_path / "hooks-ran"
    repo = make_repo(tmp_path / "repo")
    plant_hooks(repo / ".git" / "hooks", marks)
    plant_hooks(repo / ".githooks", marks)  # core.hooksPath inside the tree, as husky and pre-commit set it
    subprocess.run(["git", "-C", str(repo), "config", "core.hooksPath", ".githooks"], check=True)
    base = gitops.head_commit(repo)
    wt = gitops.add_worktree(repo, repo / ".git" / "nightshift" / "r" / "iter-001", base, "optimize/r/iter-001")
    (wt / "work.py").write_text(FAST)
    commit = gitops.commit_all(wt, "iter-001")
    assert commit and commit != base
    assert gitops.amend_message(wt, "iter-001: amended") != commit
    gitops.set_branch(repo, "optimize/r/best", base)
    other = gitops.add_worktree(repo, repo / ".git" / "nightshift" / "r" / "iter-002", base, "optimize/r/iter-002")
    (other / "bench.py").write_text("# changed\n")
    assert gitops.commit_all(other, "iter-002")
    assert gitops.rebase(other, onto=gitops.branches(repo, "optimize/r/")["optimize/r/iter-001"], upstream=base)
    (other / "bench.py").write_text("# protected file changed again\n")
    gitops.restore_protected(other, base, ["bench.py"])
    gitops.clean_untracked(other)
    gitops.snapshot(repo, tmp_path / "snap")
    gitops.remove_worktree(repo, other)
    gitops.remove_worktree(repo, wt)
    gitops.delete_branches(repo, "optimize/r/")
    assert not marks.exists(), sorted(p.name for p in marks.iterdir())
    # the hooks are live: git itself, run plainly, runs them (and the failing pre-commit stops it)
    plain = subprocess.run(["git", "-c", "user.name=u", "-c", "user.email=u@u", "commit", "--allow-empty", "-m", "x"],
                           cwd=repo, capture_output=True, text=True)
    assert plain.returncode != 0 and (marks / "pre-commit").exists()


def test_a_failing_hook_cannot_end_a_run(tmp_path: Path) -> None:
    """A repository whose hooks (core.hooksPath in the tree and .git/hooks) fail and dump the environment:
    the run finishes with its usual verdicts, no hook ran, the key is nowhere."""
    from tests.tiny_target import transcript

    marks = tmp_path / "hooks-ran"
    repo = make_repo(tmp_path / "repo")
    plant_hooks(repo / ".githooks", marks)
    subprocess.run(["git", "-C", str(repo), "-c", "core.hooksPath=/dev/null", "add", ".githooks"], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=u", "-c", "user.email=u@u", "-c", "core.hooksPath=/dev/null",
                    "commit", "-qm", "hooks"], check=True)
    plant_hooks(repo / ".git" / "hooks", marks)
    subprocess.run(["git", "-C", str(repo), "config", "core.hooksPath", ".githooks"], check=True)
    script = transcript(tmp_path / "t.jsonl")
    key = f"sk-hooks-{uuid.uuid4().hex}"
    r = optimize("--repo", str(repo), "--llm", f"replay:{script}", "--runs-dir", str(tmp_path / "runs"),
                 "--no-profile", env={**os.environ, "OPENAI_API_KEY": key, "TMPDIR": str(private_tmp(tmp_path))})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    data = show(tmp_path / "runs")
    assert [(i["verdict"], i["reason"]) for i in data["iterations"]][0] == ("accepted", "faster")
    assert not marks.exists(), sorted(p.name for p in marks.iterdir())
    leaked = [p for p in (tmp_path / "runs").rglob("*") if p.is_file() and key.encode() in p.read_bytes()]
    assert leaked == []
    shutil.rmtree(private_tmp(tmp_path), ignore_errors=True)


# --- frozen worktrees ------------------------------------------------------------------------------------


@needs_bwrap
def test_a_measured_worktree_is_frozen(setup: Setup) -> None:
    """Once measured, a worktree's tests write a throwaway copy (they see their own writes, the worktree
    does not change), and any later write is caught before the next measurement."""
    from agent import target
    from agent.config import TargetSpec

    spec = TargetSpec.model_validate({"name": "frozen", "test": {"cmd": "echo run >> log.txt && cat log.txt"},
                                      "bench": {"cmd": "true"}})
    target.check_measured(setup.best)
    assert target.frozen(setup.best)
    first, second = target.Target(spec, setup.best).test(), target.Target(spec, setup.best).test()
    assert first.ok and second.ok and first.stdout == second.stdout == "run\n"  # each run starts from the worktree
    assert not (setup.best / "log.txt").exists()
    target.check_measured(setup.best)  # unchanged: measuring again is fine
    (setup.best / "prog.py").write_text("print('slower')\n")
    with pytest.raises(target.WorktreeChanged, match="changed since it was first measured"):
        target.check_measured(setup.best)
