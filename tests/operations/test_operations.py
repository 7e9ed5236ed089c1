"""Pass operations at the service level, on both backends: each step validates in words, the launch job
issues the Apple and Google passes to the segment in chunks, counts failures by reason, starts one
campaign carrying the add-to-wallet links, and the report and its CSV show what happened.

The shop has Apple Wallet (test certificate chain), Google Wallet (its fake, served), and the
recording message channel sending to a fake provider.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlmodel import select
from tessera_wallet_google.sandbox import create_sandbox_app
from tessera_wallet_google.testkeys import test_service_account

from core.campaigns.models import Campaign
from core.db.base import utcnow
from core.db.engines import control_session
from core.operations import service
from core.operations.audience import estimate
from core.operations.errors import OperationInvalid
from core.operations.models import OperationState, PassOperation
from core.operations.personalization import Binding, expression, pass_fields, save_personalization
from core.operations.report import operation_report, report_csv
from core.passes import library
from core.passes.links import landing_url
from core.passes.models import PassTemplate, WalletPass
from core.plugins import get_host
from core.queue.models import Job, JobStatus
from core.segments.service import create_segment, tenant_scope
from core.tenancy.plugin_settings import save_channel_config, set_enabled
from core.tenancy.tenants import get_tenant
from tests.fakes.provider import FakeProvider, serving_app
from tests.passes.shop import TENANT, Shop, open_shop
from tests.plugins_host.packages import plugin_packages, recording_plugin
from tests.support import RECORDING_CHANNEL, use_recording_channel

__all__ = ["plugin_packages", "recording_plugin"]
GOOGLE = "wallet_google"


def configure_google(api_url: str) -> None:
    """Enable Google Wallet for the shop with the test service account, pointed at its fake."""
    config = {"issuer_id": "3388000000012345", "service_account_json": json.dumps(test_service_account()),
              "origins": ["https://shop.example"], "api_url": api_url}  # fmt: skip
    with control_session() as control:
        tenant = get_tenant(control, TENANT)
        set_enabled(control, tenant, get_host(), GOOGLE, True, sandbox=False)
        save_channel_config(control, tenant, get_host(), GOOGLE, config)
        control.commit()


@pytest.fixture
def both_wallets(
    recording_plugin: Any, installation: Any, provider: FakeProvider
) -> Iterator[tuple[Shop, PassTemplate]]:
    """The shop with Apple and Google Wallet (the same card) and the recording channel."""
    with serving_app(create_sandbox_app()) as google_url:
        for shop in open_shop(installation):
            configure_google(google_url)
            use_recording_channel(TENANT, provider.url)
            google = library.save_template(shop.session, key="club_google", name="Club card (Google)",
                                           channel="wallet_google", design=shop.template.design, by="test")  # fmt: skip
            shop.session.commit()
            yield shop, google


def problems_of(call: Any) -> dict[str, str]:
    """The problems a step refused with, by input."""
    with pytest.raises(OperationInvalid) as refused:
        call()
    return dict(refused.value.problems)


def test_the_bindings_become_personalization_texts() -> None:
    assert (
        expression(Binding("traits.first_name", "text", "Member"))
        == "{{ traits.first_name | default('Member') }}"
    )
    assert expression(Binding("loyalty.balance", "number", "")) == "{{ loyalty.balance | int }}"
    assert expression(Binding("traits.born", "date", "n/a")) == (
        "{{ ((traits.born | string)[:10]) if traits.born is defined else 'n/a' }}"
    )


def test_an_operation_is_built_step_by_step_launched_and_reported(both_wallets) -> None:
    shop, google = both_wallets
    session = shop.session
    consent = {"consent": {RECORDING_CHANNEL: True}}
    ann = shop.customer("ann", nickname="Annie", email="ann@example.com", **consent)
    bob = shop.customer("bob", nickname="Bobby", email="bob@example.com", **consent)
    cid = shop.customer("cid", email="cid@example.com", **consent)  # no nickname: no pass
    segment = create_segment(session, "Everyone", {"all": []}, "test", {})
    session.commit()

    # Step 1: the operation, refused in words, then made.
    found = problems_of(lambda: service.save_basics(session, "mia", "", "", "2026-12-10", "2026-12-01"))
    assert found == {
        "name": "Give the operation a name.",
        "ends_on": "The operation must end after it starts.",
    }
    found = problems_of(lambda: service.save_basics(session, "mia", "Winter", "", "tomorrow", ""))
    assert found["starts_on"] == "“tomorrow” is not a date like 2026-12-01." and "ends_on" in found
    operation = service.save_basics(session, "mia", "Winter club", "Get members to carry the card",
                                    "2026-12-01", "2026-12-31")  # fmt: skip
    assert problems_of(
        lambda: service.save_basics(session, "mia", "Winter club", "", "2026-12-01", "2026-12-31")
    )
    # Step 2: the templates, each of its own wallet.
    assert problems_of(lambda: service.save_templates(session, operation, None, None, "mia")) == {
        "": "Choose a template for at least one wallet."
    }
    found = problems_of(lambda: service.save_templates(session, operation, google.id, None, "mia"))
    assert found == {"apple_template_id": "“Club card (Google)” is not issued in Apple Wallet."}
    service.save_templates(session, operation, shop.template.id, google.id, "mia")
    # Step 3: the member field shows the nickname, without a fallback.
    assert [f.key for f in pass_fields(session, operation)] == ["points", "name", "terms"]
    found = problems_of(
        lambda: save_personalization(session, TENANT, operation, {"name": Binding("os.system")}, "mia")
    )
    assert found == {"bind.name.source": "“os.system” is not a profile value to show."}
    changed = save_personalization(session, TENANT, operation, {"name": Binding("traits.nickname")}, "mia")
    assert len(changed) == 2
    session.commit()
    for template in (shop.template, google):
        session.refresh(template)
        assert template.design["fields"][1]["value"] == "{{ traits.nickname }}"
    # Step 4: the audience and its reach per wallet.
    assert problems_of(lambda: service.save_audience(session, operation, None, "mia")) == {
        "segment_id": "Choose a segment."
    }
    service.save_audience(session, operation, segment.id, "mia")
    with control_session() as control:
        tenant = get_tenant(control, TENANT)
        scope = tenant_scope(control, tenant)
    reach = estimate(session, tenant, scope, operation)
    assert reach.size == 3 and not reach.estimate
    assert [(w.channel, w.checked, w.reachable) for w in reach.wallets] == [
        ("wallet_apple", 3, 2),
        ("wallet_google", 3, 2),
    ], reach
    # Step 5: the distribution.
    enabled = [RECORDING_CHANNEL]
    found = problems_of(
        lambda: service.save_distribution(session, operation, [], False, False, enabled, "mia")
    )
    assert found == {"": "Choose at least one way to bring the pass to customers."}
    found = problems_of(
        lambda: service.save_distribution(session, operation, ["fax"], True, True, enabled, "mia")
    )
    assert found == {"channels": "“fax” is not a message channel enabled for this tenant."}
    service.save_distribution(session, operation, [RECORDING_CHANNEL], True, True, enabled, "mia")
    session.commit()

    # Step 7: launch; the job issues the passes, then starts the campaign.
    service.launch(session, TENANT, operation, "mia")
    session.commit()
    assert problems_of(lambda: service.launch(session, TENANT, operation, "mia"))
    shop.run_jobs()
    session.refresh(operation)
    assert operation.state == OperationState.launched
    passes = session.exec(select(WalletPass)).all()
    assert sorted((p.channel, p.profile_id) for p in passes) == sorted(
        (channel, pid) for channel in ("wallet_apple", "wallet_google") for pid in (ann, bob)
    )
    assert cid not in {p.profile_id for p in passes}
    report = operation_report(session, operation)
    assert report.targeted == 3
    assert report.issued == {"wallet_apple": 2, "wallet_google": 2}
    assert report.failed == {"wallet_apple": 1, "wallet_google": 1}
    assert [n for _, n in report.failures] == [1, 1]
    assert all("nickname" in reason for reason, _ in report.failures), report.failures
    [campaign] = session.exec(select(Campaign)).all()
    assert campaign.segment_id == segment.id and campaign.channel == RECORDING_CHANNEL
    assert "{{ wallet.club_card }}" in str(campaign.content) and "{{ wallet.club_google }}" in str(
        campaign.content
    )
    assert operation.counts["campaigns"] == [{"channel": RECORDING_CHANNEL, "campaign_id": campaign.id}]

    # A customer opens their link: a click on the report, and in the CSV.
    with shop.installation.client() as client:
        assert client.get(urlsplit(landing_url(TENANT, shop.template.id or 0, ann)).path).status_code == 200
    report = operation_report(session, operation)
    assert report.activity["clicked"] == {"wallet_apple": 1}
    assert report.days == [utcnow().date().isoformat()]
    rows = list(csv.DictReader(io.StringIO(report_csv(operation, report))))
    figures = {(r["figure"], r["wallet"], r["day"]): r["count"] for r in rows}
    assert figures[("targeted", "", "")] == "3"
    assert figures[("issued", "Google Wallet", "")] == "2"
    assert figures[("clicked", "Apple Wallet", "")] == "1"
    assert figures[("clicked", "", utcnow().date().isoformat())] == "1"
    assert session.get(PassOperation, operation.id) is not None


def test_a_launch_that_keeps_failing_is_said_and_stops_the_waiting(both_wallets) -> None:
    shop, google = both_wallets
    session = shop.session
    segment = create_segment(session, "Everyone", {"all": []}, "test", {})
    operation = service.save_basics(session, "mia", "Spring", "", "2026-12-01", "2026-12-31")
    service.save_templates(session, operation, shop.template.id, google.id, "mia")
    service.save_audience(session, operation, segment.id, "mia")
    service.save_distribution(session, operation, [], True, False, [], "mia")
    service.launch(session, TENANT, operation, "mia")
    session.commit()
    job = session.exec(select(Job).where(Job.idempotency_key == service.launch_job_key(operation))).one()

    job.attempts, job.last_error = 1, "Traceback...\nOperationalError: the database went away"
    session.add(job)
    session.commit()
    retrying = operation_report(session, operation)
    assert retrying.launch_problem == (
        "The launch is being retried (attempt 1 of 8): OperationalError: the database went away"
    )
    assert not retrying.launch_stopped

    job.status, job.attempts = JobStatus.failed, 8
    session.add(job)
    session.commit()
    stopped = operation_report(session, operation)
    assert stopped.launch_stopped and stopped.launch_problem is not None
    assert stopped.launch_problem.startswith("The launch stopped after 8 attempts: OperationalError")
