"""Tenants, onboarding and members: the rules that keep tenants well formed and owned.

* A slug is 3-40 characters of ``[a-z0-9-]``, starts with a letter, does not end with ``-``,
  has no ``--`` and is not reserved; nothing else is accepted (property-tested).
* A duplicate slug is a :class:`Conflict` and leaves no stray database behind, and never
  touches the existing tenant's database, even when two creations race.
* Naming an existing user as a new tenant's admin needs that user's password.
* A tenant always keeps an admin: the last one cannot be demoted.
* A member's scope survives a round trip through its text form.
"""

from __future__ import annotations

import re
import threading
import time

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import text
from sqlmodel import Session, func, select

from core.db import engines
from core.db.engines import control_session, tenant_engine
from core.queue.models import Job
from core.tenancy.errors import Conflict, NotFound, TenancyError
from core.tenancy.members import format_scope, parse_scope, put_member
from core.tenancy.onboarding import onboard_tenant
from core.tenancy.tenants import create_tenant, get_tenant, validate_slug
from core.tenancy.users import authenticate, get_membership, get_user_by_email, tenants_of
from tests.support import PASSWORD, bearer

# --- slugs -----------------------------------------------------------------------------------

SLUG_SHAPE = re.compile(r"[a-z][a-z0-9-]{1,38}[a-z0-9]")
RESERVED = {"admin", "api", "static", "login", "logout", "new", "control", "postgres"}


def is_valid_slug(slug: str) -> bool:
    """The rule, written out independently of the code under test."""
    return SLUG_SHAPE.fullmatch(slug) is not None and "--" not in slug and slug not in RESERVED


slug_candidates = st.one_of(
    st.from_regex(SLUG_SHAPE, fullmatch=True),
    st.text(alphabet="abz09-_A. \n\t", max_size=45),
    st.sampled_from(sorted(RESERVED)),
    st.text(max_size=45),
)


@given(slug_candidates)
@example("acme")
@example("a-1")
@example("a" * 40)
@example("acme\n")
@example("\nacme")
@example("a" * 41)
@example("ab")
@example("a--b")
@example("acme-")
@example("1acme")
@example("Acme")
@example("ac_me")
@example("admin")
def test_validate_slug_accepts_exactly_the_documented_slugs(slug: str) -> None:
    if is_valid_slug(slug):
        assert validate_slug(slug) == slug
    else:
        with pytest.raises(TenancyError) as refused:
            validate_slug(slug)
        assert repr(slug) in str(refused.value)  # it names the slug it refused


def test_a_refused_slug_says_what_is_allowed() -> None:
    with pytest.raises(TenancyError, match="3-40 characters, lower-case letters, digits and '-'"):
        validate_slug("No Spaces")
    with pytest.raises(TenancyError, match="reserved"):
        validate_slug("admin")
    with pytest.raises(TenancyError, match="'--' is not allowed"):
        validate_slug("a--b")


# --- creating tenants ------------------------------------------------------------------------


def tenant_databases(installation) -> set[str]:
    """The tenant databases that exist: PostgreSQL databases or SQLite files of this installation."""
    if installation.backend == "sqlite":
        folder = installation.data_dir / "tenants"
        return {p.name for p in folder.glob("*.db")} if folder.exists() else set()
    control = engines.control_url().database
    with engines.control_engine().connect() as conn:
        rows = conn.execute(
            text("SELECT datname FROM pg_database WHERE datname LIKE :p"), {"p": f"{control}_t_%"}
        )
        return set(rows.scalars())


def jobs_in(database: str) -> int:
    with Session(tenant_engine(database)) as session:
        return session.exec(select(func.count()).select_from(Job)).one()


def put_a_job(database: str) -> None:
    with Session(tenant_engine(database)) as session:
        session.add(Job(kind="keep.me"))
        session.commit()


def test_a_tenant_gets_its_own_database(installation) -> None:
    acme = installation.tenant("acme")
    assert tenant_databases(installation) == {acme.tenant.database}
    assert jobs_in(acme.tenant.database) == 0


def test_a_duplicate_slug_is_a_conflict_and_leaves_no_stray_database(installation) -> None:
    acme = installation.tenant("acme")
    put_a_job(acme.tenant.database)
    before = tenant_databases(installation)

    with control_session() as session, pytest.raises(Conflict, match="'acme' already exists"):
        create_tenant(session, "acme")

    assert tenant_databases(installation) == before
    assert jobs_in(acme.tenant.database) == 1  # the existing tenant's data is untouched
    with control_session() as session:
        assert get_tenant(session, "acme").id == acme.tenant.id


def wait_until_someone_waits_for_a_lock(installation, seconds: float = 15.0) -> None:
    """Return once another connection to the control database waits on a row lock (PostgreSQL)."""
    if installation.backend != "postgres":
        time.sleep(1.0)  # SQLite: the second writer waits on the database lock, or sees the row
        return
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + seconds
    with engines.control_engine().connect() as conn:
        while time.monotonic() < deadline:
            if conn.execute(query).scalar():
                return
            conn.commit()  # a fresh statistics snapshot next time
            time.sleep(0.02)
    raise AssertionError("the second creation never waited for the first one's row")


def test_a_racing_duplicate_is_a_conflict_and_spares_the_winners_database(installation) -> None:
    """Two creations of one slug overlap: the loser checked for the slug before the winner committed."""
    installation.tenant("other")  # the control database is migrated and in use
    winner_session = Session(engines.control_engine(), expire_on_commit=False)
    winner = create_tenant(winner_session, "acme")  # flushed, not committed yet
    outcome: dict[str, object] = {}

    def loser() -> None:
        with control_session() as session:
            try:
                create_tenant(session, "acme")
                session.commit()
                outcome["result"] = "created"
            except Exception as exc:  # noqa: BLE001 - the outcome is asserted below
                outcome["result"] = exc

    racer = threading.Thread(target=loser)
    racer.start()
    wait_until_someone_waits_for_a_lock(installation)
    winner_session.commit()
    winner_session.close()
    racer.join(timeout=30)
    assert not racer.is_alive()

    assert isinstance(outcome["result"], Conflict), outcome["result"]
    assert winner.database in tenant_databases(installation)
    put_a_job(winner.database)  # the winner's database still works
    assert jobs_in(winner.database) == 1


def test_a_tenant_is_registered_only_when_the_caller_commits(installation) -> None:
    installation.tenant("other")
    with control_session() as session:
        create_tenant(session, "acme")
        session.rollback()
    with control_session() as session, pytest.raises(NotFound):
        get_tenant(session, "acme")


def test_an_invalid_slug_creates_nothing(installation) -> None:
    with control_session() as session, pytest.raises(TenancyError):
        create_tenant(session, "Not-Valid")
    assert tenant_databases(installation) == set()


# --- onboarding ------------------------------------------------------------------------------


def test_naming_an_existing_user_as_admin_needs_their_password(installation) -> None:
    installation.tenant("acme", email="owner@example.test")
    before = tenant_databases(installation)

    with control_session() as session:
        with pytest.raises(TenancyError, match="password given is not theirs"):
            onboard_tenant(session, "globex", "owner@example.test", "guessed-password")
        session.rollback()

    with control_session() as session:
        with pytest.raises(NotFound):
            get_tenant(session, "globex")
        user = get_user_by_email(session, "owner@example.test")
        assert user is not None
        assert [t.slug for t, _ in tenants_of(session, user)] == ["acme"]
        assert authenticate(session, "owner@example.test", PASSWORD) is not None  # password unchanged
    assert tenant_databases(installation) == before


def test_an_existing_user_with_their_password_becomes_admin_of_a_new_tenant(installation) -> None:
    installation.tenant("acme", email="owner@example.test")
    installation.tenant("globex", email="owner@example.test")
    with control_session() as session:
        user = get_user_by_email(session, "owner@example.test")
        assert user is not None
        assert [(t.slug, m.role) for t, m in tenants_of(session, user)] == [
            ("acme", "admin"),
            ("globex", "admin"),
        ]


# --- members ---------------------------------------------------------------------------------


def test_the_last_admin_cannot_be_demoted(installation) -> None:
    installation.tenant("acme")
    with control_session() as session:
        tenant = get_tenant(session, "acme")
        with pytest.raises(TenancyError, match="last admin of acme"):
            put_member(session, tenant, email="admin@acme.test", role="analyst", actor="test")
        session.rollback()
    with control_session() as session:
        user = get_user_by_email(session, "admin@acme.test")
        assert user is not None
        membership = get_membership(session, user, get_tenant(session, "acme"))
        assert membership is not None and membership.role == "admin"


def test_an_admin_can_step_down_once_there_is_another(installation) -> None:
    installation.tenant("acme")
    with control_session() as session:
        tenant = get_tenant(session, "acme")
        put_member(session, tenant, email="second@acme.test", role="admin", password=PASSWORD, actor="test")
        put_member(session, tenant, email="admin@acme.test", role="marketer", actor="test")
        session.commit()
    with control_session() as session:
        tenant = get_tenant(session, "acme")
        with pytest.raises(TenancyError, match="last admin"):
            put_member(session, tenant, email="second@acme.test", role="operator", actor="test")


def test_the_api_refuses_to_demote_the_last_admin(installation) -> None:
    acme = installation.tenant("acme")
    client = installation.client()
    answer = client.put(
        "/api/v1/members",
        json={"email": "admin@acme.test", "role": "analyst"},
        headers=bearer(acme.api_token),
    )
    assert answer.status_code == 400
    assert "last admin" in answer.json()["detail"]
    members = client.get("/api/v1/members", headers=bearer(acme.api_token)).json()
    assert members == [{"email": "admin@acme.test", "role": "admin", "scope": {}}]


def test_a_new_member_needs_an_initial_password(installation) -> None:
    installation.tenant("acme")
    with control_session() as session:
        with pytest.raises(TenancyError, match="no account yet"):
            put_member(session, get_tenant(session, "acme"), email="new@acme.test", role="analyst", actor="t")


def test_an_unknown_role_is_refused(installation) -> None:
    installation.tenant("acme")
    with control_session() as session:
        with pytest.raises(TenancyError, match="Unknown role 'owner'"):
            put_member(
                session,
                get_tenant(session, "acme"),
                email="x@acme.test",
                role="owner",
                password=PASSWORD,
                actor="t",
            )


# --- scopes ----------------------------------------------------------------------------------

scope_values = st.lists(st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True), min_size=1, max_size=4)
scopes = st.dictionaries(st.sampled_from(["country", "brand"]), scope_values)


@given(scopes)
def test_a_scope_survives_its_text_form(scope: dict[str, list[str]]) -> None:
    assert parse_scope(format_scope(scope)) == scope


@given(scopes)
def test_the_text_form_of_a_scope_is_stable(scope: dict[str, list[str]]) -> None:
    written = format_scope(scope)
    assert format_scope(parse_scope(written)) == written


def test_scope_text_is_read_leniently() -> None:
    assert parse_scope("  Country = FR, DE ;brand=acme;  ") == {"country": ["FR", "DE"], "brand": ["acme"]}
    assert parse_scope("") == {}
    assert format_scope({}) == ""


@pytest.mark.parametrize("bad", ["region=EU", "country", "country=", "country=FR;brand=a b", "brand=x,<y>"])
def test_a_malformed_scope_is_refused(bad: str) -> None:
    with pytest.raises(TenancyError, match="scope"):
        parse_scope(bad)
