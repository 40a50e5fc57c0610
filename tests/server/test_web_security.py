"""The review page over real HTTP on loopback: who may start it, tokens, CSRF, conflicts, CSP, plots."""
from __future__ import annotations

import os
import subprocess
from html.parser import HTMLParser

import datagen
import httpx
import pytest
import training

from server.web import ExposureError, check_exposure
from tests.server.web_support import ENGRAIN, Served, csrf_of, make_workspace, named_client, version_of

TOKEN = "t0ken-for-tests-0123456789"


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> datagen.Workspace:
    return make_workspace(tmp_path_factory.mktemp("websec"))


@pytest.fixture(scope="module")
def served(ws):
    server = Served(ws)
    yield server
    server.stop()


def pending_ids(ws) -> list[str]:
    return [i.id for i in datagen.list_examples(ws, status="pending", limit=100).items]


@pytest.mark.parametrize("host, token, refused", [
    ("127.0.0.1", None, False), ("localhost", None, False), ("::1", None, False), ("127.0.0.2", None, False),
    ("0.0.0.0", None, True), ("::", None, True), ("192.0.2.7", None, True), ("review.example.org", None, True),
    ("0.0.0.0", TOKEN, False), ("0.0.0.0", "short", True),
])
def test_exposure_table(host, token, refused):
    if refused:
        with pytest.raises(ExposureError):
            check_exposure(host, token)
    else:
        check_exposure(host, token)


def test_cli_refuses_to_expose_the_page_without_a_token(ws):
    env = {k: v for k, v in os.environ.items() if k != "ENGRAIN_REVIEW_TOKEN"}
    done = subprocess.run([*ENGRAIN, "review", "--web", "--host", "0.0.0.0", "--port", "9", "--workspace",
                           str(ws.root)], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 2, done.stderr
    assert "refusing to serve the review page on 0.0.0.0: it is not a loopback address" in done.stderr
    assert "--token" in done.stderr and "Traceback" not in done.stderr


def test_post_without_the_csrf_field_is_forbidden(ws, served):
    client, csrf = named_client(served.url, "Mallory")
    target = pending_ids(ws)[-1]
    version = version_of(client.get(f"/examples/{target}").text)
    other, other_csrf = named_client(served.url, "Other browser")
    for form in ({}, {"csrf": ""}, {"csrf": "0" * 64}, {"csrf": other_csrf}):
        answer = client.post(f"/examples/{target}/decide", data={**form, "verdict": "approve", "version": version})
        assert answer.status_code == 403 and "CSRF" in answer.text
    for path in ("/bulk", "/reviewer", f"/examples/{target}/edit"):
        assert client.post(path, data={"verdict": "approve", "ids": target}).status_code == 403
    assert datagen.get_example(ws, target).reviews == []
    ok = client.post(f"/examples/{target}/decide", data={"csrf": csrf, "verdict": "approve", "version": version})
    assert ok.status_code == 303
    assert [(e.verdict, e.reviewer) for e in datagen.get_example(ws, target).reviews] == [("approve", "Mallory")]


def test_the_second_reviewer_gets_a_clear_conflict(ws, served):
    ada, ada_csrf = named_client(served.url, "Ada")
    grace, grace_csrf = named_client(served.url, "Grace")
    target = pending_ids(ws)[0]
    ada_version = version_of(ada.get(f"/examples/{target}").text)
    grace_version = version_of(grace.get(f"/examples/{target}").text)
    assert ada.post(f"/examples/{target}/decide", data={"csrf": ada_csrf, "verdict": "approve",
                                                        "version": ada_version}).status_code == 303
    late = grace.post(f"/examples/{target}/decide", data={"csrf": grace_csrf, "verdict": "reject",
                                                          "notes": "too short", "version": grace_version})
    assert late.status_code == 409
    assert f"Ada approved example {target}" in late.text and "nothing was saved" in late.text
    stale_edit = grace.post(f"/examples/{target}/edit", data={"csrf": grace_csrf, "version": grace_version,
                                                               "content_1": "A different answer entirely."})
    assert stale_edit.status_code == 409
    bulk = grace.post("/bulk", data={"csrf": grace_csrf, "verdict": "reject", "ids": [target],
                                     f"v_{target}": grace_version, "back": "status=pending"})
    assert bulk.status_code == 303 and "done=0&conflicts=1" in bulk.headers["location"]
    assert [(e.verdict, e.reviewer) for e in datagen.get_example(ws, target).reviews] == [("approve", "Ada")]
    fresh = version_of(grace.get(f"/examples/{target}").text)  # after reloading, Grace may overrule
    assert grace.post(f"/examples/{target}/decide", data={"csrf": grace_csrf, "verdict": "reject",
                                                          "version": fresh}).status_code == 303
    assert datagen.get_example(ws, target).status == "rejected"


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_pages_carry_a_strict_csp_and_no_inline_script_or_style(ws, served):
    client, _ = named_client(served.url, "Auditor")
    target = datagen.list_examples(ws, status=None, limit=100).items[-1].id  # the hostile example
    for path in ("/", "/?status=all", f"/examples/{target}", f"/examples/{target}/edit", "/dashboard"):
        page = client.get(path)
        assert page.status_code == 200, path
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "style-src 'self'" in policy
        assert page.headers["x-frame-options"] == "DENY"
        parser = _Tags()
        parser.feed(page.text)
        for tag, attrs in parser.tags:
            assert not [a for a in attrs if a.startswith("on") or a == "style"], (path, tag, attrs)
            assert tag != "script" or attrs.get("src") == "/static/review.js", (path, attrs)
            assert not str(attrs.get("href", "")).lower().startswith("javascript"), (path, attrs)
            assert tag not in ("img", "svg") or str(attrs.get("src", "")).startswith("/runs/"), (path, attrs)


def test_token_gates_every_page_and_the_printed_link_works(ws):
    server = Served(ws, env={"ENGRAIN_REVIEW_TOKEN": TOKEN})
    try:
        for path in ("/", "/static/review.js", "/dashboard", f"/examples/{pending_ids(ws)[0]}"):
            assert httpx.get(server.url + path, timeout=180).status_code == 401
        assert httpx.get(server.url + "/", headers={"Authorization": "Bearer wrong-token-000000"}, timeout=180).status_code == 401
        assert httpx.get(server.url + "/", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=180).status_code == 200
        browser = httpx.Client(base_url=server.url, timeout=180)
        link = browser.get(f"/?token={TOKEN}&status=all", follow_redirects=False)
        assert link.status_code == 303 and link.headers["location"] == "/?status=all"  # the token leaves the URL
        first = browser.get("/?status=all")
        assert first.status_code == 200 and "Who is reviewing?" in first.text
        browser.post("/reviewer", data={"csrf": csrf_of(first.text), "name": "Token holder", "next": "/"})
        target = pending_ids(ws)[0]
        page = browser.get(f"/examples/{target}")
        assert browser.post(f"/examples/{target}/decide",
                            data={"verdict": "approve", "version": version_of(page.text)}).status_code == 403
        done = browser.post(f"/examples/{target}/decide", data={"csrf": csrf_of(page.text), "verdict": "approve",
                                                                "version": version_of(page.text)})
        assert done.status_code == 303
        assert datagen.get_example(ws, target).reviews[-1].reviewer == "Token holder"
    finally:
        server.stop()


def test_dashboard_shows_coverage_reasons_and_the_latest_runs_plots(ws, served):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = training.RunRecord(id="20261205-060000-beef", created_at="2026-12-05T06:00:00+00:00", state="done",
                             backend="hf", base="tiny", metrics={"final_loss": 1.25})
    folder = ws.runs_dir / run.id
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(run.model_dump_json())
    for name in ("loss", "eval"):
        fig, ax = plt.subplots()
        ax.plot([3, 2, 1.25])
        fig.savefig(folder / f"{name}.png")
        plt.close(fig)
    client, csrf = named_client(served.url, "Dash")
    target = pending_ids(ws)[0]
    version = version_of(client.get(f"/examples/{target}").text)
    client.post(f"/examples/{target}/decide", data={"csrf": csrf, "verdict": "reject", "notes": "off-topic",
                                                    "version": version})
    page = client.get("/dashboard").text
    assert "off-topic" in page and "tool-use" in page and "final_loss 1.25" in page
    for name in ("loss", "eval"):
        assert f'src="/runs/{run.id}/{name}.png"' in page
        image = client.get(f"/runs/{run.id}/{name}.png")
        assert image.headers["content-type"] == "image/png" and image.content.startswith(b"\x89PNG")
    for bad in ("/runs/..%2F..%2Fengrain.toml/loss.png", f"/runs/{run.id}/config.png", "/runs/nope/loss.png"):
        assert client.get(bad).status_code == 404


def test_bad_addresses_get_clear_4xx_pages(served):
    client, _ = named_client(served.url, "Lost")
    missing = client.get("/examples/ex_0000000000000000")
    assert missing.status_code == 404 and "no example with id" in missing.text and "Traceback" not in missing.text
    assert client.get("/?after=abc").status_code == 400
    unknown_rule = client.get("/?rule=nope")
    assert unknown_rule.status_code == 400 and "no rule named" in unknown_rule.text
    assert client.get("/no/such/page").status_code == 404


def test_a_foreign_host_header_is_refused_without_a_token(served):
    """DNS rebinding: a page on rebind.example resolved to 127.0.0.1 sends its own name as Host."""
    for path in ("/", "/healthz", "/static/review.js"):
        answer = httpx.get(served.url + path, headers={"Host": "rebind.example"}, timeout=180)
        assert answer.status_code == 403 and "127.0.0.1" in answer.text
    for host in (f"localhost:{served.port}", f"127.0.0.1:{served.port}"):
        assert httpx.get(served.url + "/healthz", headers={"Host": host}, timeout=180).status_code == 200
