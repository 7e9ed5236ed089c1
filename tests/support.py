"""Helpers shared by tests: signing in through the real forms, bearer headers."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

PASSWORD = "correct-horse-1"


def bearer(token: str) -> dict[str, str]:
    """Headers for an API call with a token."""
    return {"Authorization": f"Bearer {token}"}


def login(client: TestClient, email: str, password: str = PASSWORD) -> None:
    """Sign a test client in through the real login form (with its CSRF token)."""
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, "the login page carries a CSRF token"
    answer = client.post("/login", data={"email": email, "password": password, "csrf_token": token.group(1)})
    assert answer.status_code == 200, answer.text


def csrf_of(client: TestClient, path: str) -> str:
    """The CSRF token a signed-in page carries."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert match
    return match.group(1)
