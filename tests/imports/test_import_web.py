"""The import pages: upload → column mapping → start (job queued, audited) → live progress → done,
with CSRF, permissions and the upload size limit."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from core.audit.models import AuditEntry
from core.db.engines import control_session, tenant_session
from core.imports import service
from core.imports.models import ImportRun
from core.profiles.jobs import process_events
from core.profiles.service import find_by_identifier
from core.queue import actors
from core.queue.models import Job, JobStatus
from core.tenancy.members import put_member
from core.tenancy.tenants import get_tenant
from tests.support import PASSWORD, csrf_of, login

TENANT = "acme"
BASE = f"/t/{TENANT}/imports"
PEOPLE = (
    b"E-mail,First name,Plan,Consent SMS\n"
    b"ann@example.com,Ann,gold,yes\n"
    b"bob@example.com,Bob,silver,no\n"
    b"not-an-email,Carl,gold,yes\n"
)


def signed_in(installation, email: str = "admin@acme.test") -> TestClient:
    client = installation.client()
    login(client, email)
    return client


def upload(client: TestClient, content: bytes, kind: str = "profiles", name: str = "people.csv"):
    csrf = csrf_of(client, BASE)
    return client.post(f"{BASE}/upload", data={"kind": kind, "csrf_token": csrf},
                       files={"file": (name, content, "text/csv")})  # fmt: skip


def form_of(page: str) -> dict[str, str]:
    """The hidden fields and each select's selected option of the mapping form."""
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    for name, options in re.findall(r'<select name="(map_\d+)"[^>]*>(.*?)</select>', page, re.S):
        selected = re.search(r'<option value="([^"]*)" selected>', options)
        assert selected, name
        fields[name] = selected.group(1)
    return fields


def test_upload_map_start_and_follow_an_import_to_the_end(acme, installation) -> None:
    client = signed_in(installation)
    assert "Import a file" in client.get(BASE).text

    mapping_page = upload(client, PEOPLE)
    assert mapping_page.status_code == 200, mapping_page.text
    assert "Map the columns of people.csv" in mapping_page.text
    form = form_of(mapping_page.text)
    assert [form[f"map_{i}"] for i in range(4)] == ["email", "trait:first_name", "trait:plan", "consent:sms"]
    assert form["kind"] == "profiles" and re.fullmatch(r"[0-9a-f]{32}", form["upload"])
    assert (installation.data_dir / "imports" / TENANT / f"{form['upload']}.csv").read_bytes() == PEOPLE

    form["map_2"] = "ignore"  # the marketer changes one column
    started = client.post(f"{BASE}/start", data=form, follow_redirects=False)
    assert started.status_code == 303, started.text
    run_url = started.headers["location"]
    assert re.fullmatch(rf"{BASE}/\d+", run_url)

    page = client.get(run_url)
    assert page.status_code == 200
    assert 'hx-trigger="every 1s"' in page.text and 'data-status="queued"' in page.text

    with tenant_session(acme.tenant.database) as session:
        run = session.exec(select(ImportRun)).one()
        job = session.exec(select(Job).where(Job.kind == service.IMPORT_JOB)).one()
    assert (run.created_by, run.filename, run.mapping["Plan"]) == ("admin@acme.test", "people.csv", "ignore")
    assert job.id is not None and actors.execute_job(TENANT, job.id) == JobStatus.done

    fragment = client.get(f"{run_url}/progress", headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert 'data-status="done"' in fragment.text and "hx-trigger" not in fragment.text
    assert "2 new, 0 already imported, 1 not imported." in fragment.text
    assert "<td>4</td><td>invalid email in column &#39;E-mail&#39;" in fragment.text
    errors = client.get(f"{run_url}/errors.csv")
    assert errors.headers["content-type"].startswith("text/csv")
    assert errors.text.splitlines()[1].startswith("4,invalid email")

    listing = client.get(BASE).text
    assert "people.csv" in listing and ">done<" in listing

    process_events(TENANT, {})
    with tenant_session(acme.tenant.database) as session:
        ann = find_by_identifier(session, "email", "ann@example.com")
        assert ann.traits == {"first_name": "Ann", "email": "ann@example.com"}
    with control_session() as control:
        entry = control.exec(select(AuditEntry).where(AuditEntry.action == "import.start")).one()
    assert (entry.actor, entry.target, entry.detail["run"]) == ("admin@acme.test", "people.csv", run.id)


def test_a_mapping_without_identifier_is_shown_again_with_the_reason(
    acme_sqlite, sqlite_installation
) -> None:
    client = signed_in(sqlite_installation)
    form = form_of(upload(client, PEOPLE).text)
    form["map_0"] = "ignore"
    answer = client.post(f"{BASE}/start", data=form, follow_redirects=False)
    assert answer.status_code == 400
    assert "No column is mapped to an identifier" in answer.text and 'name="map_0"' in answer.text
    with tenant_session(acme_sqlite.tenant.database) as session:
        assert session.exec(select(ImportRun)).all() == []


def test_unreadable_or_too_large_uploads_are_refused_clearly(
    acme_sqlite, sqlite_installation, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = signed_in(sqlite_installation)
    empty = upload(client, b"")
    assert empty.status_code == 400 and "is empty" in empty.text
    bad_header = upload(client, b"email,Email\na,b\n")
    assert bad_header.status_code == 400 and "appears twice" in bad_header.text

    monkeypatch.setattr(service, "MAX_UPLOAD_BYTES", 1000)
    too_large = upload(client, b"email\n" + b"a@example.com\n" * 200)  # over the limit while copied
    assert too_large.status_code == 413 and "larger than" in too_large.text
    announced = upload(client, b"email\n" + b"a@example.com\n" * 10_000)  # refused by Content-Length
    assert announced.status_code == 413 and "larger than" in announced.text
    assert list((sqlite_installation.data_dir / "imports" / TENANT).glob("*.csv")) == []


def test_analysts_see_imports_but_cannot_start_one(acme_sqlite, sqlite_installation) -> None:
    with control_session() as session:
        tenant = get_tenant(session, TENANT)
        put_member(session, tenant, email="ana@acme.test", role="analyst", password=PASSWORD, actor="test")
        session.commit()
    client = signed_in(sqlite_installation, "ana@acme.test")
    page = client.get(BASE)
    assert page.status_code == 200 and "Import a file" not in page.text
    assert upload(client, PEOPLE).status_code == 403
    no_csrf = signed_in(sqlite_installation).post(f"{BASE}/upload", data={"kind": "profiles"},
                                                   files={"file": ("p.csv", PEOPLE, "text/csv")})  # fmt: skip
    assert no_csrf.status_code == 403 and "CSRF" in no_csrf.text
    assert client.get(f"{BASE}/999").status_code == 404
