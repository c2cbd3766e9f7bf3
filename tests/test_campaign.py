"""scripts/campaign: the order run.sh trains in, what commit.sh commits, and when run.sh commits.

Both scripts are run for real against a throwaway git repository, with a stand-in `python` first on PATH
that records each `python -m experiments...` call (and writes a report where `report` would) and hands
`python -c` to the real interpreter, which commit.sh uses to read a run's status.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

STAND_IN = f"""#!/bin/sh
if [ "$1" = -c ]; then exec {sys.executable} "$@"; fi
echo "$*" >> "$CALLS"
if [ "$3" = report ]; then mkdir -p reports/"$5" && echo "report of $5" > reports/"$5"/README.md; fi
if [ "$3" = report ] && [ -d data ]; then echo "drawn from data" > reports/"$5"/figure7.png; fi
if [ "$3" = all ] && [ -n "${{FINISH_MID_STEP:-}}" ] && [ ! -d results/p/mid ]; then
    mkdir -p results/p/mid && echo '{{"status": "done"}}' > results/p/mid/meta.json && sleep 5
fi
if [ "$3" = table3 ]; then exit "${{TABLE3_EXIT:-0}}"; fi
"""


IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={**os.environ, **IDENTITY}).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository holding the two campaign scripts and one committed run of profile `p`."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "scripts" / "campaign", repo / "scripts" / "campaign")
    _write_run(repo, "p", "run0", "done")
    (repo / "README.md").write_text("readme\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "start")
    return repo


def _write_run(repo: Path, profile: str, run_id: str, status: str) -> None:
    folder = repo / "results" / profile / run_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").write_text(json.dumps({"status": status}))


def _script(repo: Path, tmp_path: Path, name: str, *args: str, **env: str) -> tuple[str, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "python").write_text(STAND_IN)
    (bin_dir / "python").chmod(0o755)
    calls = tmp_path / "calls.txt"
    calls.write_text("")
    full_env = {**os.environ, **IDENTITY, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(calls), **env}
    done = subprocess.run([str(repo / "scripts" / "campaign" / name), *args], env=full_env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout, calls.read_text().splitlines()


def test_run_sh_interleaves_profiles_step_by_step(repo: Path, tmp_path: Path) -> None:
    _, calls = _script(repo, tmp_path, "run.sh", "a,b", "2")
    steps = [c.removeprefix("-m experiments.run ") for c in calls]
    expected = []
    for args in ["table3 --seeds 1", "table3 --seeds 2", "all --seeds 2 --only trans3dhead,dad3dnet",
                 "all --seeds 1", "all --seeds 2", "report"]:
        expected += [f"{args} --profile a", f"{args} --profile b"]
    assert steps == expected


def test_commit_if_new_commits_nothing_when_no_run_finished(repo: Path, tmp_path: Path) -> None:
    _write_run(repo, "p", "run1", "running")
    out, calls = _script(repo, tmp_path, "commit.sh", "p", "--if-new")
    assert "nothing new" in out
    assert calls == []
    assert _git(repo, "log", "--oneline").count("\n") == 1


def test_commit_commits_finished_runs_only_with_their_reports(repo: Path, tmp_path: Path) -> None:
    _write_run(repo, "p", "run1", "done")
    _write_run(repo, "p", "run2", "running")
    out, calls = _script(repo, tmp_path, "commit.sh", "p", "--if-new")
    assert "committed 1 run(s)" in out
    assert _git(repo, "ls-files", "results/p").split() == ["results/p/run0/meta.json", "results/p/run1/meta.json"]
    assert "?? results/p/run2/" in _git(repo, "status", "--porcelain")
    assert (repo / "reports" / "p" / "README.md").read_text() == "report of p\n"
    assert _git(repo, "ls-files", "reports/p").split() == ["reports/p/README.md"]
    assert calls == ["-m experiments.run report --profile p", "-m experiments.report.readme"]


def test_commit_regenerates_every_profiles_reports(repo: Path, tmp_path: Path) -> None:
    """A profile's claims page shows another's verdicts beside its own: committing `q`'s runs must regenerate `p`'s
    reports too, or the committed `p` reports no longer match the committed results."""
    _write_run(repo, "q", "run1", "done")
    out, calls = _script(repo, tmp_path, "commit.sh", "q", "--if-new")
    assert "committed 1 run(s) of results/q" in out
    assert calls == ["-m experiments.run report --profile p", "-m experiments.run report --profile q",
                     "-m experiments.report.readme"]
    assert _git(repo, "ls-files", "reports").split() == ["reports/p/README.md", "reports/q/README.md"]
    assert _git(repo, "status", "--porcelain", "--", "reports") == ""


def test_commit_regenerates_the_pictures_drawn_from_the_data(repo: Path, tmp_path: Path) -> None:
    """Figure 7 and the gallery draw the generated dataset (gitignored): the clean clone that regenerates the
    reports sees it, or the committed pages would link pictures that were never committed."""
    (repo / "data").mkdir()
    out, _ = _script(repo, tmp_path, "commit.sh", "p")
    assert "reports/p/figure7.png" in _git(repo, "ls-files", "reports").split()


def test_run_sh_with_commit_commits_after_each_training_step(repo: Path, tmp_path: Path) -> None:
    _write_run(repo, "p", "run1", "done")     # as if the first step had finished it
    out, calls = _script(repo, tmp_path, "run.sh", "p", "1", COMMIT="1")
    assert out.count("committed 1 run(s)") == 1
    assert out.count("nothing new in results/p") == 2        # the second and third training steps
    assert "results/p/run1/meta.json" in _git(repo, "ls-files")


def test_run_sh_with_commit_commits_a_run_that_lands_mid_step(repo: Path, tmp_path: Path) -> None:
    """A step of ten long runs lasts hours: a run that finishes in it is committed while the step goes on."""
    out, _ = _script(repo, tmp_path, "run.sh", "p", "1", COMMIT="1", COMMIT_EVERY="1", FINISH_MID_STEP="1")
    lines = out.splitlines()
    step_start = next(i for i, line in enumerate(lines) if "run all --seeds 1 --only" in line)
    step_end = next(i for i in range(step_start, len(lines)) if " exit " in lines[i])
    committed = lines.index("committed 1 run(s) of results/p")
    assert committed < step_end
    assert "results/p/mid/meta.json" in _git(repo, "ls-files")


def test_run_sh_logs_each_step_exit_status(repo: Path, tmp_path: Path) -> None:
    out, _ = _script(repo, tmp_path, "run.sh", "p", "1", TABLE3_EXIT="3")
    exits = [line.rsplit(" ", 1)[1] for line in out.splitlines() if line.startswith("== ") and " exit " in line]
    assert exits[0] == "3" and set(exits[1:]) == {"0"}
