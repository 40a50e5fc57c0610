"""The review page driven in real headless Chromium: keyboard review, hostile content, concurrent writers."""
from __future__ import annotations

import datagen
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.server.conftest import valid_example
from tests.server.web_support import PAYLOADS, SCREENSHOTS, Served, chromium, make_workspace

REVIEWER = "Ada Lovelace"


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> datagen.Workspace:
    return make_workspace(tmp_path_factory.mktemp("web"))


@pytest.fixture(scope="module")
def served(ws):
    server = Served(ws)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory, served):
    driver = chromium(tmp_path_factory.mktemp("chromium-profile"))
    driver.set_page_load_timeout(180)
    driver.get(served.url + "/")
    driver.find_element(By.ID, "reviewer-name").send_keys(REVIEWER + Keys.ENTER)  # asked once, then a cookie
    WebDriverWait(driver, 180).until(lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-row]"))
    yield driver
    driver.quit()


def press(driver, *keys: str) -> None:
    ActionChains(driver).send_keys(*keys).perform()


def leave_page(driver, action) -> None:
    """Run `action` and wait until the browser shows the page it leads to."""
    before = driver.find_element(By.TAG_NAME, "html")
    action()
    WebDriverWait(driver, 180).until(lambda d: d.find_element(By.TAG_NAME, "html") != before)
    WebDriverWait(driver, 180).until(lambda d: d.execute_script("return document.readyState") == "complete")


def decisions_by(ws, example_id: str) -> list[tuple[str, str, str, str]]:
    return [(e.kind, e.verdict, e.reviewer, e.notes) for e in datagen.get_example(ws, example_id).reviews]


def test_keyboard_review_records_approve_reject_and_edit_by_name(ws, served, browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.get(served.url + "/?status=pending")
    ids = [a.get_attribute("href").split("/examples/")[1].split("?")[0]
           for a in browser.find_elements(By.CSS_SELECTOR, "tr[data-row] a.open")]
    assert len(ids) == 8 and REVIEWER in browser.find_element(By.CLASS_NAME, "who").text
    assert browser.save_screenshot(str(SCREENSHOTS / "review-queue.png"))

    leave_page(browser, lambda: press(browser, Keys.ENTER))  # the cursor starts on the first row
    assert f"/examples/{ids[0]}" in browser.current_url
    assert browser.find_elements(By.CSS_SELECTOR, ".highlight .kn")  # fenced Python, highlighted on the server
    assert "matches its schema" in browser.find_element(By.CLASS_NAME, "call").text
    assert "Backoff" in browser.find_element(By.TAG_NAME, "details").text  # the cited knowledge chunk
    assert len(browser.find_elements(By.CSS_SELECTOR, "#neighbours li")) == 5
    browser.set_window_size(1280, 1500)
    assert browser.save_screenshot(str(SCREENSHOTS / "review-example.png"))
    browser.set_window_size(1280, 1000)

    leave_page(browser, lambda: press(browser, "a"))
    assert f"/examples/{ids[1]}" in browser.current_url  # on to the next pending example

    press(browser, "r")
    reason = browser.find_element(By.ID, "reject-reason")
    assert browser.switch_to.active_element == reason
    leave_page(browser, lambda: reason.send_keys("answer is vague" + Keys.ENTER))
    assert f"/examples/{ids[2]}" in browser.current_url

    leave_page(browser, lambda: press(browser, "e"))
    answer = browser.find_element(By.ID, "content_1")
    answer.clear()
    answer.send_keys("Here is how they connect, step by step:\n1. the queue feeds the worker\n2. the worker acks.")
    leave_page(browser, lambda: ActionChains(browser).key_down(Keys.CONTROL).send_keys(Keys.ENTER)
               .key_up(Keys.CONTROL).perform())
    assert browser.current_url.startswith(f"{served.url}/examples/{ids[2]}")
    assert "revision 1" in browser.find_element(By.ID, "events").find_element(By.XPATH, "..").text

    assert decisions_by(ws, ids[0]) == [("decision", "approve", REVIEWER, "")]
    assert decisions_by(ws, ids[1]) == [("decision", "reject", REVIEWER, "answer is vague")]
    assert decisions_by(ws, ids[2]) == [("edit", "edit", REVIEWER, "")]
    edited = datagen.get_example(ws, ids[2])
    assert edited.example.messages[1].content.endswith("2. the worker acks.") and edited.status == "pending"
    [old] = datagen.example_revisions(ws, ids[2])
    assert old.example.messages[1].content.startswith("Here is how they connect:")
    assert [e.id for e in datagen.list_examples(ws, status="approved").items] == [ids[0]]


def test_hostile_example_renders_as_inert_text(ws, served, browser):
    [hostile] = [i for i in datagen.list_examples(ws, status=None, limit=50).items
                 if i.example.category == "code-review" and "__pwned" in i.example.messages[0].content]
    for path in (f"/examples/{hostile.id}", f"/examples/{hostile.id}/edit", "/?status=all"):
        browser.get(served.url + path)
        WebDriverWait(browser, 180).until(lambda d: d.execute_script("return document.readyState") == "complete")
        assert browser.execute_script("return typeof window.__pwned") == "undefined", path
        assert not browser.find_elements(By.CSS_SELECTOR, "main img, main svg, a#evil, a[href^='javascript']"), path
        scripts = [s.get_attribute("src") for s in browser.find_elements(By.TAG_NAME, "script")]
        assert scripts == [served.url + "/static/review.js"], path
    browser.get(served.url + f"/examples/{hostile.id}")
    text = browser.find_element(By.ID, "conversation").text
    for payload in PAYLOADS:
        assert payload in text  # shown to the reviewer, character for character
    press(browser, "?")  # the page's own script does run: the help overlay opens
    assert browser.find_element(By.ID, "help").is_displayed()
    assert browser.execute_script("return typeof window.__pwned") == "undefined"


def test_examples_written_elsewhere_appear_on_refresh(ws, served, browser):
    browser.get(served.url + "/?status=pending&category=code-review")
    before = len(browser.find_elements(By.CSS_SELECTOR, "tr[data-row]"))
    [verdict] = datagen.submit(ws, [valid_example(101, "code-review")], generator="mcp")  # another writer
    assert verdict.accepted
    browser.refresh()
    rows = browser.find_elements(By.CSS_SELECTOR, "tr[data-row]")
    assert len(rows) == before + 1 and verdict.id in rows[-1].text


def test_queue_keys_select_rows_and_reject_them_in_bulk(ws, served, browser):
    browser.get(served.url + "/?status=pending&category=tool-use")
    rows = browser.find_elements(By.CSS_SELECTOR, "tr[data-row]")
    picked = [r.find_element(By.CSS_SELECTOR, "input.pick").get_attribute("value") for r in rows[1:3]]
    press(browser, "j", "x", "j", "x", "r")  # mark rows 2 and 3, then type the reason
    assert browser.switch_to.active_element == browser.find_element(By.ID, "bulk-notes")
    leave_page(browser, lambda: browser.switch_to.active_element.send_keys("duplicate batch" + Keys.ENTER))
    assert browser.find_element(By.ID, "bulk-result").text.startswith("2 decided")
    for example_id in picked:
        assert decisions_by(ws, example_id)[-1] == ("decision", "reject", REVIEWER, "duplicate batch")
    assert not set(picked) & {a.get_attribute("href").split("/examples/")[1].split("?")[0]
                              for a in browser.find_elements(By.CSS_SELECTOR, "tr[data-row] a.open")}
