"""The status page in a real browser, and notifications from the real daemon.

gitopsd runs as a subprocess against the real cluster and a real remote, with
a webhook sink pointed at a receiver on loopback. The test edits two objects
by hand (a ConfigMap and a Secret), waits for the drift to be corrected and
notified, pushes a broken commit, then loads the status page in Debian's
headless chromium (through chromium-driver and selenium), checks what a person
sees on a desktop and on a phone, and saves screenshots under the test's
temporary folder.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from gitopsd.clock import SYSTEM_CLOCK
from tests.daemon.receivers import Receiver, serving, webhook_check
from tests.e2e.conftest import Gitopsd, configmap, secret, wait_for

SIGNING_SECRET = "e2e-notify-signing-secret"
IN_GIT = "hunter2-in-git-VALUE"
BY_HAND = "edited-by-hand-VALUE"
SECRET_VALUES = [
    *(v for text in (IN_GIT, BY_HAND) for v in (text, base64.b64encode(text.encode()).decode())),
    SIGNING_SECRET,
]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """Debian's chromium, headless, driven by Debian's chromium-driver."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "apt-get install chromium chromium-driver (.ci/apt-packages)"
    options = Options()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1200,900",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    try:
        yield browser
    finally:
        browser.quit()


def status_of(gitopsd: Gitopsd) -> dict[str, Any]:
    with urllib.request.urlopen(gitopsd.url("/status"), timeout=5) as response:
        document: dict[str, Any] = json.loads(response.read())
        return document


def corrected_app(hook: Receiver) -> dict[str, Any] | None:
    """The first drift_corrected event that corrected the hand-edited ConfigMap."""
    for request in list(hook.requests):
        body = request.json()
        if body["event"] == "drift_corrected" and any(
            o["name"] == "app" and o["action"] == "corrected" for o in body["objects"]
        ):
            return dict(body)
    return None


def test_status_page_after_a_drift_and_a_failure(
    gitopsd: Gitopsd, api_client: object, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    ns = gitopsd.namespace
    gitopsd.remote.commit(
        {
            "manifests/app.yaml": configmap("app", ns, v="1"),
            "manifests/creds.yaml": secret("creds", ns, password=IN_GIT),
            "web/web.yaml": configmap("web", ns, replicas="3"),
        },
        "Deploy app and web",
    )
    (gitopsd.folder / "notify-secret").write_text(SIGNING_SECRET + "\n")
    with serving(Receiver(SYSTEM_CLOCK, webhook_check(SIGNING_SECRET))) as hook:
        gitopsd.write_config(
            gitopsd.target("app"),
            gitopsd.target("web", path="web"),
            extra=f"http: {{address: 127.0.0.1, port: {gitopsd.port}}}\n"
            f"notify:\n  - {{name: ops, type: webhook, url: '{hook.url}/gitopsd', "
            "secret_file: notify-secret}",
            interval="1s",
        )
        gitopsd.start()
        wait_for(lambda: all(t["in_sync"] for t in status_of(gitopsd)["targets"].values()))

        core = client.CoreV1Api(api_client)
        core.patch_namespaced_config_map(
            "app", ns, {"data": {"v": "edited"}}, field_manager="kubectl-edit"
        )
        core.patch_namespaced_secret(
            "creds", ns, {"stringData": {"password": BY_HAND}}, field_manager="kubectl-edit"
        )
        event = wait_for(lambda: corrected_app(hook))
        broken = gitopsd.remote.commit(
            {"manifests/broken.yaml": "apiVersion: v1\nkind: ConfigMap\n"}, "Add a broken manifest"
        )
        wait_for(lambda: status_of(gitopsd)["targets"]["app"]["consecutive_failures"] >= 1)
        # web reads another path of the same remote: it passes the broken commit in sync.
        wait_for(lambda: status_of(gitopsd)["targets"]["web"]["revision"] == broken)
        wait_for(lambda: any(r.json()["event"] == "pass_failed" for r in hook.requests))

        index = check_index(gitopsd, browser, tmp_path)
        target = check_target_page(gitopsd, browser, tmp_path)
        phone = check_phone(gitopsd, browser, tmp_path)
        print(f"status page screenshots: {index}, {target}, {phone}")

    assert all(r.answered == 200 for r in hook.requests), "a body failed its signature check"
    app = next(o for o in event["objects"] if o["name"] == "app")
    assert app["fields"] == [{"path": "data.v", "desired": "1", "live": "edited"}]
    assert app["managers"] == ["kubectl-edit"]
    bodies = "\n".join(r.body.decode() for r in hook.requests)
    for value in SECRET_VALUES:
        assert value not in bodies and value not in gitopsd.log()


def check_index(gitopsd: Gitopsd, browser: webdriver.Chrome, folder: Path) -> Path:
    browser.get(gitopsd.url("/"))
    assert browser.title == "gitopsd: 2 targets, 1 failing"
    badge = browser.find_element(By.CSS_SELECTOR, "#target-app .badge").text
    assert badge == "failing"
    assert browser.find_element(By.CSS_SELECTOR, "#target-web .badge").text == "in sync"
    app = browser.find_element(By.ID, "target-app").text
    assert "Add a broken manifest by gitopsd tests" in app
    assert "metadata is missing" in app and re.search(r"\d+ in a row", app)
    web = browser.find_element(By.ID, "target-web").text
    assert "Add a broken manifest" in web  # one remote: the web target is at that commit too
    page = browser.page_source
    for value in SECRET_VALUES:
        assert value not in page
    return shot(browser, folder / "status-page.png")


def check_target_page(gitopsd: Gitopsd, browser: webdriver.Chrome, folder: Path) -> Path:
    browser.find_element(By.LINK_TEXT, "app").click()
    assert browser.current_url == gitopsd.url("/targets/app")
    failure = browser.find_element(By.CSS_SELECTOR, "pre.error").text
    assert "metadata is missing" in failure and "broken.yaml" in failure
    rows = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "table tr")[1:]]
    drifted = [row for row in rows if "ConfigMap" in row and "app" in row and "corrected" in row]
    assert drifted and 'data.v: "edited" → "1"' in drifted[0] and "kubectl-edit" in drifted[0]
    assert any("Secret" in row and "data.password" in row for row in rows)
    page = browser.page_source
    for value in SECRET_VALUES:
        assert value not in page
    return shot(browser, folder / "status-page-target.png")


def check_phone(gitopsd: Gitopsd, browser: webdriver.Chrome, folder: Path) -> Path:
    browser.set_window_size(390, 844)
    browser.get(gitopsd.url("/"))
    width = browser.execute_script("return window.innerWidth")
    scrolled = browser.execute_script("return document.documentElement.scrollWidth")
    assert scrolled <= width, "the page scrolls sideways on a phone"
    card = browser.find_element(By.ID, "target-app")
    assert card.size["width"] <= width
    return shot(browser, folder / "status-page-phone.png")


def shot(browser: webdriver.Chrome, path: Path) -> Path:
    assert browser.save_screenshot(str(path))
    return path
