"""``tessera import profiles|transactions`` end to end with typer's CliRunner, on both backends."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from sqlmodel import select
from typer.testing import CliRunner

from core.audit.models import AuditEntry
from core.cli import app
from core.db.engines import control_session, tenant_session
from core.imports.models import ImportRun
from core.ingest.models import Event
from core.profiles.jobs import process_events
from core.profiles.service import find_by_identifier

runner = CliRunner()
TENANT = "acme"
PEOPLE = """email;First Name;Tier;consent.email
ann@example.com;Ann;gold;yes
bob@example.com;Bob;silver;no
broken-email;Carl;bronze;yes
;Dora;gold;yes
"""
ORDERS = """order_id,Customer E-mail,amount,currency,date
O-1,ann@example.com,20.00,EUR,2024-04-01T09:00:00Z
O-2,bob@example.com,oops,EUR,2024-04-02
"""


def invoke(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args])


def test_profiles_are_imported_with_a_json_report_and_again_as_already_imported(
    acme, csv_file, tmp_path
) -> None:
    path = csv_file(PEOPLE, "people.csv")
    result = invoke(
        "import", "profiles", path, "--tenant", TENANT, "--map", "Tier=trait:loyalty_tier", "--json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["status"], report["rows"], report["new"], report["already_imported"], report["error_count"]) == (
        "done", 4, 2, 0, 2,
    )  # fmt: skip
    assert report["mapping"] == {
        "email": "email", "First Name": "trait:first_name", "Tier": "trait:loyalty_tier",
        "consent.email": "consent:email",
    }  # fmt: skip
    assert [e["line"] for e in report["errors"]] == [4, 5]
    assert report["errors"][0]["reason"].startswith("invalid email")
    assert report["errors"][1]["reason"].startswith("missing identifier")

    process_events(TENANT, {})
    with tenant_session(acme.tenant.database) as session:
        ann = find_by_identifier(session, "email", "ann@example.com")
        assert ann.traits["loyalty_tier"] == "gold" and ann.traits["first_name"] == "Ann"
        runs = session.exec(select(ImportRun)).all()
    assert [(r.created_by, r.filename, r.status) for r in runs] == [("cli", "people.csv", "done")]
    with control_session() as control:
        entry = control.exec(select(AuditEntry).where(AuditEntry.action == "import.start")).one()
    assert (entry.actor, entry.target, entry.detail["kind"]) == ("cli", "people.csv", "profiles")

    errors_out = tmp_path / "errors.csv"
    again = invoke("import", "profiles", path, "--tenant", TENANT, "--map", "Tier=trait:loyalty_tier",
                   "--errors-out", errors_out)  # fmt: skip
    assert again.exit_code == 0, again.output
    assert "4 rows read: 0 new, 2 already imported, 2 with errors" in again.stdout
    assert "Rows not imported" in again.stdout
    with open(errors_out, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["line", "reason"] and [r[0] for r in rows[1:]] == ["4", "5"]


def test_transactions_are_imported_from_the_cli(acme, csv_file) -> None:
    path = csv_file(ORDERS)
    result = invoke("import", "transactions", path, "--tenant", TENANT, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["mapping"] == {
        "order_id": "order_id", "Customer E-mail": "email", "amount": "total", "currency": "currency",
        "date": "timestamp",
    }  # fmt: skip
    assert (report["status"], report["new"], report["error_count"]) == ("done", 1, 1)
    assert report["errors"] == [
        {"line": 3, "reason": "bad number in column 'amount': 'oops' is not a number"}
    ]
    process_events(TENANT, {})
    with tenant_session(acme.tenant.database) as session:
        ann = find_by_identifier(session, "email", "ann@example.com")
        orders = session.exec(select(Event).where(Event.profile_id == ann.id)).all()
    assert [(e.event, e.properties["total"], e.properties["currency"]) for e in orders] == [
        ("Order Completed", 20, "EUR")
    ]

    again = invoke("import", "transactions", path, "--tenant", TENANT)
    assert again.exit_code == 0, again.output
    assert "2 rows read: 0 new, 1 already imported, 1 with errors" in again.stdout


def test_bad_arguments_exit_with_code_2_and_one_line(acme, csv_file, tmp_path) -> None:
    path = csv_file(PEOPLE)
    cases = [
        (("import", "profiles", path, "--tenant", "nope"), "Unknown tenant 'nope'"),
        (("import", "profiles", tmp_path / "missing.csv", "--tenant", TENANT), "No file"),
        (("import", "profiles", tmp_path, "--tenant", TENANT), "folder"),
        (("import", "profiles", csv_file(b""), "--tenant", TENANT), "empty"),
        (("import", "profiles", path, "--tenant", TENANT, "--map", "Tier=tier"), "write trait:tier"),
        (("import", "profiles", path, "--tenant", TENANT, "--map", "Nope=email"), "No column 'Nope'"),
        (("import", "profiles", path, "--tenant", TENANT, "--map", "email=ignore"), "identifier"),
        (("import", "transactions", path, "--tenant", TENANT), "order_id"),
    ]
    for args, message in cases:
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], (
            args,
            result.stderr,
        )
    with tenant_session(acme.tenant.database) as session:
        assert session.exec(select(ImportRun)).all() == []  # refused before any run was created
