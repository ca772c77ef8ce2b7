"""Git plumbing for runs: snapshots, worktrees, one branch and one commit per attempt.

The user's checkout is never touched: all work happens in worktrees under `.git/nightshift/`,
and only refs under `optimize/<run-id>/` are created. No repository hook ever runs: every git command
gets `core.hooksPath=/dev/null` (a hook the model edited, or the user's lint hook, would otherwise run
with the harness's environment, and a failing one would end the run), commits skip hooks, and diffs
use no external diff or textconv driver.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import git

AUTHOR = git.Actor("Nightshift", "nightshift@localhost")
# Configuration that would make git run a program named by the repository: hooks, the fsmonitor daemon.
SAFE_CONFIG = ("core.hooksPath=/dev/null", "core.fsmonitor=false")
SAFE_ARGS = [arg for item in SAFE_CONFIG for arg in ("-c", item)]
SNAPSHOT_EXCLUDES = ["showcase/", "showcase.jsonl", ".git/"]


# Worktrees share one repository: GitPython writes COMMIT_EDITMSG and git takes ref and index locks
# there, so concurrent lanes changing it would trip over each other. Writes go one at a time.
_WRITE = threading.RLock()


P = ParamSpec("P")
R = TypeVar("R")


def _serialised(fn: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(fn)
    def locked(*args: P.args, **kwargs: P.kwargs) -> R:
        with _WRITE:
            return fn(*args, **kwargs)
    return locked


class GitError(Exception):
    pass


def repo_at(path: Path) -> git.Repo:
    """A GitPython repo whose every command runs with SAFE_CONFIG (no hooks)."""
    repo = git.Repo(path)
    repo.git.set_persistent_git_options(c=list(SAFE_CONFIG))
    return repo


def git_dirs(worktree: Path) -> tuple[Path, ...]:
    """The worktree's own git folder and the repository's common one (for read-only access in the sandbox)."""
    try:
        text = (worktree / ".git").read_text()
    except OSError:  # not a linked worktree: .git is the folder itself
        return ((worktree / ".git").resolve(),) if (worktree / ".git").is_dir() else ()
    if not text.startswith("gitdir: "):
        return ()
    own = (worktree / text.removeprefix("gitdir: ").strip()).resolve()
    common = own / "commondir"
    try:
        return own, (own / common.read_text().strip()).resolve()
    except OSError:
        return (own,)


def toplevel(path: Path) -> Path | None:
    """The repo's top level if `path` is exactly one, else None."""
    try:
        repo = git.Repo(path)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None
    top = Path(repo.working_tree_dir or "").resolve()
    return top if top == path.resolve() else None


def dirty_paths(repo_path: Path) -> list[str]:
    """Uncommitted changes, untracked files included (ignored files are not the user's work in progress)."""
    out = repo_at(repo_path).git.status("--porcelain", "--untracked-files=normal")
    return [line[3:] for line in out.splitlines() if line.strip()]


def head_commit(repo_path: Path) -> str:
    try:
        return repo_at(repo_path).head.commit.hexsha
    except ValueError as e:
        raise GitError(f"{repo_path}: the repository has no commits yet") from e


@_serialised
def snapshot(folder: Path, dest: Path) -> str:
    """Make `dest` a fresh git repo holding `folder`'s files (its .gitignore honoured); return the commit."""
    repo = git.Repo.init(dest)
    repo.git.set_persistent_git_options(c=list(SAFE_CONFIG))
    (Path(repo.git_dir) / "info").mkdir(exist_ok=True)
    (Path(repo.git_dir) / "info" / "exclude").write_text("\n".join(SNAPSHOT_EXCLUDES) + "\n")
    # Index the folder's files without copying ignored build outputs, then check them out in dest.
    repo.git.execute(["git", *SAFE_ARGS, f"--git-dir={repo.git_dir}", f"--work-tree={folder}", "add", "-A"])
    repo.index.update()
    commit = repo.index.commit("Snapshot of " + folder.name, author=AUTHOR, committer=AUTHOR, skip_hooks=True)
    repo.git.checkout("-f", "-B", "main", commit.hexsha)
    return commit.hexsha


@_serialised
def add_worktree(repo_path: Path, where: Path, start: str, branch: str | None = None) -> Path:
    """A worktree at `start`, on `branch` (reset to `start`) or detached."""
    repo = repo_at(repo_path)
    if where.exists():
        remove_worktree(repo_path, where)
    where.parent.mkdir(parents=True, exist_ok=True)
    on = ["-B", branch] if branch else ["--detach"]
    repo.git.worktree("add", "--force", *on, str(where), start)
    return where


@_serialised
def rebase(worktree: Path, *, onto: str, upstream: str) -> str | None:
    """Replay the worktree's commits since `upstream` on top of `onto`; None (and nothing changed) on a conflict."""
    repo = repo_at(worktree)
    env = {"GIT_COMMITTER_NAME": AUTHOR.name, "GIT_COMMITTER_EMAIL": AUTHOR.email}
    try:
        repo.git.rebase("--no-verify", "--onto", onto, upstream, env=env)
    except git.GitCommandError:
        with contextlib.suppress(git.GitCommandError):
            repo.git.rebase("--abort")
        return None
    return repo.head.commit.hexsha


@_serialised
def amend_message(worktree: Path, message: str) -> str:
    repo = repo_at(worktree)
    repo.git.commit("--amend", "--only", "--allow-empty", "--no-verify", "-m", message,
                    env={"GIT_COMMITTER_NAME": AUTHOR.name, "GIT_COMMITTER_EMAIL": AUTHOR.email})
    return repo.head.commit.hexsha


@_serialised
def remove_worktree(repo_path: Path, where: Path) -> None:
    repo = repo_at(repo_path)
    try:
        repo.git.worktree("remove", "--force", "--force", str(where))
    except git.GitCommandError:
        shutil.rmtree(where, ignore_errors=True)
    repo.git.worktree("prune")


@_serialised
def commit_all(worktree: Path, message: str) -> str | None:
    """Commit everything in the worktree; None when nothing changed."""
    repo = repo_at(worktree)
    repo.git.add("-A")
    if not repo.index.diff("HEAD"):
        return None
    return repo.index.commit(message, author=AUTHOR, committer=AUTHOR, skip_hooks=True).hexsha


def tracked_files(worktree: Path) -> list[str]:
    return repo_at(worktree).git.ls_files().splitlines()


def changed_paths(repo_path: Path, base: str, head: str) -> list[str]:
    out = repo_at(repo_path).git.diff("--no-ext-diff", "--no-textconv", "--name-only", "--no-renames", base, head)
    return [p for p in out.splitlines() if p]


def diff_text(repo_path: Path, base: str, head: str) -> str:
    return repo_at(repo_path).git.diff("--no-ext-diff", "--no-textconv", "--stat", "--patch", base, head)


def diff_size(repo_path: Path, base: str, head: str) -> int:
    """Lines added plus removed."""
    out = repo_at(repo_path).git.diff("--no-ext-diff", "--no-textconv", "--numstat", base, head)
    return sum(int(a) + int(d) for a, d, _ in (ln.split("\t", 2) for ln in out.splitlines()) if a != "-")


def matches(path: str, globs: list[str]) -> bool:
    """`src/test/**` matches everything below src/test; plain names match exactly or as a folder."""
    for pattern in globs:
        if fnmatch.fnmatchcase(path, pattern) or path == pattern.rstrip("/"):
            return True
        if pattern.endswith("/**") and path.startswith(pattern[:-2]):
            return True
        if not any(c in pattern for c in "*?[") and path.startswith(pattern.rstrip("/") + "/"):
            return True
    return False


@_serialised
def restore_protected(worktree: Path, base: str, globs: list[str]) -> list[str]:
    """Put protected files back exactly as in `base`, deleting protected files `base` lacks."""
    repo = repo_at(worktree)
    in_base = [p for p in repo.git.ls_tree("-r", "--name-only", base).splitlines() if matches(p, globs)]
    present = repo.git.ls_files("--cached", "--others", "--exclude-standard").splitlines()
    extra = [p for p in present if matches(p, globs) and p not in set(in_base)]
    changed = repo.git.diff("--name-only", base, "--", *in_base).splitlines() if in_base else []
    missing = [p for p in in_base if not (worktree / p).exists()]
    if changed or missing:
        repo.git.checkout(base, "--", *sorted(set(changed) | set(missing)))
    for path in extra:
        (worktree / path).unlink(missing_ok=True)
    return sorted(set(changed) | set(missing) | set(extra))


@_serialised
def clean_untracked(worktree: Path) -> None:
    """Remove everything git does not track (caches, build outputs) so a build starts from the commit alone."""
    repo_at(worktree).git.clean("-ffdxq")


@_serialised
def set_branch(repo_path: Path, name: str, commit: str) -> None:
    repo_at(repo_path).git.branch("-f", name, commit)


@_serialised
def delete_branches(repo_path: Path, prefix: str) -> None:
    repo = repo_at(repo_path)
    for head in [h for h in repo.heads if h.name.startswith(prefix)]:
        repo.delete_head(head, force=True)


def branches(repo_path: Path, prefix: str) -> dict[str, str]:
    repo = repo_at(repo_path)
    return {h.name: h.commit.hexsha for h in repo.heads if h.name.startswith(prefix)}
