"""Signing in and out (session cookie), with every attempt in the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from core.audit.service import record
from core.tenancy.users import authenticate, get_user_by_email, tenants_of
from web.auth import ControlDB, client_info, session_user
from web.csrf import verify_csrf
from web.templating import render

router = APIRouter(dependencies=[Depends(verify_csrf)])


def _safe_next(target: str | None) -> str:
    # Only same-site paths: never redirect a fresh login to another host.
    return target if target and target.startswith("/") and not target.startswith("//") else "/"


@router.get("/login", include_in_schema=False)
def login_page(request: Request, session: ControlDB, next: str | None = None) -> Response:
    """The sign-in form (or straight on, if already signed in)."""
    if session_user(request, session):
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "login.html", {"next": next})


@router.post("/login", include_in_schema=False)
def login(
    request: Request,
    session: ControlDB,
    email: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str | None, Form()] = None,
) -> Response:
    """Check the password; on success start a fresh session, else say so without detail."""
    user = authenticate(session, email, password)
    where = client_info(request)
    known = user or get_user_by_email(session, email)
    tenant_ids = [t.id for t, _ in tenants_of(session, known)] if known else []
    for tenant_id in tenant_ids or [None]:
        record(session, actor=email.strip().lower()[:320], action="login" if user else "login.failed",
               tenant_id=tenant_id, **where)  # fmt: skip
    session.commit()
    if user is None:
        context = {"error": "Wrong email or password.", "email": email, "next": next}
        return render(request, "login.html", context, status_code=401)
    request.session.clear()  # a new session id for the signed-in user (no fixation)
    request.session["user_id"] = user.id
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout", include_in_schema=False)
def logout(request: Request) -> Response:
    """End the session."""
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
