"""The dashboard in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven by Selenium.

Clicks through as a user: the jobs list, filter the failed jobs, open one and read its
traceback, open a suspended job, resume it with an answer and watch it complete without
reloading. Screenshots go to $AETHERFLOW_ARTIFACTS (or the test's tmp folder).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if not CHROMIUM or not CHROMEDRIVER:
    pytest.skip(
        "the browser test needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run does it)",
        allow_module_level=True,
    )
pytest.importorskip("selenium", reason="the browser test needs selenium (in the 'dev' extra)")
pytest.importorskip("starlette", reason="the dashboard needs the 'ui' extra")

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

FLOWS = """
from aetherflow import Suspend, node

@node
def gate(n: int, answer=None) -> str:
    if answer is None:
        raise Suspend("Ship release " + str(n) + "?")
    return f"shipped {n}: {answer}"

@node
def parse(text: str) -> int:
    return int(text)

@node
def double(parse: int) -> int:
    return parse * 2

approval = gate.named("approval")
numbers = parse.then(double).named("numbers")
"""


def exe() -> str:
    return shutil.which("aetherflow", path=os.path.dirname(sys.executable)) or "aetherflow"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "flows.py").write_text(FLOWS)
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    for args, code in [
        (["flows.py:numbers", "--input", 'text="21"'], 0),
        (["flows.py:numbers", "--input", 'text="twenty-one"'], 1),
        (["flows.py:approval", "--input", "n=7"], 3),
    ]:
        r = subprocess.run(
            [exe(), "run", *args, "--store", store], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert r.returncode == code, r.stderr
    return tmp_path


@pytest.fixture
def dashboard(project: Path) -> Iterator[str]:
    proc = subprocess.Popen(
        [exe(), "ui", "--store", f"sqlite:///{project / 'runs.db'}", "--port", "0"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.stderr else "no URL printed"
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        for f in (proc.stdout, proc.stderr):
            if f:
                f.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # type: ignore[assignment]
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chrome-profile'}",
        "--window-size=1400,1100",
    ):
        options.add_argument(arg)
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager download anything
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("AETHERFLOW_ARTIFACTS", tmp_path / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_a_user_finds_a_failure_and_resumes_a_suspended_job(
    dashboard: str, browser: webdriver.Chrome, shots: Path
) -> None:
    wait = WebDriverWait(browser, 20)
    browser.get(dashboard)
    assert browser.title.startswith("Jobs")
    rows = browser.find_elements(By.CSS_SELECTOR, "table.jobs tbody tr")
    assert [r.get_attribute("data-status") for r in rows] == ["suspended", "failed", "completed"]
    browser.save_screenshot(str(shots / "ui-jobs.png"))

    # filter the failed jobs
    Select(browser.find_element(By.ID, "status-filter")).select_by_value("failed")
    browser.find_element(By.ID, "filter-button").click()
    wait.until(ec.url_contains("status=failed"))

    def statuses(b: webdriver.Chrome) -> list[str | None] | None:
        """The rows' statuses once the filtered page is in (the old one's rows go stale as it loads)."""
        try:
            found = [r.get_attribute("data-status") for r in b.find_elements(By.CSS_SELECTOR, "table.jobs tbody tr")]
        except StaleElementReferenceException:
            return None
        return found if found == ["failed"] else None

    assert wait.until(statuses) == ["failed"]
    rows = browser.find_elements(By.CSS_SELECTOR, "table.jobs tbody tr")
    assert "twenty-one" in rows[0].text or "int()" in rows[0].text or "ValueError" in rows[0].text

    # open it and read the traceback
    rows[0].find_element(By.CSS_SELECTOR, "a.job-link").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "details.traceback")))
    assert "failed" in browser.find_element(By.ID, "job-status").text
    details = browser.find_element(By.CSS_SELECTOR, "details.traceback")
    details.find_element(By.TAG_NAME, "summary").click()
    trace = details.find_element(By.TAG_NAME, "pre")
    wait.until(lambda _: trace.is_displayed())
    assert "Traceback (most recent call last)" in trace.text
    assert "invalid literal for int()" in trace.text or "ValueError" in trace.text
    browser.save_screenshot(str(shots / "ui-failed-job.png"))

    # the suspended job: read its question, answer it, watch it complete without reloading
    browser.get(dashboard + "jobs?status=suspended")
    browser.find_element(By.CSS_SELECTOR, "a.job-link").click()
    question = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "q.question")))
    assert question.text == "Ship release 7?"
    browser.find_element(By.ID, "answer").send_keys("go")
    browser.find_element(By.ID, "resume-button").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "p.notice")))
    assert "Resuming in process" in browser.find_element(By.CSS_SELECTOR, "p.notice").text
    browser.execute_script("window.__sameDocument = true;")
    # The page updates in place: an element read while it is being replaced goes stale; read it again.
    live = (StaleElementReferenceException,)
    WebDriverWait(browser, 40, poll_frequency=0.3, ignored_exceptions=live).until(
        lambda b: "completed" in b.find_element(By.ID, "job-status").text
    )
    assert browser.execute_script("return window.__sameDocument === true;"), (
        "the page reloaded instead of updating in place"
    )
    WebDriverWait(browser, 10, ignored_exceptions=live).until(
        lambda b: '"shipped 7: go"' in b.find_element(By.TAG_NAME, "main").text
    )
    browser.save_screenshot(str(shots / "ui-resumed-job.png"))


def test_graph_and_timeline_render_as_svg(dashboard: str, browser: webdriver.Chrome, shots: Path) -> None:
    browser.get(dashboard + "jobs?status=completed")
    browser.find_element(By.CSS_SELECTOR, "a.job-link").click()
    WebDriverWait(browser, 20).until(ec.presence_of_element_located((By.CSS_SELECTOR, "svg.graph")))
    vertices = browser.find_elements(By.CSS_SELECTOR, "svg.graph g.vertex")
    assert {v.get_attribute("data-node"): v.get_attribute("data-status") for v in vertices} == {
        "parse": "completed",
        "double": "completed",
    }
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.gantt g.bar")) == 2
    browser.get(dashboard + "flows/numbers")
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart")
    browser.save_screenshot(str(shots / "ui-flow.png"))
