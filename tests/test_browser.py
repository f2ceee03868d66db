"""The report in a real browser: headless Chromium, network off.

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package;
``make test-browser`` installs them and runs this file. Without them the test is
skipped with the reason (set LTEVAL_BROWSER_REQUIRED=1 to make that a failure).
The self-containment check below needs no browser and always runs.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from conftest import with_classes, write_h5_dir

from lteval.cli.rank import main as rank_main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, int]:
    """A real report from three precomputed-feature backbones: (folder, backbones)."""
    root = tmp_path_factory.mktemp("browser")
    feats = write_h5_dir(root / "feats", names=("bb_a", "bb_b", "bb_c"))
    out = root / "report"
    args = ["--features", str(feats), "--out", str(out), "--quiet", "--bootstrap", "50"]
    assert rank_main([*args, "--heads", "ncm"]) == 0
    return out, 3


def test_report_is_self_contained(report):
    out, _ = report
    html = (out / "index.html").read_text()
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", html)
    assert refs, "the report references its plots"
    for ref in refs:
        assert not re.match(r"^[a-z]+:|^//", ref), f"external reference {ref}"
        assert (out / ref).is_file(), f"{ref} is referenced but missing"
    assert "@import" not in html and "url(" not in html


def _driver():
    missing = [
        what
        for what, ok in (
            ("chromium (apt install chromium)", CHROMIUM),
            ("chromedriver (apt install chromium-driver)", DRIVER),
        )
        if not ok
    ]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (pip install selenium)")
    if missing:
        reason = "headless-browser test needs " + ", ".join(missing) + "; run `make test-browser`"
        if os.environ.get("LTEVAL_BROWSER_REQUIRED"):
            pytest.fail(reason)
        pytest.skip(reason)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # no name resolves
        "--proxy-server=http://127.0.0.1:9",  # and no direct connection either
        "--allow-file-access-from-files",
    ):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(DRIVER))
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0},
    )
    return driver


@pytest.mark.browser
def test_report_in_headless_chromium(report):
    out, n = report
    driver = _driver()
    try:
        driver.get((out / "index.html").as_uri())
        driver.execute_script("return document.readyState")
        images = driver.execute_script(
            "return [...document.images].map(i => [i.src, i.complete, i.naturalWidth])"
        )
        assert len(images) >= 5
        broken = [src for src, done, width in images if not done or width == 0]
        assert not broken, f"broken images: {broken}"
        rows = driver.execute_script("return document.querySelectorAll('#ranking tbody tr').length")
        assert rows == n
        loaded = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        assert all(u.startswith("file:") for u in loaded), loaded
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        driver.quit()


@pytest.mark.browser
def test_a_thousand_class_report_reads_without_scrolling_sideways(report, tmp_path):
    """1,000 classes: the page stays small, its plots load, and the summary table (rank,
    backbone, ranking score, balanced and few-shot accuracy) fits a 1280 px window."""
    from lteval.report import render_report

    out = tmp_path / "r1000"
    shutil.copytree(report[0], out)
    with_classes(out, 1000)
    render_report(out)
    assert (out / "index.html").stat().st_size < 2 * 2**20
    driver = _driver()
    try:
        driver.set_window_size(1280, 900)
        driver.get((out / "index.html").as_uri())
        images = driver.execute_script("return [...document.images].map(i => i.naturalWidth)")
        assert images and all(w > 0 for w in images)
        right, inner = driver.execute_script(
            "return [document.querySelector('#summary').getBoundingClientRect().right,"
            " document.documentElement.clientWidth]"
        )
        assert right <= inner, f"the summary table ends at {right} px of {inner}"
        heads = driver.execute_script(
            "return [...document.querySelectorAll('#summary th')].map(t => t.textContent)"
        )
        assert heads[:2] == ["rank", "backbone"] and "dlsa_few" in heads
    finally:
        driver.quit()


@pytest.mark.browser
def test_what_to_pick_opens_the_report_without_scrolling(report, tmp_path):
    """The "what to pick" block is the first thing on the page and wholly inside a
    1280 x 900 window at load, at 3 and at 1,000 classes, and names what the
    results' pick record decided."""
    import json

    from lteval.report import render_report

    big = tmp_path / "r1000"
    shutil.copytree(report[0], big)
    with_classes(big, 1000)
    render_report(big)
    driver = _driver()
    try:
        driver.set_window_size(1280, 900)
        for out in (report[0], big):
            pick = json.loads((out / "results.json").read_text())["pick"]
            assert pick["defined"]
            driver.get((out / "index.html").as_uri())
            top, bottom, inner, before = driver.execute_script(
                "const b = document.querySelector('#what-to-pick');"
                "const r = b.getBoundingClientRect();"
                "const t = document.querySelector('#summary');"
                "return [r.top, r.bottom, window.innerHeight,"
                " !!(b.compareDocumentPosition(t) & Node.DOCUMENT_POSITION_FOLLOWING)]"
            )
            assert 0 <= top and bottom <= inner, f"the block spans {top}-{bottom} px of {inner}"
            assert before, "the block comes before the first table"
            text = driver.execute_script("return document.querySelector('#what-to-pick').innerText")
            assert pick["best"]["backbone"] in text
            assert all(t["backbone"] in text for t in pick["tied"])
    finally:
        driver.quit()
