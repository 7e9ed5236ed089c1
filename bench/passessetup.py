"""The pass latency benchmark's tenant: Apple Wallet live on a fake APNs, a loyalty program, a card
template, and customers whose card is installed on a device each.

Two halves:

- :func:`configure` runs inside Tessera (``python -m bench.passessetup --tenant SLUG --wallet FILE``
  with the installation's environment; prints one JSON object). It enables Apple Wallet for the
  tenant *live* (not sandbox) with the channel config read from ``FILE`` (the test chain's .p12
  plus ``apns_url`` and ``apns_ca_pem`` of the fake APNs: the benchmark process wrote it, from the
  chain its fake trusts; the chain is generated per process, so this process must not make its
  own), creates the program ``club`` with one active earning rule (1 point per unit of
  ``revenue`` of ``Order Completed``) and the card template :data:`CARD` with a generated icon.
- :func:`install_cards` runs in the benchmark process and speaks HTTP only, as customers and their
  phones would: an ``identify`` per customer through ``/v1/identify``, the pass issued with
  ``POST /api/v1/passes``, and one device per pass registered through the PassKit web service
  with its own 64-hex push token.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.installation import Tenant
from bench.orchestrationdata import psycopg_url

CHANNEL = "wallet_apple"
PROGRAM_KEY = "club"
PURCHASE = "Order Completed"
ACTOR = "bench"
PROFILES_TIMEOUT_S = 120.0
POLL_S = 0.2
CARD: dict[str, Any] = {
    "style": "storeCard", "organization_name": "Tessera Bench Shop", "description": "Bench Club card",
    "background_color": "rgb(24, 48, 96)", "foreground_color": "rgb(255, 255, 255)",
    "fields": [
        {"key": "points", "area": "primary", "label": "Points", "value": "{{ loyalty.club.balance }}",
         "change_message": "You now have %@ points", "numeric": True, "role": "points"},
        {"key": "name", "area": "secondary", "label": "Member", "value": "{{ traits.first_name }}"},
        {"key": "terms", "area": "back", "label": "Terms", "value": "Points never expire"},
    ],
    "barcode": {"format": "qr", "message": "{{ wallet.serial }}"},
}  # fmt: skip


@dataclass(frozen=True)
class Card:
    """One customer's installed card: who, the pass, and the device holding it."""

    user_id: str
    profile_id: str
    serial: str
    authentication_token: str
    device_id: str
    push_token: str


def user_id_of(index: int) -> str:
    """The user id of customer number ``index``."""
    return f"pass-customer-{index:05d}"


def push_token_of(index: int) -> str:
    """A distinct 64-hex APNs device token per customer (32 bytes, as iPhones have)."""
    return hashlib.sha256(f"tessera-bench-device-{index}".encode()).hexdigest()


# --- inside Tessera (a subprocess with the installation's environment) -------------------------------
def configure(tenant_slug: str, wallet: dict[str, str]) -> dict[str, Any]:
    """Apple Wallet live with ``wallet`` as its config, the program and its rule, the card template."""
    from sqlmodel import Session
    from tessera_wallet_apple.testchain import sample_png

    from core.db.engines import control_session, tenant_engine
    from core.loyalty import programs
    from core.loyalty.models import RuleKind, RuleStatus
    from core.passes import library
    from core.plugins import get_host
    from core.segments.service import conditions_for
    from core.tenancy.plugin_settings import enabled_plugins, save_channel_config, set_enabled
    from core.tenancy.tenants import get_tenant

    host = get_host()
    with control_session() as control:
        tenant = get_tenant(control, tenant_slug)
        set_enabled(control, tenant, host, CHANNEL, True, sandbox=False)
        save_channel_config(control, tenant, host, CHANNEL, wallet)
        control.commit()
        enabled = frozenset(enabled_plugins(control, tenant, host))
    with Session(tenant_engine(tenant.database), expire_on_commit=False) as session:
        program = programs.create_program(
            session, programs.ProgramIn(key=PROGRAM_KEY, name="Bench Club"), ACTOR
        )
        assert program.id is not None
        body = programs.RuleIn(name="1 point per unit of revenue", event=PURCHASE, kind=RuleKind.per_amount,
                               points=1)  # fmt: skip
        rule = programs.create_rule(session, program.id, body, ACTOR, conditions_for(enabled))
        assert rule.id is not None
        programs.set_rule_status(session, program.id, rule.id, RuleStatus.active, ACTOR)
        icon = library.add_image(session, "icon", "icon.png", sample_png(120, 120))
        template = library.save_template(session, key="club_card", name="Club card", channel=CHANNEL,
                                         design={**CARD, "images": {"icon": icon.id}}, by=ACTOR)  # fmt: skip
        session.commit()
        return {"template_id": template.id, "program_id": program.id, "rule_id": rule.id}


def main() -> None:
    """Parse the options, configure the tenant, print the JSON result."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--wallet", required=True, type=Path, help="JSON file of the Apple Wallet config")
    args = parser.parse_args()
    print(json.dumps(configure(args.tenant, json.loads(args.wallet.read_text()))))


# --- the benchmark process (HTTP only) -----------------------------------------------------------------
def _profiles(database_url: str, users: list[str]) -> dict[str, str]:
    """user id -> profile id of the customers processing has made so far."""
    with psycopg.connect(psycopg_url(database_url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT value, profile_id FROM identity WHERE type = 'user_id' AND value = ANY(%s)", (users,)
        ).fetchall()
    return {str(value): str(profile) for value, profile in rows}


def _tokens(database_url: str, serials: list[str]) -> dict[str, str]:
    """serial -> the pass's authentication token (what the device reads from pass.json)."""
    with psycopg.connect(psycopg_url(database_url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT serial, authentication_token FROM wallet_pass WHERE serial = ANY(%s)", (serials,)
        ).fetchall()
    return {str(serial): str(token) for serial, token in rows}


def create_customers(base_url: str, tenant: Tenant, count: int) -> dict[str, str]:
    """``count`` customers identified through ``/v1/identify`` and processed; user id -> profile id."""
    users = [user_id_of(index) for index in range(count)]
    with httpx.Client(base_url=base_url, auth=(tenant.write_key, ""), timeout=30) as client:
        for index, user in enumerate(users):
            body = {
                "userId": user,
                "traits": {"first_name": f"Customer {index}", "email": f"{user}@bench.test"},
            }
            client.post("/v1/identify", json=body).raise_for_status()
    deadline = time.perf_counter() + PROFILES_TIMEOUT_S
    while len(found := _profiles(tenant.database_url, users)) < count:
        if time.perf_counter() > deadline:
            raise TimeoutError(
                f"{len(found)} of {count} customers processed after {PROFILES_TIMEOUT_S:.0f} s"
            )
        time.sleep(POLL_S)
    return found


def install_cards(base_url: str, tenant: Tenant, template_id: int, pass_type: str, count: int) -> list[Card]:
    """``count`` customers, each with the card issued (the API) and installed on a device of its own."""
    profiles = create_customers(base_url, tenant, count)
    serials: dict[str, str] = {}
    api = {"Authorization": f"Bearer {tenant.api_token}"}
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for user, profile in profiles.items():
            issued = client.post(
                "/api/v1/passes", headers=api, json={"template_id": template_id, "profile_id": profile}
            )
            if issued.status_code != 201:
                raise RuntimeError(f"issuing {user}'s pass answered {issued.status_code}: {issued.text}")
            serials[user] = issued.json()["serial"]
        tokens = _tokens(tenant.database_url, list(serials.values()))
        cards = []
        for index, user in enumerate(sorted(serials)):
            serial = serials[user]
            card = Card(
                user,
                profiles[user],
                serial,
                tokens[serial],
                f"bench-device-{index:05d}",
                push_token_of(index),
            )
            url = f"/x/{tenant.slug}/wallet_apple/v1/devices/{card.device_id}/registrations/{pass_type}/{serial}"
            answer = client.post(url, headers={"Authorization": f"ApplePass {card.authentication_token}"},
                                 json={"pushToken": card.push_token})  # fmt: skip
            if answer.status_code != 201:
                raise RuntimeError(
                    f"registering {user}'s device answered {answer.status_code}: {answer.text}"
                )
            cards.append(card)
    return cards


if __name__ == "__main__":
    main()
