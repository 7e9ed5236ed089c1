"""Importing CSV files: profiles (identities, traits, consents) and transactions (Order Completed on
the right profile) after processing, idempotent re-imports, per-row errors with line numbers,
resuming an interrupted run, and the durable ``core.import_csv`` job."""

from __future__ import annotations

from sqlmodel import select

from core.consent.service import current
from core.db.engines import tenant_session
from core.imports import service
from core.imports.models import MAX_STORED_ERRORS, ImportRun
from core.ingest.models import Event
from core.profiles.jobs import process_events
from core.profiles.models import Profile
from core.profiles.service import count_profiles, find_by_identifier, identities_of
from core.queue import actors
from core.queue.models import Job, JobStatus

TENANT = "acme"

PROFILES = """Customer ID,E-mail,Phone,First name,Plan,consent.email,Consent SMS,Updated at
u-ann,Ann@Example.com,+33 6 12 34 56 78,Ann,gold,yes,no,2024-03-01T10:00:00Z
u-bob,bob@example.com,,Bob,silver,0,,2024-03-02
,carl@example.com,,Carl,,,,
"""

TRANSACTIONS = """Order ID;E-mail;Customer ID;Total;Currency;Products;SKU;Order date
A-1;ann@example.com;;49,90;eur;"[{""sku"": ""S1"", ""quantity"": 2}]";;2024-03-05T12:00:00Z
A-2;;u-bob;1,234.50;USD;;S2|S3;2024-03-06
A-3;dora@example.com;;10;EUR;;;1709287200
"""


def test_a_profiles_file_becomes_profiles_with_identities_traits_and_consents(
    acme, csv_file, importer
) -> None:
    run = importer(csv_file(PROFILES), "profiles")
    assert (run.status, run.total_rows, run.processed_rows, run.new_events, run.duplicates, run.error_count) == (
        "done", 3, 3, 3, 0, 0,
    )  # fmt: skip
    assert run.mapping == {
        "Customer ID": "user_id", "E-mail": "email", "Phone": "phone", "First name": "trait:first_name",
        "Plan": "trait:plan", "consent.email": "consent:email", "Consent SMS": "consent:sms",
        "Updated at": "timestamp",
    }  # fmt: skip
    process_events(TENANT, {})
    with tenant_session(acme.tenant.database) as session:
        ann = find_by_identifier(session, "user_id", "u-ann")
        assert {(i.type, i.value) for i in identities_of(session, ann.id)} == {
            ("user_id", "u-ann"), ("email", "ann@example.com"), ("phone", "+33612345678"),
        }  # fmt: skip
        assert ann.traits == {
            "first_name": "Ann", "plan": "gold", "email": "ann@example.com", "phone": "+33612345678",
        }  # fmt: skip
        assert ann.display_name == "Ann"
        assert [(c.channel, c.purpose, c.granted) for c in current(session, ann.id)] == [
            ("email", "marketing", True), ("sms", "marketing", False),
        ]  # fmt: skip
        bob = find_by_identifier(session, "email", "bob@example.com")
        assert bob.traits["plan"] == "silver"
        assert [(c.channel, c.granted) for c in current(session, bob.id)] == [("email", False)]
        carl = find_by_identifier(session, "email", "carl@example.com")
        assert carl.traits == {"first_name": "Carl", "email": "carl@example.com"}
        assert count_profiles(session) == 3
        stored = list(session.exec(select(Event)))
    assert {e.source for e in stored} == {"csv"}
    assert {e.type for e in stored} == {"identify"}
    assert all(e.message_id.startswith("csv:") for e in stored)
    assert stored[0].timestamp.isoformat().startswith("2024-03-01T10:00:00")
    assert stored[0].context["import"] == {"run": run.id, "file": run.filename, "line": 2}


def test_transactions_become_order_completed_events_on_the_right_profile(acme, csv_file, importer) -> None:
    importer(csv_file(PROFILES), "profiles")
    run = importer(csv_file(TRANSACTIONS), "transactions")
    assert (run.status, run.new_events, run.error_count) == ("done", 3, 0), run.errors
    assert run.mapping["SKU"] == "sku" and run.mapping["Order date"] == "timestamp"
    process_events(TENANT, {})
    with tenant_session(acme.tenant.database) as session:
        orders = {
            e.properties["order_id"]: e
            for e in session.exec(select(Event).where(Event.event == "Order Completed"))
        }
        ann = find_by_identifier(session, "email", "ann@example.com")
        bob = find_by_identifier(session, "user_id", "u-bob")
        dora = find_by_identifier(session, "email", "dora@example.com")
        assert orders["A-1"].profile_id == ann.id
        assert orders["A-2"].profile_id == bob.id
        assert orders["A-3"].profile_id == dora.id and dora.id not in {ann.id, bob.id}
        assert count_profiles(session) == 4
        assert "total" not in ann.traits  # orders set no traits
    assert orders["A-1"].properties == {
        "order_id": "A-1", "total": 49.9, "currency": "EUR", "products": [{"sku": "S1", "quantity": 2}],
    }  # fmt: skip
    assert orders["A-2"].properties == {
        "order_id": "A-2", "total": 1234.5, "currency": "USD", "products": [{"sku": "S2"}, {"sku": "S3"}],
    }  # fmt: skip
    assert orders["A-1"].message_id == "order:A-1"
    assert orders["A-1"].type == "track" and orders["A-1"].source == "csv"
    assert orders["A-1"].context["traits"] == {"email": "ann@example.com"}
    assert orders["A-3"].timestamp.isoformat().startswith("2024-03-01T10:00:00")


def test_importing_the_same_file_again_changes_nothing(acme, csv_file, importer, events) -> None:
    profiles, orders = csv_file(PROFILES), csv_file(TRANSACTIONS)
    importer(profiles, "profiles")
    importer(orders, "transactions")
    process_events(TENANT, {})
    before = [(e.id, e.message_id, e.profile_id, e.status) for e in events(acme)]
    with tenant_session(acme.tenant.database) as session:
        profiles_before = [(p.id, p.traits, p.merged_into) for p in session.exec(select(Profile))]

    again = importer(profiles, "profiles")
    orders_again = importer(orders, "transactions")
    process_events(TENANT, {})
    assert (again.new_events, again.duplicates, again.error_count) == (0, 3, 0)
    assert (orders_again.new_events, orders_again.duplicates) == (0, 3)
    assert [(e.id, e.message_id, e.profile_id, e.status) for e in events(acme)] == before
    with tenant_session(acme.tenant.database) as session:
        assert [(p.id, p.traits, p.merged_into) for p in session.exec(select(Profile))] == profiles_before
        # The first two imports shared one processing job; the re-imports stored nothing, queued none.
        assert len(list(session.exec(select(Job).where(Job.kind == "core.process_events")))) == 1


def test_the_same_rows_in_another_column_order_are_already_imported(acme_sqlite, csv_file, importer) -> None:
    importer(csv_file("email,name\na@x.com,Ann\nb@x.com,Bob\n"), "profiles")
    again = importer(csv_file("Name;E-Mail\n Ann ;A@X.com\nBob;b@x.com\n"), "profiles")
    assert (again.new_events, again.duplicates) == (0, 2)


def test_broken_rows_are_reported_by_line_and_good_rows_are_kept(acme, csv_file, importer, events) -> None:
    content = (
        b"email,first name,updated_at\n"  # 1
        b"good1@example.com,Ann,2024-03-01\n"  # 2
        b"good2@example.com,Bob\n"  # 3 wrong column count
        b"not-an-email,Carl,2024-03-01\n"  # 4 invalid email
        b",Dora,2024-03-01\n"  # 5 missing identifier
        b"eve@example.com,Eve,last tuesday\n"  # 6 bad timestamp
        b'fay@example.com,"Fay ""the" great",2024-03-01\n'  # 7 broken quoting
        b'"gus@example.com,Gus,2024-03-01\n'  # 8 a quote never closed
        b"hal@example.com,Hal,2024-03-02\n"  # 9
    ) + b"ida@example.com,Id\xe4,2024-03-02\n"  # 10 Latin-1
    run = importer(csv_file(content), "profiles")
    reasons = {e["line"]: e["reason"] for e in run.errors}
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8, 10]
    assert reasons[3] == "wrong column count: expected 3 columns, found 2"
    assert reasons[4].startswith("invalid email in column 'email': 'not-an-email'")
    assert reasons[5].startswith("missing identifier")
    assert reasons[6].startswith("bad timestamp in column 'updated_at': 'last tuesday'")
    assert reasons[7].startswith("broken quoting") and reasons[8].startswith("broken quoting")
    assert reasons[10].startswith("non-UTF-8 bytes")
    assert (run.status, run.processed_rows, run.new_events, run.error_count) == ("done", 9, 2, 7)
    assert sorted(e.traits["email"] for e in events(acme)) == ["good1@example.com", "hal@example.com"]


def test_broken_transaction_rows_are_reported_and_nothing_partial_is_stored(
    acme_sqlite, csv_file, importer, events
) -> None:
    content = (
        "order_id,email,total,currency,products,timestamp\n"  # 1
        "B-1,ann@example.com,12.5,EUR,,2024-03-01\n"  # 2
        "B-2,ann@example.com,twelve,EUR,,2024-03-01\n"  # 3 bad number
        ",ann@example.com,12,EUR,,2024-03-01\n"  # 4 missing order id
        "B-4,,12,EUR,,2024-03-01\n"  # 5 missing identifier
        "B-5,ann@example.com,,EUR,,2024-03-01\n"  # 6 missing amount
        "B-6,ann@example.com,12,euros,,2024-03-01\n"  # 7 bad currency
        "B-7,ann@example.com,12,EUR,[oops,2024-03-01\n"  # 8 bad products
        "B-1,bob@example.com,99,EUR,,2024-03-01\n"  # 9 the same order twice
        "B-9,ann@example.com,12,EUR,,01/03/2024\n"  # 10 bad timestamp
    )
    run = importer(csv_file(content), "transactions")
    reasons = {e["line"]: e["reason"] for e in run.errors}
    assert reasons[3].startswith("bad number in column 'total': 'twelve'")
    assert reasons[4] == "missing order_id"
    assert reasons[5].startswith("missing identifier")
    assert reasons[6].startswith("missing amount")
    assert reasons[7].startswith("bad currency")
    assert reasons[8].startswith("bad products")
    assert reasons[9].startswith("order_id 'B-1' already appears on line 2")
    assert reasons[10].startswith("bad timestamp")
    assert (run.new_events, run.error_count) == (1, 8)
    assert [e.message_id for e in events(acme_sqlite)] == ["order:B-1"]


def test_an_interrupted_import_resumes_after_its_last_stored_chunk(acme, csv_file, importer, events) -> None:
    rows = "".join(f"user-{n},user{n}@example.com\n" for n in range(25))
    path = csv_file("user_id,email\n" + rows + "bad\n")

    def crash_after_first_chunk(done: int, total: int) -> None:
        if done >= 10:
            raise RuntimeError("worker killed")

    try:
        importer(path, "profiles", progress=crash_after_first_chunk, chunk_rows=10)
    except RuntimeError:
        pass
    with tenant_session(acme.tenant.database) as session:
        run = session.exec(select(ImportRun)).one()
    assert (run.status, run.processed_rows, run.new_events, run.total_rows) == ("running", 10, 10, 26)
    assert len(events(acme)) == 10
    assert run.id is not None
    finished = service.run_import(TENANT, run.id, chunk_rows=10)
    assert (finished.status, finished.processed_rows, finished.new_events, finished.duplicates) == (
        "done", 26, 25, 0,
    )  # fmt: skip
    assert finished.errors == [{"line": 27, "reason": "wrong column count: expected 2 columns, found 1"}]
    assert len(events(acme)) == 25
    assert service.run_import(TENANT, run.id).processed_rows == 26  # a finished run is left alone


def test_stored_errors_are_capped_but_all_are_counted(acme_sqlite, csv_file, importer) -> None:
    total = MAX_STORED_ERRORS + 5
    path = csv_file("email,name\n" + "".join(f"nobody{n},N\n" for n in range(total)) + "ok@example.com,Ok\n")
    seen: list[dict] = []
    run = importer(path, "profiles", on_error=seen.append)
    assert (run.error_count, len(run.errors), len(seen), run.new_events) == (
        total,
        MAX_STORED_ERRORS,
        total,
        1,
    )
    assert run.errors[0]["line"] == 2 and seen[-1]["line"] == total + 1


def test_the_import_job_runs_the_import_in_the_worker(acme, csv_file, events) -> None:
    context = service.tenant_context(TENANT)
    path = csv_file(PROFILES)
    with tenant_session(context.database) as session:
        run = service.create_run(session, context, kind="profiles", filename="people.csv", path=path,
                                 mapping={"Plan": "ignore"}, created_by="ann@acme.test")  # fmt: skip
        session.commit()
        job = session.exec(select(Job).where(Job.kind == service.IMPORT_JOB)).one()
    assert job.payload == {"run_id": run.id}
    assert job.id is not None and actors.execute_job(TENANT, job.id) == JobStatus.done
    with tenant_session(context.database) as session:
        done = session.get(ImportRun, run.id)
        assert done is not None and (done.status, done.new_events) == ("done", 3)
        assert done.mapping["Plan"] == "ignore" and done.mapping["E-mail"] == "email"
    assert all("plan" not in e.traits for e in events(acme))


def test_a_file_that_disappeared_fails_the_run_without_retrying(acme_sqlite, csv_file) -> None:
    context = service.tenant_context(TENANT)
    path = csv_file(PROFILES)
    with tenant_session(context.database) as session:
        run = service.create_run(session, context, kind="profiles", filename="p.csv", path=path, mapping={},
                                 created_by="test")  # fmt: skip
        session.commit()
        job = session.exec(select(Job).where(Job.kind == service.IMPORT_JOB)).one()
    path.unlink()
    assert job.id is not None and actors.execute_job(TENANT, job.id) == JobStatus.done
    with tenant_session(context.database) as session:
        failed = session.get(ImportRun, run.id)
        assert failed is not None and failed.status == "failed" and "No file" in (failed.detail or "")
