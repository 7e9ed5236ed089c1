"""Template sync (paging, auth failures), validate (window, approval), the job, the panel, wallet links."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tessera_whatsapp import templates
from tessera_whatsapp.bodies import WhatsAppTemplate
from tessera_whatsapp.channel import WhatsAppChannel
from tessera_whatsapp.sandbox import SANDBOX_TOKEN, FakeTemplate, FakeWhatsApp
from test_whatsapp_sending import context, message
from whatsapp_stores import MemoryStore

from core.plugin_api import ChannelContext, DeliveryStatus, Problem, ProfileSnapshot

Fake = tuple[FakeWhatsApp, str]
Stores = dict[str, MemoryStore]
PUBLIC = "https://tessera.example"
WALLET_LINK = f"{PUBLIC}/w/t/club_card/5f2c9a"
TRACKED_LINK = f"{PUBLIC}/l/t/2s-0-Qm9vbXRvd24h"
CLUB = FakeTemplate("club_welcome", "en_US", body_params=1, body_text="Welcome! Your card: {{1}}",
                    buttons=[{"type": "URL", "text": "Add to wallet", "url": f"{PUBLIC}/{{{{1}}}}"},
                             {"type": "URL", "text": "Shop", "url": "https://shop.example/{{1}}"}])  # fmt: skip


def validate(
    ctx: ChannelContext, fields: dict[str, Any], last_inbound: datetime | None = None
) -> list[Problem]:
    """The channel's problems with these template fields for a profile who last wrote at ``last_inbound``."""
    profile = ProfileSnapshot(id="p", last_inbound_at=last_inbound)
    return WhatsAppChannel().validate(ctx, WhatsAppTemplate.model_validate(fields), profile)


def test_free_form_outside_the_window_is_suppressed(fake: Fake) -> None:
    """Text and media without a message from the customer in the last 24 h: suppressed, outside_window."""
    ctx, now = context(fake[1]), datetime.now(UTC)
    for fields in [{"kind": "text", "text": "Hi"}, {"kind": "image", "media_url": "https://x/a.jpg"}]:
        for last in [None, now - timedelta(hours=24, minutes=1)]:
            (problem,) = validate(ctx, fields, last)
            assert (problem.suppress, problem.reason_code) == (True, "outside_window")
            assert "24-hour" in problem.message
        assert validate(ctx, fields, now - timedelta(hours=23)) == []
    assert fake[0].template_pages_served == 0  # free-form needs no template list


def test_approved_templates_pass_others_are_refused_with_the_status(fake: Fake) -> None:
    """Templates may go outside the window when approved; paused or unknown ones are refused (not suppressed)."""
    ctx = context(fake[1])
    assert validate(ctx, {"template_name": "order_update", "body_parameters": ["Ann", "A-1"]}) == []
    (paused,) = validate(ctx, {"template_name": "spring_sale"})
    assert not paused.suppress and paused.field == "template_name"
    assert "PAUSED" in paused.message and "hello_world (en_US)" in paused.message
    (unknown,) = validate(ctx, {"template_name": "hello_world", "language": "fr"})
    assert "does not exist" in unknown.message and "order_update (en_US)" in unknown.message


def test_parameters_are_checked_against_the_synced_template(fake: Fake) -> None:
    """One body parameter per {{n}} of the approved body, the header's {{1}} filled: said before the send,
    by field, where Meta would refuse the message (132000)."""
    state, url = fake
    state.templates.append(
        FakeTemplate("shipped", "en_US", body_params=2, body_text="Hi {{1}}, {{2}} and {{1}}.")
    )
    state.templates[-1].components = lambda: [  # type: ignore[method-assign]
        {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"},
        {"type": "BODY", "text": "Hi {{1}}, {{2}} and {{1}}."},
    ]
    ctx = context(url)
    problems = {
        p.field: p.message for p in validate(ctx, {"template_name": "shipped", "body_parameters": ["Ann"]})
    }
    assert problems == {
        "body_parameters": "Template 'shipped' in en_US takes 2 body parameter(s), one per line; 1 given.",
        "header_text": "Template 'shipped' has a header parameter ({{1}}): fill it in.",
    }
    fine = {"template_name": "shipped", "body_parameters": ["Ann", "A-1"], "header_text": "A-1"}
    assert validate(ctx, fine) == []
    (fixed,) = validate(
        ctx, {"template_name": "order_update", "body_parameters": ["Ann", "A-1"], "header_text": "x"}
    )
    assert (
        fixed.field == "header_text" and "no header parameter: leave the header text empty" in fixed.message
    )


def test_sync_follows_paging_and_stores_everything(
    fake: Fake, isolated: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six templates, two a page: three pages read, all stored with components and the sync time."""
    state, url = fake
    state.templates += [CLUB, FakeTemplate("a_b", "fr"), FakeTemplate("c_d", "de", status="REJECTED")]
    monkeypatch.setattr(templates, "PAGE_SIZE", 2)
    record = templates.sync_templates(context(url))
    assert state.template_pages_served == 3
    assert isolated["t"].get("templates") == record and record["error"] is None
    assert [(t["name"], t["language"], t["status"]) for t in record["templates"]] == [
        (t.name, t.language, t.status) for t in state.templates
    ]
    club = templates.find(record, "club_welcome", "en_US")
    assert club is not None and club["category"] == "UTILITY" and club["components"] == CLUB.components()
    assert datetime.fromisoformat(record["synced_at"]) > datetime.now(UTC) - timedelta(seconds=5)


def test_expired_token_keeps_the_previous_list_and_a_clear_error(fake: Fake) -> None:
    """Code 190 (expired): the old list and sync time stay, the error says to renew the token."""
    state, url = fake
    first = templates.sync_templates(context(url))
    state.expired_tokens.add(SANDBOX_TOKEN)
    failed = templates.sync_templates(context(url))
    assert failed["templates"] == first["templates"] and failed["synced_at"] == first["synced_at"]
    assert "code 190" in failed["error"] and "Renew the access token" in failed["error"]
    assert failed["checked_at"] >= first["checked_at"]
    assert validate(context(url), {"template_name": "hello_world"}) == []  # the kept list still serves


def test_sync_errors_without_a_list_leave_the_check_to_meta(fake: Fake, isolated: Stores) -> None:
    """Never synced (unknown account, unreachable Meta): nothing to check against, so nothing is refused
    here (the send meets Meta's own answer); the error is kept for the settings panel."""
    state, url = fake
    ctx = context(url, business_account_id="999")
    assert validate(ctx, {"template_name": "hello_world"}) == []
    assert "code 100" in isolated["t"].get("templates")["error"]
    unreachable = templates.sync_templates(context("http://127.0.0.1:9"))
    assert "templates" not in unreachable and "could not be reached" in unreachable["error"]


def test_validate_syncs_when_stale_and_caches_in_process(fake: Fake, isolated: Stores) -> None:
    """First use syncs; then the in-process copy serves; a record older than 15 min is synced again."""
    state, url = fake
    ctx = context(url)
    validate(ctx, {"template_name": "hello_world"})
    validate(ctx, {"template_name": "hello_world"})
    assert state.template_pages_served == 1
    templates.forget_cache()
    validate(ctx, {"template_name": "hello_world"})  # fresh in the store: read, not fetched
    assert state.template_pages_served == 1
    record = isolated["t"].get("templates")
    record["checked_at"] = (datetime.now(UTC) - timedelta(minutes=16)).isoformat()
    templates.forget_cache()
    validate(ctx, {"template_name": "hello_world"})
    assert state.template_pages_served == 2


def test_the_job_syncs_configured_tenants(
    fake: Fake, isolated: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The periodic job reads the tenant's channel context from the core; unconfigured, it does nothing."""
    state, url = fake
    unconfigured = ChannelContext(
        tenant="t", config=None, sandbox=True, sandbox_url=url, public_url="http://x"
    )
    monkeypatch.setattr(templates, "context_for", lambda tenant: unconfigured)
    templates.sync_job("t", {})
    assert state.template_pages_served == 0 and "t" not in isolated
    monkeypatch.setattr(templates, "context_for", lambda tenant: context(url))
    templates.sync_job("t", {})
    assert state.template_pages_served == 1 and isolated["t"].get("templates")["error"] is None


def test_settings_panel_lists_templates_escaped(fake: Fake) -> None:
    """Name, language, category, status and body of each template, the sync time, and errors, escaped."""
    state, url = fake
    assert "No templates synced yet" in templates.render_panel("t", {})
    state.templates.append(FakeTemplate("evil", "en_US", body_text="<script>alert('x')</script> & co"))
    record = templates.sync_templates(context(url))
    page = templates.render_panel("t", {})
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in page
    assert "Hi {{1}}, order {{2}} has shipped." in page and "PAUSED" in page and "MARKETING" in page
    assert record["synced_at"] in page
    state.expired_tokens.add(SANDBOX_TOKEN)
    templates.sync_templates(context(url))
    assert "Last sync failed" in templates.render_panel("t", {}) and "spring_sale" in templates.render_panel(
        "t", {}
    )


def test_the_editors_are_offered_the_approved_templates_of_the_last_sync(fake: Fake) -> None:
    """Names with their languages, category and body, and the languages; never a paused or rejected one."""
    state, url = fake
    ctx = context(url)
    assert WhatsAppChannel().suggestions(ctx) == {}  # nothing synced yet: nothing offered, Meta not called
    assert state.template_pages_served == 0
    state.templates += [FakeTemplate("order_update", "fr"), FakeTemplate("c_d", "de", status="REJECTED")]
    templates.sync_templates(ctx)
    offered = WhatsAppChannel().suggestions(ctx)
    names = {s.value: s.label for s in offered["template_name"]}
    approved = sorted({t.name for t in state.templates if t.status == "APPROVED"})
    assert sorted(names) == approved and "spring_sale" not in names and "c_d" not in names
    assert names["order_update"] == "en_US, fr · UTILITY · Hi {{1}}, order {{2}} has shipped."
    assert [s.value for s in offered["language"]] == ["en_US", "fr"]


@pytest.mark.parametrize(
    ("button", "sent"),
    [
        (f"url:{WALLET_LINK}", "w/t/club_card/5f2c9a"),  # the wallet link: only the suffix after the base
        (f"url:{TRACKED_LINK}", "l/t/2s-0-Qm9vbXRvd24h"),  # already a tracked link on the same public URL
        ("url:https://elsewhere.example/x", "https://elsewhere.example/x"),  # not the base: as given
        ("url:club/5f2c9a", "club/5f2c9a"),  # a plain suffix: as given
    ],
)
def test_wallet_link_in_a_url_button(fake: Fake, button: str, sent: str) -> None:
    """A URL button given a full URL sends only what follows the approved ``<base>{{1}}``."""
    state, url = fake
    state.templates.append(CLUB)
    fields = {"template_name": "club_welcome", "body_parameters": WALLET_LINK,
              "button_parameters": f"{button}\nurl:https://shop.example/sale"}  # fmt: skip
    assert validate(context(url), fields) == []
    (result,) = WhatsAppChannel().deliver(context(url), [message(fields)])
    assert result.status == DeliveryStatus.sent
    components = state.sent[-1]["body"]["template"]["components"]
    assert components[0] == {"type": "body", "parameters": [{"type": "text", "text": WALLET_LINK}]}
    assert [c["parameters"][0]["text"] for c in components[1:]] == [sent, "sale"]
    assert [c["index"] for c in components[1:]] == ["0", "1"]
