"""The demo tenant's Apple Wallet is configured with test certificates and has a loyalty card
bound to the Tessera Club balance, issued to its first customers and ready to download; with
Google Wallet on, the same card is issued in Google Wallet too."""

from __future__ import annotations

import io
import json
import zipfile
from urllib.parse import urlsplit

from sqlmodel import Session, select

from core.db.engines import control_session, tenant_engine
from core.demo import seed_demo_data
from core.loyalty.standing import standings
from core.passes.links import download_url
from core.passes.models import PassTemplate, Store, WalletPass
from core.plugins import get_host
from core.tenancy.plugin_settings import set_enabled
from core.tenancy.tenants import get_tenant


def test_the_demo_card_is_issued_to_the_first_customers_and_shows_their_points(sqlite_installation) -> None:
    database = sqlite_installation.tenant("demo").tenant.database
    with control_session() as control:
        set_enabled(control, get_tenant(control, "demo"), get_host(), "wallet_apple", True, sandbox=True)
        control.commit()
    seed_demo_data("demo")
    seed_demo_data("demo")  # again: nothing is added twice
    with Session(tenant_engine(database)) as session:
        [template] = session.exec(select(PassTemplate)).all()
        passes = session.exec(select(WalletPass)).all()
        assert (template.key, template.channel) == ("club_card", "wallet_apple")
        assert sorted(template.design["translations"]) == ["de", "fr"]
        assert len(session.exec(select(Store)).all()) == 3 and len(template.design["store_ids"]) == 3
        assert len(passes) == 12
        member = next(p for p in passes if standings(session, [p.profile_id])[p.profile_id])
        [standing] = standings(session, [member.profile_id])[member.profile_id]
    with sqlite_installation.client() as client:
        answer = client.get(urlsplit(download_url("demo", template.id or 0, member.profile_id)).path)
    assert answer.status_code == 200, answer.text
    with zipfile.ZipFile(io.BytesIO(answer.content)) as pkpass:
        shown = json.loads(pkpass.read("pass.json"))
        assert {"icon.png", "logo@2x.png", "strip@3x.png", "fr.lproj/pass.strings"} <= set(pkpass.namelist())
    [points] = shown["storeCard"]["primaryFields"]
    assert points["value"] == standing.balance and shown["serialNumber"] == member.serial


def test_with_google_wallet_on_the_same_card_is_issued_in_both_wallets(sqlite_installation) -> None:
    database = sqlite_installation.tenant("demo").tenant.database
    with control_session() as control:
        tenant = get_tenant(control, "demo")
        for wallet in ("wallet_apple", "wallet_google"):
            set_enabled(control, tenant, get_host(), wallet, True, sandbox=True)
        control.commit()
    seed_demo_data("demo")
    with Session(tenant_engine(database)) as session:
        [template] = session.exec(select(PassTemplate)).all()
        passes = session.exec(select(WalletPass)).all()
    assert template.wallets() == ["wallet_apple", "wallet_google"]
    by_wallet = {
        channel: {p.profile_id for p in passes if p.channel == channel} for channel in template.wallets()
    }
    assert len(by_wallet["wallet_apple"]) == 12 and by_wallet["wallet_google"] == by_wallet["wallet_apple"]
    google = next(p for p in passes if p.channel == "wallet_google")
    assert google.serial.startswith("3388000000022222222.")  # Google's object id form: <issuer id>.<suffix>
