"""The console script, driven in a subprocess in a temporary folder, as a new user would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FLOWS = """
from pydantic import SecretStr
from aetherflow import Suspend, node

@node
def load(n: int) -> list[int]:
    return list(range(n))

@node
def total(load: list[int]) -> int:
    return sum(load)

flow = load.then(total).named("summing")

@node
def ask(n: int, ok: bool | None = None) -> str:
    if ok is None:
        raise Suspend("need ok")
    return "yes" if ok else "no"

approval = ask.named("approval")

@node
def boom(n: int) -> int:
    raise ValueError("bad n")

@node
def markup(n: int) -> int:
    raise ValueError("</script><b>bold</b> & <!-- not a comment")

@node
def login(password: SecretStr) -> dict:
    return {"user": "ada", "password": password}
"""


def aetherflow(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("aetherflow", path=os.path.dirname(sys.executable)) or "aetherflow"
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def killed_while_running(cwd: Path, *args: str) -> None:
    """Run ``aetherflow *args`` with HANG=1 (the flows here hang once they print HANGING), then kill -9 it."""
    import signal

    exe = shutil.which("aetherflow", path=os.path.dirname(sys.executable)) or "aetherflow"
    with subprocess.Popen(
        [exe, *args],
        cwd=cwd,
        env={**os.environ, "HANG": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "HANGING"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "flows.py").write_text(FLOWS)
    return tmp_path


def test_run_prints_output_json_on_last_line_and_creates_default_store(project: Path) -> None:
    result = aetherflow(project, "run", "flows.py:flow", "--input", "n=5")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == 10
    assert (project / ".aetherflow" / "runs.db").is_file()


def test_run_with_inputs_file_and_module_target(project: Path) -> None:
    (project / "in.json").write_text('{"n": 4}')
    result = aetherflow(project, "run", "flows:flow", "--inputs", "in.json", "--threads", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "6"


def test_bad_target_names_what_exists(project: Path) -> None:
    result = aetherflow(project, "run", "flows.py:flwo", "-i", "n=1")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "error: 'flwo' in flows.py does not exist. Did you mean 'flow'? Flows there: approval, ask, boom, flow, load, login, markup, total."
    )
    assert "Traceback" not in result.stderr


def test_missing_input_names_the_input(project: Path) -> None:
    result = aetherflow(project, "run", "flows.py:flow")
    assert result.returncode == 1
    assert "missing required input 'n' (needed by node 'load')" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 or result.stderr.count("error:") == 1


def test_failing_node_is_one_line_unless_debug(project: Path) -> None:
    plain = aetherflow(project, "run", "flows.py:boom", "-i", "n=1")
    assert plain.returncode == 1
    assert "error: Node 'boom'" in plain.stderr and "ValueError: bad n" in plain.stderr
    assert "Traceback" not in plain.stderr
    debug = aetherflow(project, "--debug", "run", "flows.py:boom", "-i", "n=1")
    assert "Traceback" in debug.stderr


def test_jobs_lists_newest_first_as_table_and_json(project: Path) -> None:
    aetherflow(project, "run", "flows.py:flow", "-i", "n=2")
    aetherflow(project, "run", "flows.py:boom", "-i", "n=1")
    table = aetherflow(project, "jobs")
    assert table.returncode == 0 and "summing" in table.stdout and "failed" in table.stdout
    records = json.loads(aetherflow(project, "jobs", "--json").stdout)
    assert [(r["flow"], r["status"]) for r in records] == [("boom", "failed"), ("summing", "completed")]
    only = json.loads(aetherflow(project, "jobs", "--json", "--status", "completed").stdout)
    assert [r["flow"] for r in only] == ["summing"]


def test_show_prints_timeline_and_writes_html_report(project: Path) -> None:
    aetherflow(project, "run", "flows.py:flow", "-i", "n=3")
    job_id = json.loads(aetherflow(project, "jobs", "--json").stdout)[0]["id"]
    shown = aetherflow(project, "show", job_id[:8])
    assert shown.returncode == 0, shown.stderr
    assert "load" in shown.stdout and "total" in shown.stdout and "completed" in shown.stdout
    data = json.loads(aetherflow(project, "show", job_id, "--json").stdout)
    assert [r["node"] for r in data["node_runs"]] == ["load", "total"]
    report = project / "report.html"
    assert aetherflow(project, "show", job_id, "--html", str(report), "--target", "flows.py:flow").returncode == 0
    page = report.read_text()
    assert 'data-node="load"' in page and 'data-node="total"' in page and 'class="timeline"' in page
    embedded = json.loads(page.split('id="aetherflow-data">')[1].split("</script>")[0])
    assert [r["node"] for r in embedded["runs"]] == ["load", "total"]
    assert "http" not in page.replace("http://www.w3.org/2000/svg", "")  # opens without network


def test_resume_a_suspended_job(project: Path) -> None:
    first = aetherflow(project, "run", "flows.py:approval", "-i", "n=1")
    assert first.returncode == 3
    assert "aetherflow resume" in first.stderr
    job_id = json.loads(aetherflow(project, "jobs", "--json", "--status", "suspended").stdout)[0]["id"]
    resumed = aetherflow(project, "resume", job_id, "--input", "ok=true")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip().splitlines()[-1] == '"yes"'
    assert json.loads(aetherflow(project, "jobs", "--json").stdout)[0]["status"] == "completed"


def test_graph_prints_mermaid_and_dot(project: Path) -> None:
    mermaid = aetherflow(project, "graph", "flows.py:flow")
    assert mermaid.stdout.startswith("flowchart TD") and "load --> total" in mermaid.stdout
    dot = aetherflow(project, "graph", "flows.py:flow", "--format", "dot")
    assert '"load" -> "total";' in dot.stdout
    bad = aetherflow(project, "graph", "flows.py:flow", "--format", "png")
    assert bad.returncode == 2 and "mermaid' or 'dot'" in bad.stderr


def test_stats_table_and_json(project: Path) -> None:
    for n in (1, 2, 3):
        aetherflow(project, "run", "flows.py:flow", "-i", f"n={n}")
    data = json.loads(aetherflow(project, "stats", "summing", "--json").stdout)
    assert data["counts"] == {"completed": 3} and data["success_rate"] == 1.0
    assert set(data["nodes"]) == {"load", "total"}
    assert "success rate 100.0%" in aetherflow(project, "stats", "summing").stdout


def test_bad_command_line_is_explained_with_exit_code_2(project: Path) -> None:
    missing = aetherflow(project, "run")
    assert missing.returncode == 2 and "Missing argument 'target'" in missing.stderr
    bad = aetherflow(project, "jobs", "--limit", "many")
    assert bad.returncode == 2 and "--limit" in bad.stderr
    assert aetherflow(project).returncode == 2  # no command: help, as a usage error


@pytest.mark.parametrize("since", ["99999999d", "9999999999999999999999s", "\u00b2d"])
def test_a_since_out_of_range_is_a_usage_error_naming_the_option(project: Path, since: str) -> None:
    """An age too large for a date (or a digit int() cannot read) is a bad --since, not a crash of another name."""
    for command in (["jobs"], ["stats", "summing"]):
        result = aetherflow(project, *command, "--since", since)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("error: --since") and len(result.stderr.splitlines()) == 1, result.stderr


def test_reading_a_store_that_does_not_exist_creates_nothing(project: Path) -> None:
    """`jobs`, `show` and `stats` on a store path with a typo find no jobs; they never create that store."""
    typo = project / "typo" / "runs.db"
    url = f"sqlite:///{typo}"
    listed = aetherflow(project, "jobs", "--store", url, "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    assert aetherflow(project, "stats", "summing", "--store", url).returncode == 0
    shown = aetherflow(project, "show", "abc", "--store", url)
    assert shown.returncode == 2 and "No job id starts with 'abc'" in shown.stderr, shown.stderr
    assert aetherflow(project, "jobs").returncode == 0  # the default store, before any run
    assert not (project / "typo").exists() and not (project / ".aetherflow").exists()


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_a_limit_below_one_is_a_usage_error(project: Path, limit: str) -> None:
    """`jobs --limit` counts jobs to list: 0 or a negative number is a mistake, not "all of them"."""
    aetherflow(project, "run", "flows.py:flow", "-i", "n=3")
    result = aetherflow(project, "jobs", "--limit", limit)
    assert result.returncode == 2, result.stdout
    assert "--limit" in result.stderr and "1" in result.stderr, result.stderr


def test_run_with_a_context_profile(project: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    (project / "counting.py").write_text(
        "from aetherflow import node\n\n@node\ndef hit(n: int, counter) -> int:\n    return counter.add(n)\n"
    )
    ok = subprocess.run(
        [
            shutil.which("aetherflow", path=os.path.dirname(sys.executable)) or "aetherflow",
            "run",
            str(project / "counting.py") + ":hit",
            "-i",
            "n=3",
            "--context",
            "contexts/shared.toml",
            "--store",
            "memory://",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().splitlines()[-1] == "3"
    missing = aetherflow(project, "run", "counting.py:hit", "-i", "n=1", "--context", "nothere.toml")
    assert missing.returncode == 2 and "Context profile nothere.toml: no such file" in missing.stderr


GATE = """
from aetherflow import Suspend, node

@node
def gate(answer: str | None = None) -> str:
    if answer is None:
        raise Suspend("go?")
    return f"got {answer}"
"""


def test_resume_with_an_answer_then_resume_the_completed_job_again(tmp_path: Path) -> None:
    (tmp_path / "gate.py").write_text(GATE)
    assert aetherflow(tmp_path, "run", "gate.py:gate").returncode == 3
    job_id = json.loads(aetherflow(tmp_path, "jobs", "--json", "--status", "suspended").stdout)[0]["id"]
    bad = aetherflow(tmp_path, "resume", job_id, "--answer", "not json")
    assert bad.returncode == 2 and "--answer must be JSON" in bad.stderr
    wrong = aetherflow(tmp_path, "resume", job_id, "--answer", "[1, 2]")  # JSON, but not a str
    assert wrong.returncode == 2 and "stays suspended" in wrong.stderr
    resumed = aetherflow(tmp_path, "resume", job_id, "--answer", '"go"')
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip().splitlines()[-1] == '"got go"'
    again = aetherflow(tmp_path, "resume", job_id)  # completed: its recorded result, at once
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().splitlines()[-1] == '"got go"'
    assert aetherflow(tmp_path, "resume", job_id, "--answer", '"more"').returncode == 2  # nothing to answer


def _store_bytes(project: Path) -> bytes:
    return b"".join(f.read_bytes() for f in sorted((project / ".aetherflow").glob("runs.db*")))


def test_show_html_never_imports_the_code_a_store_names(project: Path) -> None:
    marker = project / "imported.marker"
    (project / "trap.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('the store made me run')\nfrom flows import flow\n"
    )
    assert aetherflow(project, "run", "trap.py:flow", "-i", "n=2").returncode == 0
    marker.unlink()  # `run` imports its target: that is asked for; reading must not
    job_id = json.loads(aetherflow(project, "jobs", "--json").stdout)[0]["id"]
    report = project / "report.html"
    shown = aetherflow(project, "show", job_id, "--html", str(report))
    assert shown.returncode == 0, shown.stderr
    assert not marker.exists()
    assert "<svg" in report.read_text()  # the graph is drawn from the topology recorded with the job
    for command in (["jobs"], ["show", job_id], ["show", job_id, "--json"], ["stats", "summing"]):
        assert aetherflow(project, *command).returncode == 0
    assert not marker.exists()


def test_html_report_embeds_the_exact_text_for_scripts(project: Path) -> None:
    aetherflow(project, "run", "flows.py:markup", "-i", "n=1")
    job_id = json.loads(aetherflow(project, "jobs", "--json").stdout)[0]["id"]
    report = project / "report.html"
    assert aetherflow(project, "show", job_id, "--html", str(report)).returncode == 0
    page = report.read_text()
    script = page.split('<script type="application/json" id="aetherflow-data">')[1]
    assert script.count("</script>") == 1  # the error text cannot close the element early
    embedded = json.loads(script.split("</script>")[0])
    assert "</script><b>bold</b> & <!-- not a comment" in embedded["job"]["error"]


def test_a_job_id_prefix_is_found_among_all_jobs_not_only_the_newest(project: Path) -> None:
    from aetherflow import open_store

    store = open_store(f"sqlite:///{project / '.aetherflow' / 'runs.db'}", durability="async")
    store.create_job("feedbeef" + "0" * 24, "old-flow", {}, "w", 1.0)
    for i in range(10_050):
        store.create_job(f"{i:032x}", "new-flow", {}, "w", 2.0 + i)
    store.close()
    shown = aetherflow(project, "show", "feedbeef", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["job"]["flow"] == "old-flow"
    ambiguous = aetherflow(project, "show", "0000")
    assert ambiguous.returncode == 2 and "Several jobs start with '0000'" in ambiguous.stderr


def test_read_commands_never_write_to_the_store(project: Path) -> None:
    assert aetherflow(project, "run", "flows.py:flow", "-i", "n=2").returncode == 0
    db = project / ".aetherflow" / "runs.db"
    before = db.read_bytes()
    job_id = json.loads(aetherflow(project, "jobs", "--json").stdout)[0]["id"]
    for command in (["jobs"], ["show", job_id[:10]], ["show", job_id, "--json"], ["stats", "summing", "--json"]):
        assert aetherflow(project, *command).returncode == 0
    assert db.read_bytes() == before
    wal = project / ".aetherflow" / "runs.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # (-shm is SQLite's shared memory, not data)


def test_the_default_store_is_readable_by_its_owner_only(project: Path) -> None:
    assert aetherflow(project, "run", "flows.py:flow", "-i", "n=2").returncode == 0
    assert (project / ".aetherflow").stat().st_mode & 0o777 == 0o700
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in (project / ".aetherflow").iterdir())


def test_a_secret_input_is_in_no_output_record_or_file(project: Path) -> None:
    ran = aetherflow(project, "run", "flows.py:login", "--input", "password=hunter2")
    assert ran.returncode == 0, ran.stderr
    job_id = json.loads(aetherflow(project, "jobs", "--json").stdout)[0]["id"]
    printed = [ran.stdout, ran.stderr]
    for command in (["jobs"], ["jobs", "--json"], ["show", job_id], ["show", job_id, "--json"]):
        shown = aetherflow(project, *command)
        printed += [shown.stdout, shown.stderr]
    assert aetherflow(project, "show", job_id, "--html", str(project / "r.html")).returncode == 0
    assert not [text for text in printed if "hunter2" in text]
    assert b"hunter2" not in _store_bytes(project) and "hunter2" not in (project / "r.html").read_text()


def test_an_invalid_secret_input_is_not_printed(project: Path) -> None:
    (project / "pin.py").write_text(
        "from pydantic import SecretStr\nfrom aetherflow import node\n\n"
        "@node\ndef unlock(pin: SecretStr) -> int:\n    return 1\n"
    )
    for debug in ([], ["--debug"]):
        ran = aetherflow(project, *debug, "run", "pin.py:unlock", "--input", "pin=987654")
        assert ran.returncode == 1
        assert "not valid for SecretStr" in ran.stderr  # the error is still explained
        assert "987654" not in ran.stdout + ran.stderr


def test_resume_that_suspends_again_exits_3_and_a_completed_job_is_left_untouched(tmp_path: Path) -> None:
    import sqlite3

    (tmp_path / "gate.py").write_text(GATE)
    assert aetherflow(tmp_path, "run", "gate.py:gate").returncode == 3
    job_id = json.loads(aetherflow(tmp_path, "jobs", "--json").stdout)[0]["id"]
    again = aetherflow(tmp_path, "resume", job_id)
    assert again.returncode == 3 and "--answer" in again.stderr
    assert aetherflow(tmp_path, "resume", job_id, "--answer", '"go"').returncode == 0
    db = tmp_path / ".aetherflow" / "runs.db"

    def rows() -> list[object]:
        with sqlite3.connect(db) as conn:
            return [conn.execute(f"SELECT * FROM {t}").fetchall() for t in ("jobs", "node_runs", "events", "workers")]

    before = rows()
    assert aetherflow(tmp_path, "resume", job_id).stdout.strip().splitlines()[-1] == '"got go"'
    assert rows() == before  # not even a worker's heartbeat


SLOW_FLOW = """
import os, time
from aetherflow import node

@node
def first(n: int) -> int:
    return n + 1

@node
def slow(first: int) -> int:
    if os.environ.get("HANG"):
        print("HANGING", flush=True)
        time.sleep(60)
    return first * 10

flow = first.then(slow).named("slow-flow")
"""


def test_jobs_tells_a_job_whose_process_died_and_recover_takes_it_over(tmp_path: Path) -> None:

    (tmp_path / "slowflow.py").write_text(SLOW_FLOW)
    killed_while_running(tmp_path, "run", "slowflow.py:flow", "-i", "n=1")
    listed = aetherflow(tmp_path, "jobs")
    assert "owner gone" in listed.stdout and "aetherflow recover" in listed.stderr
    recovered = aetherflow(tmp_path, "recover")
    assert recovered.returncode == 0, recovered.stderr
    assert recovered.stdout.split()[1:] == ["slow-flow", "completed", "20"]
    assert json.loads(aetherflow(tmp_path, "jobs", "--json").stdout)[0]["status"] == "completed"
    assert "owner gone" not in aetherflow(tmp_path, "jobs").stdout


MARKUP = """
from aetherflow import node

@node
def reader(path: str) -> str:
    raise FileNotFoundError(f"[bold]no such file[/bold]: [/data/in.csv]\\nsecond line")

flow = reader.named("[red]odd[/red]-flow")
"""


def test_listings_print_user_text_as_written_with_the_first_line_of_each_error(tmp_path: Path) -> None:
    (tmp_path / "markup.py").write_text(MARKUP)
    assert aetherflow(tmp_path, "run", "markup.py:flow", "-i", "path=x").returncode == 1
    env_wide = {**os.environ, "COLUMNS": "250"}
    exe = shutil.which("aetherflow", path=os.path.dirname(sys.executable)) or "aetherflow"
    listed = subprocess.run([exe, "jobs"], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env_wide)
    assert listed.returncode == 0, listed.stderr
    assert "[red]odd[/red]-flow" in listed.stdout and "[/data/in.csv]" in listed.stdout
    assert "second line" not in listed.stdout  # the first line of the error
    job_id = json.loads(aetherflow(tmp_path, "jobs", "--json").stdout)[0]["id"]
    shown = subprocess.run(
        [exe, "show", job_id], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env_wide
    )
    assert shown.returncode == 0 and "[bold]no such file[/bold]" in shown.stdout
    assert aetherflow(tmp_path, "stats", "[red]odd[/red]-flow").returncode == 0
    bad = aetherflow(tmp_path, "jobs", "--status", "done")
    assert bad.returncode == 2 and "--status must be one of" in bad.stderr


def test_recover_goes_on_when_one_flows_code_has_moved(tmp_path: Path) -> None:
    from aetherflow import open_store

    (tmp_path / "ok.py").write_text(
        "from aetherflow import node\n\n@node\ndef ok(x: int) -> int:\n    return x + 1\n\nflow = ok.named('ok-flow')\n"
    )
    (tmp_path / ".aetherflow").mkdir()
    store = open_store(f"sqlite:///{tmp_path / '.aetherflow' / 'runs.db'}")
    store.remember_target("ok-flow", "ok.py:flow")
    store.remember_target("moved-flow", "moved.py:flow")  # its file is gone
    for job_id, flow in (("1" * 32, "moved-flow"), ("2" * 32, "ok-flow")):
        store.create_job(job_id, flow, {"x": 1}, "dead", 1.0, running=True, process=(1, "elsewhere"))
    store.close()
    recovered = aetherflow(tmp_path, "recover")
    assert recovered.returncode == 0, recovered.stderr
    assert "skipping flow 'moved-flow'" in recovered.stderr
    assert recovered.stdout.split() == ["222222222222", "ok-flow", "completed", "2"]


# -- flows that need a context, from any folder -----------------------------------------

ROOT = Path(__file__).resolve().parent.parent
POEM = "text=the flow runs\nthe nodes run"


def test_the_demo_flow_draws_without_a_context_and_runs_with_its_context_class() -> None:
    """`aetherflow graph` needs the topology only; `run --context module:Class` injects its providers."""
    drawn = aetherflow(ROOT, "graph", "examples/demo.py:flow")
    assert drawn.returncode == 0, drawn.stderr
    assert drawn.stdout.startswith("flowchart TD") and 'count_line[["count_line"]]' in drawn.stdout
    for ref in ("examples/demo.py:DemoContext", "examples.demo:DemoContext"):
        ran = aetherflow(ROOT, "run", "examples/demo.py:flow", "-i", POEM, "--context", ref, "--store", "memory://")
        assert ran.returncode == 0, ran.stderr
        assert json.loads(ran.stdout.strip().splitlines()[-1])["words"] == 6
    checked = aetherflow(ROOT, "graph", "examples/demo.py:flow", "--context", "examples/demo.py:DemoContext")
    assert checked.returncode == 0 and checked.stdout == drawn.stdout


def test_a_flow_without_its_context_names_the_context_it_needs() -> None:
    """The error blames the missing providers and says which context has them, not the map."""
    bare = aetherflow(ROOT, "run", "examples/demo.py:flow", "-i", POEM, "--store", "memory://")
    assert bare.returncode == 2
    assert bare.stderr.strip() == (
        "error: Flow 'word-count' asks for 'totals' (node 'count_line' (demo.py:35), node 'summary' (demo.py:45)) "
        "and 'scratch' (node 'count_line' (demo.py:35)), which no context provides: it ran without a context. "
        "DemoContext (in examples/demo.py) provides them: pass --context examples/demo.py:DemoContext."
    )


def test_the_wrong_context_is_named(project: Path) -> None:
    """A context given that lacks a provider is named, with the providers it has."""
    (project / "svc.py").write_text(
        "from aetherflow import BaseFlowContext, node, providers\n\n"
        "class Small(BaseFlowContext):\n    other = providers.Object(1)\n\n"
        "class Big(BaseFlowContext):\n    db = providers.Object({'k': 'v'})\n\n"
        "@node\ndef read(key: str, db) -> str:\n    return db[key]\n"
    )
    wrong = aetherflow(project, "run", "svc.py:read", "-i", "key=k", "--context", "svc.py:Small")
    assert wrong.returncode == 2
    assert wrong.stderr.strip() == (
        "error: Flow 'read' asks for 'db' (node 'read' (svc.py:9)), which no context provides: "
        "it ran with the context Small (providers: other). Big (in svc.py) provides it: pass --context svc.py:Big."
    )
    right = aetherflow(project, "run", "svc.py:read", "-i", "key=k", "--context", "svc:Big")
    assert right.returncode == 0, right.stderr
    assert right.stdout.strip().splitlines()[-1] == '"v"'


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (
            "nothere.py:Ctx",
            "--context nothere.py:Ctx: no file nothere.py (looked in {cwd}). "
            "Give path/to/file.py:Class, package.module:Class or a .toml profile.",
        ),
        (
            "nomodule:Ctx",
            "--context nomodule:Ctx: no module named 'nomodule' (looked in {cwd} and the installed packages). "
            "Give path/to/file.py:Class, package.module:Class or a .toml profile.",
        ),
        (
            "ctx.py:Contxt",
            "--context ctx.py:Contxt: 'Contxt' in ctx.py does not exist. Did you mean 'Context'? Contexts there: Context.",
        ),
        (
            "ctx.py:helper",
            "--context ctx.py:helper: 'helper' in ctx.py is a function, not a BaseFlowContext subclass or instance. "
            "Contexts there: Context.",
        ),
        (
            "Context",
            "--context Context: expected module:Class, path/to/file.py:Class or a .toml profile.",
        ),
        (
            "broken.py:Ctx",
            "--context broken.py:Ctx: importing broken.py raised ModuleNotFoundError: No module named 'not_installed_anywhere'. "
            "Fix the import, or install what it needs.",
        ),
    ],
    ids=["no-file", "no-module", "typo", "not-a-context", "no-colon", "import-fails"],
)
def test_a_context_that_cannot_be_imported_says_what_where_and_how_to_fix(
    project: Path, ref: str, message: str
) -> None:
    """Each way a --context reference can be wrong gets one line and exit code 2."""
    (project / "ctx.py").write_text(
        "from aetherflow import BaseFlowContext, providers\n\n"
        "class Context(BaseFlowContext):\n    db = providers.Object(1)\n\ndef helper() -> None: ...\n"
    )
    (project / "broken.py").write_text("import not_installed_anywhere\n")
    result = aetherflow(project, "run", "flows.py:flow", "-i", "n=1", "--context", ref)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: " + message.format(cwd=project)


SERVICE_GATE = """
from aetherflow import BaseFlowContext, Suspend, node, providers

class Services(BaseFlowContext):
    greeting = providers.Object("hello")

@node
def greet(name: str, greeting, answer: str | None = None) -> str:
    if answer is None:
        raise Suspend("ok?")
    return f"{greeting} {name} ({answer})"

flow = greet.named("greeter")
"""


def test_resume_from_another_folder_finds_the_flow_and_its_context(tmp_path: Path) -> None:
    """`run sub/flows.py:flow` from one folder, `resume` from another: the code and context are found."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "gate.py").write_text(SERVICE_GATE)
    (tmp_path / "elsewhere").mkdir()
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    first = aetherflow(
        tmp_path, "run", "sub/gate.py:flow", "-i", "name=ada", "--context", "sub/gate.py:Services", "--store", store
    )
    assert first.returncode == 3, first.stderr
    job_id = json.loads(aetherflow(tmp_path, "jobs", "--json", "--store", store).stdout)[0]["id"]
    resumed = aetherflow(tmp_path / "elsewhere", "resume", job_id, "--answer", '"yes"', "--store", store)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip().splitlines()[-1] == '"hello ada (yes)"'


def test_recover_from_another_folder_finds_the_flow(tmp_path: Path) -> None:
    """`recover` started elsewhere takes over a job that `run` started with a relative target."""

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "slowflow.py").write_text(SLOW_FLOW)
    (tmp_path / "elsewhere").mkdir()
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    killed_while_running(tmp_path, "run", "sub/slowflow.py:flow", "-i", "n=1", "--store", store)
    recovered = aetherflow(tmp_path / "elsewhere", "recover", "--store", store)
    assert recovered.returncode == 0, recovered.stderr
    assert recovered.stdout.split()[1:] == ["slow-flow", "completed", "20"]


# A project laid out as DESIGN §3 has it: flows/, contexts/ (TOML profiles) and a package of
# its own that `run` imports from the project folder (it is not installed).
GREETING_GATE = """
from aetherflow import Suspend, node

@node
def greet(name: str, greeting: str, cache: dict, answer: str | None = None) -> str:
    if answer is None:
        raise Suspend("ok?")
    return f"{greeting} {name} ({answer})"

flow = greet.named("greeter")
"""

SLOW_GREET = """
import os
import time

from aetherflow import node

@node
def first(n: int, greeting: str) -> str:
    return f"{greeting}-{n}"

@node
def slow(first: str, cache: dict) -> str:
    if os.environ.get("HANG"):
        print("HANGING", flush=True)
        time.sleep(60)
    return first + "!"

flow = first.then(slow).named("slow-greeter")
"""

APP_CONTEXT = """
from aetherflow import BaseFlowContext, providers

class AppContext(BaseFlowContext):
    greeting = providers.Object("hello")
    cache = providers.Singleton(dict)
"""

APP_PROFILE = '[context]\nbase = "mypkg.ctx:AppContext"\n[providers.cache]\nscope = "thread"\n'


@pytest.fixture
def package_project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    for folder in ("flows", "mypkg", "contexts"):
        (root / folder).mkdir(parents=True)
    (root / "flows" / "gate.py").write_text(GREETING_GATE)
    (root / "flows" / "slow.py").write_text(SLOW_GREET)
    (root / "mypkg" / "__init__.py").write_text("")
    (root / "mypkg" / "gate.py").write_text(GREETING_GATE)
    (root / "mypkg" / "slow.py").write_text(SLOW_GREET)
    (root / "mypkg" / "ctx.py").write_text(APP_CONTEXT)
    (root / "contexts" / "p.toml").write_text(APP_PROFILE)
    (tmp_path / "elsewhere").mkdir()
    return root


def _suspended_greeting(project: Path, target: str, context: str, store: str) -> str:
    """`run` from the project folder, suspended at its question; the job's id."""
    first = aetherflow(project, "run", target, "-i", "name=ada", "--context", context, "--store", store)
    assert first.returncode == 3, first.stderr
    return str(json.loads(aetherflow(project, "jobs", "--json", "--store", store).stdout)[0]["id"])


@pytest.mark.parametrize(
    ("target", "context"),
    [
        ("flows/gate.py:flow", "contexts/p.toml"),
        ("flows/gate.py:flow", "mypkg.ctx:AppContext"),
        ("mypkg.gate:flow", "mypkg.ctx:AppContext"),
        ("mypkg.gate:flow", "contexts/p.toml"),
    ],
    ids=["profile-with-a-package-base", "dotted-context", "dotted-target", "dotted-target-and-profile"],
)
def test_resume_from_any_folder_finds_what_run_imported_from_its_folder(
    package_project: Path, target: str, context: str
) -> None:
    """docs/cli.md: `run` records the target and --context so that `resume` finds both from any folder."""
    store = f"sqlite:///{package_project / 'runs.db'}"
    job_id = _suspended_greeting(package_project, target, context, store)
    resumed = aetherflow(package_project.parent / "elsewhere", "resume", job_id, "--answer", '"yes"', "--store", store)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip().splitlines()[-1] == '"hello ada (yes)"'


@pytest.mark.parametrize(
    ("target", "context"),
    [("flows/slow.py:flow", "contexts/p.toml"), ("mypkg.slow:flow", "mypkg.ctx:AppContext")],
    ids=["profile-with-a-package-base", "dotted-target-and-context"],
)
def test_recover_from_any_folder_finds_what_run_imported_from_its_folder(
    package_project: Path, target: str, context: str
) -> None:
    """`recover` started elsewhere takes over a job whose flow and context `run` imported from its folder."""

    store = f"sqlite:///{package_project / 'runs.db'}"
    killed_while_running(package_project, "run", target, "-i", "n=1", "--context", context, "--store", store)
    recovered = aetherflow(package_project.parent / "elsewhere", "recover", "--store", store)
    assert recovered.returncode == 0, recovered.stderr
    assert recovered.stdout.split()[1:] == ["slow-greeter", "completed", '"hello-1!"']


def test_resume_of_a_project_that_moved_names_the_folder_run_used_and_what_to_pass(package_project: Path) -> None:
    """When the folder `run` imported the flow from is gone, `resume` says where it looked and what to pass."""
    store = f"sqlite:///{package_project.parent / 'runs.db'}"
    job_id = _suspended_greeting(package_project, "mypkg.gate:flow", "mypkg.ctx:AppContext", store)
    package_project.rename(package_project.parent / "moved")
    resumed = aetherflow(package_project.parent / "elsewhere", "resume", job_id, "--answer", '"yes"', "--store", store)
    assert resumed.returncode == 2
    assert resumed.stderr.strip() == (
        f"error: No module named 'mypkg.gate' (No module named 'mypkg'; looked in {package_project.resolve()}, "
        "where `run` imported it from, and the installed packages). If the code moved, pass --target with where it is now."
    )
    moved = package_project.parent / "moved"
    by_file = aetherflow(
        package_project.parent / "elsewhere", "resume", job_id, "--answer", '"yes"',
        "--target", str(moved / "flows" / "gate.py") + ":flow", "--store", store,
    )  # fmt: skip
    assert by_file.returncode == 2
    assert by_file.stderr.strip() == (
        f"error: --context mypkg.ctx:AppContext: no module named 'mypkg.ctx' (looked in {package_project.resolve()}, "
        "where `run` imported it from, and the installed packages). If the code moved, pass --context with where it is now."
    )
    again = aetherflow(moved, "resume", job_id, "--answer", '"yes"', "--target", "mypkg.gate:flow", "--store", store)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().splitlines()[-1] == '"hello ada (yes)"'


def test_resume_reads_what_older_runs_recorded_a_dotted_module_by_name(package_project: Path) -> None:
    """A run recorded before folders were (a dotted module by name only) resumes from its project folder."""
    from aetherflow import open_store

    store = f"sqlite:///{package_project / 'runs.db'}"
    job_id = _suspended_greeting(package_project, "mypkg.gate:flow", "mypkg.ctx:AppContext", store)
    st = open_store(store)
    st.remember_target("greeter", "mypkg.gate:flow --context mypkg.ctx:AppContext")
    st.close()
    resumed = aetherflow(package_project, "resume", job_id, "--answer", '"yes"', "--store", store)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip().splitlines()[-1] == '"hello ada (yes)"'


def test_a_failed_node_prints_one_line(project: Path) -> None:
    """The node's error is printed once (as the `error:` line), not also as a log record."""
    ran = aetherflow(project, "run", "flows.py:boom", "-i", "n=1")
    assert ran.returncode == 1
    lines = ran.stderr.strip().splitlines()
    assert [line for line in lines if "bad n" in line] == [lines[-1]]
    assert lines[-1].startswith("error: Node 'boom'")


def imported_modules(cwd: Path, *args: str) -> set[str]:
    """The modules ``aetherflow *args`` has imported when it exits (it must succeed)."""
    probe = (
        "import sys, atexit\n"
        "atexit.register(lambda: print('MODULES', ' '.join(sorted(sys.modules)), file=sys.stderr))\n"
        "from aetherflow.cli import main\n"
        "sys.argv = ['aetherflow', *sys.argv[1:]]\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", probe, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return set(result.stderr.rsplit("MODULES ", 1)[1].split())


def test_help_and_jobs_import_no_flow_machinery(project: Path) -> None:
    """`--help` and `jobs` start fast: they import neither the flow engine, rich's markdown, pydantic nor typer."""
    heavy = {
        "aetherflow.node",
        "aetherflow.flow",
        "aetherflow.graph",
        "aetherflow.worker",
        "rich.markdown",
        "pydantic",  # validation: no value is read back through an annotation by --help or jobs
        "typer",  # its options are built through pydantic; the CLI parses with click
    }
    for args in (["--help"], ["jobs"]):
        assert heavy & imported_modules(project, *args) == set(), args


def test_show_and_stats_read_history_without_pydantic(project: Path) -> None:
    """Looking at a recorded job (`show`, `stats`, as text or JSON) imports neither the flow engine nor pydantic."""
    ran = aetherflow(project, "run", "flows.py:flow", "-i", "n=3")
    assert ran.returncode == 0, ran.stderr
    job_id = json.loads(aetherflow(project, "jobs", "--json").stdout)[0]["id"]
    heavy = {"aetherflow.node", "aetherflow.worker", "pydantic"}
    for args in (["show", job_id], ["show", job_id, "--json"], ["stats", "summing"], ["stats", "summing", "--json"]):
        assert heavy & imported_modules(project, *args) == set(), args
