"""The web console over real HTTP: sign-in, session cookie, CSRF, pages, roles.

The browser test (headless Chromium) drives the same pages end to end; these check the server's
side of it: what each role is shown and refused, and that forms without the session's CSRF token
change nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.console import support
from tests.console.support import OPERATOR_TOKEN, READER_TOKEN, person

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def web(infra_env: dict[str, str]) -> Iterator[support.Served]:
    import uuid

    import psycopg
    from psycopg import sql

    admin = infra_env["TETHER_POSTGRES_DSN"]
    name = f"test_console_web_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = f"{admin.rpartition('/')[0]}/{name}"
    support.migrate(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        support.seed(conn, 120, review_every=50)
    try:
        with support.serve(dsn) as served:
            yield served
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def login(web: support.Served, token: str) -> dict[str, str]:
    answer = web.http.post("/login", data={"token": token})
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert token not in cookie  # the cookie names the identity, never holds the token
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    return {"cookie": f"tether_console={value}"}


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def test_pages_need_a_session(web: support.Served) -> None:
    for path in ("/", "/ui/review", "/ui/links", "/ui/links/l-000001", "/ui/conflicts"):
        answer = web.http.get(path)
        assert answer.status_code == 303 and answer.headers["location"] == "/login", path
    page = web.http.get("/login")
    assert page.status_code == 200 and 'data-testid="login-form"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    refused = web.http.post("/login", data={"token": "wrong-token-wrong-token"})
    assert refused.status_code == 401 and 'data-testid="login-error"' in refused.text
    forged = web.http.get("/", headers={"cookie": "tether_console=eyJuIjoiZXZlIn0.forged"})
    assert forged.status_code == 303


def test_operator_pages(web: support.Served) -> None:
    session = login(web, OPERATOR_TOKEN)
    overview = web.http.get("/", headers=session)
    assert overview.status_code == 200
    assert re.search(r'data-testid="overview-links-total">120<', overview.text)
    assert re.search(r'data-testid="overview-review-open">3<', overview.text)
    review = web.http.get("/ui/review", headers=session)
    assert review.text.count('data-testid="review-row"') == 3
    item = web.http.get("/ui/review/r-000050", headers=session)
    assert item.text.count('data-testid="candidate"') == 2
    assert 'data-testid="action-link-candidate"' in item.text
    links = web.http.get("/ui/links", headers=session, params={"q": person(42).email})
    assert links.text.count('data-testid="link-row"') == 1 and person(42).email in links.text
    link = web.http.get(f"/ui/links/{person(42).link_id}", headers=session)
    assert (
        'data-testid="timeline-entry"' in link.text and 'data-testid="action-unlink"' in link.text
    )
    confirm = web.http.get(
        "/ui/actions/new",
        headers=session,
        params={"kind": "LINK_TO_CANDIDATE", "review_id": "r-000050", "contact_id": "c-000050"},
    )
    assert confirm.status_code == 200 and 'data-testid="confirm-action"' in confirm.text
    assert 'name="idempotency_key"' in confirm.text
    for path, testid in (("/ui/actions", "action-list"), ("/ui/ignored", "ignored-list")):
        answer = web.http.get(path, headers=session)
        assert answer.status_code == 200 and f'data-testid="{testid}"' in answer.text


def test_forms_without_the_sessions_csrf_token_are_refused(web: support.Served) -> None:
    session = login(web, OPERATOR_TOKEN)
    form = {"kind": "UNLINK", "link_id": "l-000001", "reason": "test"}
    assert web.http.post("/ui/actions", headers=session, data=form).status_code == 403
    other = login(web, OPERATOR_TOKEN)  # another session's token does not fit this one
    other_csrf = csrf_of(web.http.get("/", headers=other).text)
    answer = web.http.post("/ui/actions", headers=session, data={**form, "csrf": other_csrf})
    assert answer.status_code == 403
    own_csrf = csrf_of(web.http.get("/", headers=session).text)
    cross_site = web.http.post(
        "/ui/actions",
        headers={**session, "origin": "https://evil.example"},
        data={**form, "csrf": own_csrf},
    )
    assert cross_site.status_code == 403
    login_from_elsewhere = web.http.post(
        "/login", data={"token": OPERATOR_TOKEN}, headers={"origin": "https://evil.example"}
    )
    assert login_from_elsewhere.status_code == 403
    assert "set-cookie" not in login_from_elsewhere.headers
    metric = web.console.metrics.auth_failures.labels("csrf")._value.get()
    assert metric >= 4


def test_read_only_pages_hide_personal_data_and_actions(web: support.Served) -> None:
    session = login(web, READER_TOKEN)
    for path in (
        "/",
        "/ui/links",
        f"/ui/links/{person(50).link_id}",
        "/ui/review/r-000050",
        "/ui/conflicts",
    ):
        page = web.http.get(path, headers=session)
        assert page.status_code == 200, path
        for value in (person(50).email, person(50).phone, person(50).last, person(0).email):
            assert value not in page.text, (path, value)
        assert 'data-testid="action-' not in page.text, path
    csrf = csrf_of(web.http.get("/", headers=session).text)
    answer = web.http.post(
        "/ui/actions",
        headers=session,
        data={"csrf": csrf, "kind": "UNLINK", "link_id": "l-000001", "reason": "x"},
    )
    assert answer.status_code == 403
    confirm = web.http.get("/ui/actions/new", headers=session, params={"kind": "UNLINK"})
    assert confirm.status_code == 403
    searched = web.http.get("/ui/links", headers=session, params={"q": person(50).email})
    assert 'data-testid="link-row"' not in searched.text


def test_logout_ends_the_session_in_the_browser(web: support.Served) -> None:
    session = login(web, OPERATOR_TOKEN)
    csrf = csrf_of(web.http.get("/", headers=session).text)
    out = web.http.post("/logout", headers=session, data={"csrf": csrf})
    assert out.status_code == 303 and 'tether_console=""' in out.headers["set-cookie"]
