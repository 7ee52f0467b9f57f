"""The run dashboard (`aetherflow ui`): its pages, as a user reads them, over real stores filled by a real Worker."""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the dashboard needs the 'ui' extra: pip install 'aetherflow[ui]'")

from starlette.testclient import TestClient

from aetherflow import Suspend, Worker, node, open_store
from aetherflow.ui.app import create_app
from storecase import postgres_url

XSS = "<script>alert('x')</script>"


@node
def greet(name: str) -> str:
    return f"hello {name}"


@node
def explode(n: int) -> int:
    raise ValueError(f"bad n {XSS}")


@node
def split(n: int) -> list[int]:
    return list(range(n))


@node
def work(x: int) -> int:
    if x == 2:
        raise RuntimeError("item 2 is broken")
    return x * 10


@node
def total(work: list[int]) -> int:
    return sum(work)


@node
def ask(n: int, answer: Any = None) -> str:
    if answer is None:
        raise Suspend("Approve the payout?")
    return f"answered {answer}"


@node
def step(job_state: Any) -> int:
    c = job_state.get("count", 0) + 1
    job_state.set("count", c)
    job_state.set("seen", [*job_state.get("seen", []), c])
    return c


@node
def check(step: int) -> bool:
    return step >= 3


@node
def finish() -> str:
    return "done"


@node
def big(n: int) -> str:
    return "x" * n + "END"


hello = greet.named("hello")
failing = explode.named("failing")
mapped = split.map(work).fan_in(total).named("mapped")
approval = ask.named("approval")
looping = step.then(check).branch_on({False: step, True: finish}).named("looping")
large = big.named("large")


def fill(url: str) -> dict[str, str]:
    """One job of each kind; returns {kind: job id}."""
    ids: dict[str, str] = {}
    with Worker(store=url, threads=2, name="filler") as w:
        for kind, flow, inputs in [
            ("hello", hello, {"name": XSS}),
            ("failing", failing, {"n": 1}),
            ("mapped", mapped, {"n": 4}),
            ("approval", approval, {"n": 1}),
            ("looping", looping, {}),
            ("large", large, {"n": 5000}),
        ]:
            job = w.submit(flow, inputs)
            ids[kind] = job.id
            with contextlib.suppress(Exception):  # failures and suspensions are what these jobs are for
                job.result(timeout=30)
    return ids


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('ui') / 'runs.db'}"
    return url, fill(url)


@pytest.fixture(scope="module")
def client(filled: tuple[str, dict[str, str]]) -> Iterator[TestClient]:
    store = open_store(filled[0])
    with TestClient(create_app(store)) as c:
        yield c
    store.close()


@pytest.fixture
def ids(filled: tuple[str, dict[str, str]]) -> dict[str, str]:
    return filled[1]


def text_of(page: str) -> str:
    """What a user reads: tags dropped, entities decoded, spaces collapsed."""
    no_tags = re.sub(r"<script\b[^>]*>.*?</script>|<[^>]+>", " ", page, flags=re.S)
    return " ".join(html.unescape(no_tags).split())


# -- jobs ---------------------------------------------------------------------------------------


def test_jobs_page_lists_newest_first_with_counts_per_status(client: TestClient, ids: dict[str, str]) -> None:
    r = client.get("/jobs")
    assert r.status_code == 200
    order = re.findall(r'data-job="([0-9a-f]{32})"', r.text)
    assert order == [ids[k] for k in ("large", "looping", "approval", "mapped", "failing", "hello")]
    counts = dict(re.findall(r'data-status="(\w+)"[^>]*>.*?<b>(\d+)</b>', r.text))
    assert counts == {
        "pending": "0",
        "running": "0",
        "completed": "3",
        "failed": "2",
        "suspended": "1",
        "cancelled": "0",
    }
    assert "all 6" in text_of(r.text)


def test_root_redirects_to_jobs(client: TestClient) -> None:
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/jobs"


def test_jobs_filter_by_status_flow_and_id_prefix(client: TestClient, ids: dict[str, str]) -> None:
    failed = re.findall(r'data-job="([0-9a-f]{32})"', client.get("/jobs?status=failed").text)
    assert failed == [ids["mapped"], ids["failing"]]
    assert re.findall(r'data-job="([0-9a-f]{32})"', client.get("/jobs?flow=approval").text) == [ids["approval"]]
    prefix = ids["looping"][:6]
    found = re.findall(r'data-job="([0-9a-f]{32})"', client.get(f"/jobs?id={prefix}").text)
    assert found == [j for j in reversed(list(ids.values())) if j.startswith(prefix)]
    assert "No jobs match these filters" in text_of(client.get("/jobs?flow=nope").text)


def test_jobs_filter_by_time_range(client: TestClient) -> None:
    assert len(re.findall(r'data-job="', client.get("/jobs?since=2000-01-01T00:00").text)) == 6
    assert "No jobs match" in text_of(client.get("/jobs?until=2000-01-01T00:00").text)


def test_jobs_pagination_walks_every_job_once(client: TestClient, ids: dict[str, str]) -> None:
    seen: list[str] = []
    url: str | None = "/jobs?size=4"
    pages = 0
    while url:
        page = client.get(url).text
        seen += re.findall(r'data-job="([0-9a-f]{32})"', page)
        nxt = re.search(r'href="([^"]+)" id="next-page"', page)
        url = html.unescape(nxt.group(1)) if nxt else None
        pages += 1
    assert pages == 2
    assert seen == [ids[k] for k in ("large", "looping", "approval", "mapped", "failing", "hello")]


# -- one job ------------------------------------------------------------------------------------------


def test_failed_job_shows_error_and_traceback_escaped(client: TestClient, ids: dict[str, str]) -> None:
    r = client.get(f"/jobs/{ids['failing']}")
    assert r.status_code == 200
    assert XSS not in r.text  # never raw
    assert "bad n &lt;script&gt;alert(" in r.text
    seen = text_of(r.text)
    assert "failed" in seen
    assert f"ValueError: bad n {XSS}" in seen
    assert "Traceback (most recent call last)" in seen
    assert 'raise ValueError(f"bad n {XSS}")' in seen  # the line of the user's code


def test_inputs_are_escaped(client: TestClient, ids: dict[str, str]) -> None:
    r = client.get(f"/jobs/{ids['hello']}")
    assert XSS not in r.text
    seen = text_of(r.text)
    assert f'"{XSS}"' in seen  # the input, as JSON
    assert f'"hello {XSS}"' in seen  # the output
    assert "<script>" not in client.get(f"/jobs/{ids['hello']}/value?what=input:name").text.replace(
        '<script src="/static/app.js" defer></script>', ""
    )


def test_mapped_job_marks_the_vertex_with_a_failed_item_failed(client: TestClient, ids: dict[str, str]) -> None:
    r = client.get(f"/jobs/{ids['mapped']}")
    vertex = dict(re.findall(r'class="vertex" data-node="(\w+)" data-status="([\w ]+)"', r.text))
    assert vertex == {"split": "completed", "work": "failed", "total": "not run"}
    seen = text_of(r.text)
    assert re.search(r"failed · \d/\d items, 1 failed", seen)
    assert "failed items: 2" in seen  # hover title
    assert "work[2]" in seen  # the item index on its timeline bar
    assert "RuntimeError: item 2 is broken" in seen


def test_loop_job_draws_the_loop_edge_with_its_label_and_shows_state_diffs(
    client: TestClient, ids: dict[str, str]
) -> None:
    r = client.get(f"/jobs/{ids['looping']}")
    vertex = dict(re.findall(r'class="vertex" data-node="(\w+)" data-status="([\w ]+)"', r.text))
    assert vertex["step"] == "completed" and vertex["check"] == "completed" and vertex["finish"] == "completed"
    assert r.text.count('class="edge loop"') == 1
    assert "completed · ×3" in text_of(r.text)  # step ran three times
    # state: three commits of `count`, each with its before and after
    rows = re.findall(
        r'<td><b>count</b></td>\s*<td class="before">(.*?)</td>\s*<td class="after">(.*?)</td>', r.text, flags=re.S
    )
    assert [(text_of(b), text_of(a)) for b, a in rows] == [("—", "1"), ("1", "2"), ("2", "3")]
    seen = text_of(r.text)
    assert "[ 1, 2 ]" in seen.replace("\n", " ") or "[1, 2]" in seen


def test_suspended_job_shows_its_question_and_how_to_resume(client: TestClient, ids: dict[str, str]) -> None:
    seen = text_of(client.get(f"/jobs/{ids['approval']}").text)
    assert "Waiting for an answer" in seen
    assert "Node ask asks: Approve the payout?" in seen
    assert "code location is unknown" in seen  # started from Python: no resume button, but how
    assert f'worker.resume("{ids["approval"]}")' in seen


def test_event_log_and_node_runs(client: TestClient, ids: dict[str, str]) -> None:
    r = client.get(f"/jobs/{ids['mapped']}")
    types = re.findall(r'<tr data-type="(\w+)">', r.text)
    assert types[0] == "job_created" and types[-1] == "job_failed"
    assert "node_failed" in types
    runs = re.findall(r'class="run" data-node="(\w+)" data-status="(\w+)"', r.text)
    assert ("work", "failed") in runs and ("split", "completed") in runs


def test_large_output_is_truncated_with_a_link_to_the_whole_value(client: TestClient, ids: dict[str, str]) -> None:
    r = client.get(f"/jobs/{ids['large']}")
    assert "END" not in text_of(r.text)
    link = re.search(r'href="(/jobs/[0-9a-f]+/value\?what=output)"', r.text)
    assert link, "no link to the whole output"
    whole = client.get(link.group(1))
    assert whole.status_code == 200 and "x" * 5000 + "END" in whole.text


def test_job_by_unique_prefix(client: TestClient, ids: dict[str, str]) -> None:
    r = client.get(f"/jobs/{ids['hello'][:10]}")
    assert r.status_code == 200 and ids["hello"] in r.text


def test_unknown_job_is_404_with_a_helpful_message(client: TestClient) -> None:
    r = client.get("/jobs/feedfacefeedface")
    assert r.status_code == 404
    seen = text_of(r.text)
    assert "No job 'feedfacefeedface' in this store" in seen and "Jobs page lists the jobs here" in seen
    assert client.get("/no/such/page").status_code == 404
    r = client.get(f"/jobs/{XSS}")
    assert r.status_code == 404 and XSS not in r.text


# -- flows and workers -----------------------------------------------------------------------------------


def test_flows_page_has_success_rates(client: TestClient) -> None:
    r = client.get("/flows")
    assert r.status_code == 200
    flows = re.findall(r'<tr data-flow="(\w+)">', r.text)
    assert sorted(flows) == ["approval", "failing", "hello", "large", "looping", "mapped"]
    row = re.search(r'<tr data-flow="hello">.*?</tr>', r.text, flags=re.S)
    assert row and "100%" in row.group(0)
    row = re.search(r'<tr data-flow="failing">.*?</tr>', r.text, flags=re.S)
    assert row and "0%" in row.group(0)


def test_flow_page_has_per_node_stats_and_charts(client: TestClient) -> None:
    r = client.get("/flows/mapped")
    assert r.status_code == 200
    nodes = {
        n: (runs, failed)
        for n, runs, failed in re.findall(
            r'<tr data-node="(\w+)"><td>\w+</td><td>(\d+)</td><td[^>]*>(\d+)</td>', r.text
        )
    }
    assert nodes["work"][0] in ("3", "4") and nodes["work"][1] == "1"  # item 3 may be cut short by item 2's failure
    assert nodes["split"] == ("1", "0")
    assert r.text.count("<svg") == 2  # jobs over time, durations
    assert client.get("/flows/nope").status_code == 404


def test_workers_page_lists_the_worker_that_wrote_the_store(client: TestClient) -> None:
    r = client.get("/workers")
    assert r.status_code == 200
    assert 'data-worker="filler"' in r.text
    assert "gone" in text_of(r.text) or "alive" in text_of(r.text)


def test_static_assets_are_served_from_the_package(client: TestClient) -> None:
    assert "setTimeout" in client.get("/static/app.js").text
    assert client.get("/static/style.css").status_code == 200


# -- actions ---------------------------------------------------------------------------------------------


def test_actions_need_the_csrf_token(client: TestClient, ids: dict[str, str]) -> None:
    r = client.post(f"/jobs/{ids['approval']}/cancel", data={"csrf": "forged"})
    assert r.status_code == 403 and "CSRF" in r.text
    assert client.get(f"/jobs/{ids['approval']}").text.count('data-status="suspended"') >= 1
    assert client.get(f"/jobs/{ids['approval']}/cancel").status_code == 405  # only POST acts


def csrf_of(page: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', page)
    assert m, "no CSRF field on the page"
    return m.group(1)


@node
def sleepy(seconds: float) -> float:
    end = time.time() + seconds
    while time.time() < end:
        time.sleep(0.02)
    return seconds


@node
def after(sleepy: float) -> float:
    return sleepy


def test_cancel_from_the_dashboard_is_honoured_by_the_owning_worker_within_a_heartbeat(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    flow = sleepy.then(after).named("sleepy")
    with Worker(store=url, threads=2, lease=0.6, name="busy") as w:
        job = w.submit(flow, {"seconds": 0.3})
        store = open_store(url)
        with TestClient(create_app(store)) as c:
            page = c.get(f"/jobs/{job.id}").text
            assert 'data-live="on"' in page  # polls while it runs
            r = c.post(f"/jobs/{job.id}/cancel", data={"csrf": csrf_of(page)}, follow_redirects=True)
            assert "Cancel requested" in text_of(r.text)
            deadline = time.time() + 5
            while job.status != "cancelled" and time.time() < deadline:
                time.sleep(0.05)
            assert job.status == "cancelled"
            store.flush()
            page = c.get(f"/jobs/{job.id}").text
            assert 'data-status="cancelled"' in page
            types = re.findall(r'<tr data-type="(\w+)">', page)
            assert "cancel_requested" in types and types[-1] == "job_cancelled"
            assert "after" not in [n for n, _ in re.findall(r'class="run" data-node="(\w+)" data-status="(\w+)"', page)]
        store.close()


def test_cancel_a_suspended_job_records_it_cancelled(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    with Worker(store=url, threads=1) as w:
        job = w.submit(approval, {"n": 1})
        with pytest.raises(Exception, match="suspended"):
            job.result(timeout=10)
    store = open_store(url)
    with TestClient(create_app(store)) as c:
        page = c.get(f"/jobs/{job.id}").text
        r = c.post(f"/jobs/{job.id}/cancel", data={"csrf": csrf_of(page)}, follow_redirects=True)
        assert 'data-status="cancelled"' in r.text
    assert store.job(job.id).status == "cancelled"
    store.close()


FLOWS_FILE = """
from aetherflow import Suspend, node

@node
def gate(n: int, answer=None) -> str:
    if answer is None:
        raise Suspend("Ship it?")
    return f"shipped {n} with {answer}"

flow = gate.named("gate")
"""


def aetherflow(cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("aetherflow", path=os.path.dirname(sys.executable)) or "aetherflow"
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_resume_with_an_answer_runs_aetherflow_resume_in_a_subprocess(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "flows.py").write_text(FLOWS_FILE)
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    ran = aetherflow(tmp_path, "run", "flows.py:flow", "--input", "n=3", "--store", url)
    assert ran.returncode == 3, ran.stderr  # suspended
    store = open_store(url)
    (job,) = store.jobs()
    with TestClient(create_app(store, cwd=str(tmp_path))) as c:
        page = c.get(f"/jobs/{job.id}").text
        assert "Ship it?" in text_of(page) and 'id="resume-button"' in page
        r = c.post(
            f"/jobs/{job.id}/resume", data={"csrf": csrf_of(page), "answer": "yes please"}, follow_redirects=True
        )
        assert "Resuming in process" in text_of(r.text)
        assert 'data-live="on"' in r.text  # the page follows the resumed job
        deadline = time.time() + 30
        while store.job(job.id).status != "completed" and time.time() < deadline:
            time.sleep(0.1)
        assert store.job(job.id).status == "completed"
        assert store.job(job.id).output == "shipped 3 with yes please"
        page = c.get(f"/jobs/{job.id}").text
        assert "job_answered" in re.findall(r'<tr data-type="(\w+)">', page)
        dash = c.app.state.dashboard  # type: ignore[attr-defined]
        for _, child in dash.children:
            child.wait(timeout=30)
    store.close()


def test_topology_is_recorded_once_per_flow_and_used_for_the_graph(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    with Worker(store=url, threads=2) as w:
        calls: list[str] = []
        real = w.store.remember_topology
        w.store.remember_topology = lambda flow, topo: (calls.append(flow), real(flow, topo))[1]  # type: ignore[method-assign]
        for _ in range(3):
            w.submit(mapped, {"n": 2}).result(timeout=10)
        assert calls == ["mapped"]
    topo = json.loads(open_store(url).topology_of("mapped") or "{}")
    assert [v["name"] for v in topo["vertices"]] == ["split", "work", "total"]
    assert [v["mapped"] for v in topo["vertices"]] == [False, True, False]
    assert {(e["src"], e["dst"], e["label"]) for e in topo["edges"]} == {
        ("split", "work", "map"),
        ("work", "total", ""),
    }


# -- safety ----------------------------------------------------------------------------------------------


def test_a_token_is_checked_on_every_request(filled: tuple[str, dict[str, str]]) -> None:
    store = open_store(filled[0])
    with TestClient(create_app(store, token="s3cret")) as c:
        r = c.get("/jobs")
        assert r.status_code == 401 and "token" in r.text
        assert c.get("/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/jobs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        r = c.get("/jobs?token=s3cret", follow_redirects=False)
        assert r.status_code == 303 and "token=" not in r.headers["location"]
        assert c.get("/jobs").status_code == 200  # the cookie now
    store.close()


def test_cli_refuses_a_public_host_without_a_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AETHERFLOW_UI_TOKEN"}
    exe = shutil.which("aetherflow", path=os.path.dirname(sys.executable)) or "aetherflow"
    r = subprocess.run(
        [exe, "ui", "--host", "0.0.0.0", "--store", f"sqlite:///{tmp_path / 'r.db'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert r.returncode == 2
    assert "token" in r.stderr and "AETHERFLOW_UI_TOKEN" in r.stderr


def test_import_aetherflow_does_not_import_the_web_stack() -> None:
    # (dependency-injector's wiring probes fast_depends, which may load a few starlette
    # modules when starlette is installed; the dashboard's own stack must stay unloaded)
    web = ("aetherflow.ui.app", "starlette.applications", "starlette.routing", "uvicorn", "jinja2")
    code = f"import sys, aetherflow, aetherflow.ui; print(sorted(m for m in sys.modules if m in {web!r}))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_cli_ui_serves_the_dashboard(tmp_path: Path, filled: tuple[str, dict[str, str]]) -> None:
    import urllib.request

    exe = shutil.which("aetherflow", path=os.path.dirname(sys.executable)) or "aetherflow"
    proc = subprocess.Popen(
        [exe, "ui", "--store", filled[0], "--port", "0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.stderr else ""
        with urllib.request.urlopen(url + "jobs", timeout=10) as resp:
            page = resp.read().decode()
        assert filled[1]["failing"] in page
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for f in (proc.stdout, proc.stderr):
            if f:
                f.close()


# -- PostgreSQL ---------------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_pages_on_a_postgres_store() -> None:
    url = postgres_url()
    ids = fill(url)
    store = open_store(url)
    try:
        with TestClient(create_app(store)) as c:
            jobs = c.get("/jobs").text
            assert re.findall(r'data-job="([0-9a-f]{32})"', jobs)[0] == ids["large"]
            page = c.get(f"/jobs/{ids['mapped']}").text
            assert (
                dict(re.findall(r'class="vertex" data-node="(\w+)" data-status="([\w ]+)"', page))["work"] == "failed"
            )
            assert "Traceback (most recent call last)" in text_of(c.get(f"/jobs/{ids['failing']}").text)
            assert c.get("/flows/looping").status_code == 200
            assert 'data-worker="filler"' in c.get("/workers").text
    finally:
        store.close()


def test_the_dashboard_reads_while_a_worker_writes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    store = open_store(url)
    stop = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with Worker(store=url, threads=2) as w:
                while not stop.is_set():
                    try:
                        w.submit(mapped, {"n": 2}).result(timeout=10)
                    except Exception as exc:  # noqa: BLE001
                        errors.append(exc)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=write)
    t.start()
    try:
        with TestClient(create_app(store)) as c:
            for _ in range(20):
                assert c.get("/jobs").status_code == 200
                assert c.get("/flows").status_code == 200
    finally:
        stop.set()
        t.join(timeout=30)
        store.close()
    assert not errors


def test_a_cancel_request_counts_only_until_the_job_runs_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    with Worker(store=url, threads=1, flows=[approval]) as w:
        job = w.submit(approval, {"n": 1})
        with pytest.raises(Exception, match="suspended"):
            job.result(timeout=10)
        w.store.request_cancel(job.id, time.time(), "test")
        assert w.store.cancel_requests([job.id, "other"]) == [job.id]
        resumed = w.resume(job.id, answer="ok")
        assert resumed.result(timeout=10) == "answered ok"
        assert w.store.cancel_requests([job.id]) == []  # an old request does not cancel the resumed run


def test_show_html_exports_the_job_page_as_one_file(filled: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    url, ids = filled
    report = tmp_path / "mapped.html"
    r = aetherflow(tmp_path, "show", ids["mapped"], "--html", str(report), "--store", url)
    assert r.returncode == 0, r.stderr
    page = report.read_text()
    vertex = dict(re.findall(r'class="vertex" data-node="(\w+)" data-status="([\w ]+)"', page))
    assert vertex == {"split": "completed", "work": "failed", "total": "not run"}  # graph of a job started from Python
    seen = text_of(page)
    assert "Traceback (most recent call last)" in seen and "RuntimeError: item 2 is broken" in seen
    assert "work[2]" in seen  # item index
    assert "<script src" not in page and "/static/" not in page and 'method="post"' not in page
    assert "http" not in page.replace("http://www.w3.org/2000/svg", "")  # opens without network
    embedded = json.loads(page.split('id="aetherflow-data">')[1].split("</script>")[0])
    assert embedded["job"]["status"] == "failed" and "work" in [run["node"] for run in embedded["runs"]]
    loop = tmp_path / "loop.html"
    assert aetherflow(tmp_path, "show", ids["looping"], "--html", str(loop), "--store", url).returncode == 0
    assert loop.read_text().count('class="edge loop"') == 1
    hello = tmp_path / "hello.html"
    assert aetherflow(tmp_path, "show", ids["hello"], "--html", str(hello), "--store", url).returncode == 0
    assert XSS not in hello.read_text()
