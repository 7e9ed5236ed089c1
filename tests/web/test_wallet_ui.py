"""The Wallet pages through the real forms (CSRF, roles, HTMX): the template library, the template editor
with its live preview, stores, images, issued passes and the validation report.

A shop with Apple Wallet (the test certificate chain), a loyalty program and two customers: Ann, French,
with 120 points, and Bob, who has no first name. Mia the marketer designs a loyalty card; Ana the
analyst sees everything and changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from typing import Any

import pytest
from sqlmodel import select
from tessera_wallet_apple.channel import AppleWalletChannel

from core.db.engines import control_session
from core.passes.design import PassDesign
from core.passes.issuing import issue
from core.passes.models import PassImage, PassRefresh, PassTemplate, Store
from core.passes.wallets import wallet_for
from core.plugin_api import ChannelNotImplemented
from core.tenancy.tenants import get_tenant
from tests.support import login
from tests.web.wallet_shop import BASE, CHANNEL, TENANT, WalletShop, audited, open_wallet_shop, png

HTMX = {"HX-Request": "true"}
Pairs = list[tuple[str, str]]
Form = dict[str, list[str]]


@pytest.fixture
def shop(installation: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[WalletShop]:
    """The shop on each backend, Mia signed in."""
    yield from open_wallet_shop(installation, monkeypatch)


@pytest.fixture
def sqlite_shop(sqlite_installation: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[WalletShop]:
    """The shop on SQLite only (for what does not depend on the database)."""
    yield from open_wallet_shop(sqlite_installation, monkeypatch)


CARD_FIELDS = [
    {"key": "points", "area": "primary", "label": "Points", "value": "{{ loyalty.balance }}",
     "change_message": "You now have %@ points", "numeric": "on", "role": "points"},
    {"key": "name", "area": "secondary", "label": "Member", "value": "{{ traits.first_name }}", "role": "member"},
    {"key": "terms", "area": "back", "label": "Terms", "value": "Points never expire", "link": "https://shop.example/t"},
]  # fmt: skip


def editor_form(
    shop: WalletShop, fields: list[dict[str, str]] | None = None, *extra: tuple[str, str], **values: str
) -> Form:
    """The editor as a browser posts it: a loyalty card with the shop's icon, fields in page order, French texts.

    ``extra`` adds inputs (an ``action``, a ticked store); ``values`` replaces inputs by name.
    """
    pairs: Pairs = [("csrf_token", shop.csrf)]
    top = {
        "name": "Club card", "key": "club_card", "style": "storeCard", "organization_name": "Tessera Shop",
        "description": "Tessera Club card", "logo_text": "Club", "language": "en",
        "foreground_color": "#ffffff", "background_color": "#183060", "label_color": "#000000",
        "label_color.default": "on", "barcode.format": "qr", "barcode.message": "{{ wallet.serial }}",
        "barcode.alt_text": "", "nfc_message": "", "nfc_public_key": "", "relevant_date": "", "expiration_date": "",
        "images.icon": str(shop.icon_id), "images.logo": "", "images.strip": "", "images.thumbnail": "",
        "tr_language": "fr", "tr.fr.field.points.label": "Points fidélité", "tr.fr.field.name.label": "Membre",
        "preview_profile": "", "preview_language": "",
    }  # fmt: skip
    top.update(values)
    pairs += list(top.items())
    for i, card in enumerate(CARD_FIELDS if fields is None else fields):
        pairs += [(f"field.{i}.{name}", value) for name, value in card.items()]
    form: Form = {}
    for name, value in [*pairs, *extra]:
        form.setdefault(name, []).append(value)
    return form


def errors_for(html: str, key: str) -> list[str]:
    """The problems shown next to one input."""
    return [unescape(m) for m in re.findall(rf'data-for="{re.escape(key)}">([^<]*)<', html)]


# --- the library ---------------------------------------------------------------------------------------
def test_the_placeholder_is_gone_and_the_library_lists_the_templates(shop: WalletShop) -> None:
    page = shop.client.get(BASE)
    assert page.status_code == 200
    assert "Apple Wallet and Google Wallet passes: templates, issued passes" not in page.text
    assert f'<a href="{BASE}" aria-current="page">Wallet</a>' in page.text
    assert "No pass template yet." in page.text and f'href="{BASE}/templates/new"' in page.text

    template_id = shop.create_template()

    listed = shop.client.get(BASE).text
    row = re.search(rf'<tr data-template="{template_id}">(.*?)</tr>', listed, re.S)
    assert row, listed
    assert f'href="{BASE}/templates/{template_id}">Club card</a>' in row.group(1)
    assert "<td>Apple Wallet</td>" in row.group(1) and "<td>storeCard</td>" in row.group(1)
    assert 'data-figure="issued">0<' in row.group(1)


def test_a_template_is_created_with_a_wallet_name_and_key_and_audited(shop: WalletShop) -> None:
    form = shop.client.get(f"{BASE}/templates/new")
    assert form.status_code == 200
    assert f'name="channel" value="{CHANNEL}" checked' in form.text and "Apple Wallet" in form.text

    template_id = shop.create_template(name="Coffee Club", key="")  # a blank key is made from the name

    template = shop.template(template_id)
    assert (template.key, template.name, template.channel) == ("coffee_club", "Coffee Club", CHANNEL)
    design = PassDesign.model_validate(template.design)
    assert design.organization_name == "Shop" or design.organization_name  # the tenant's name to start with
    (entry,) = audited("passes.template.create")
    assert entry.actor == "mia@shop.test" and entry.target == f"pass template {template_id}"

    taken = shop.client.post(f"{BASE}/templates/new", data={"csrf_token": shop.csrf, "channel": CHANNEL,
                                                            "name": "Again", "key": "coffee_club"})  # fmt: skip
    assert taken.status_code == 422
    assert errors_for(taken.text, "key") == ["'coffee_club' is already used by template 'Coffee Club'"]
    unknown = shop.client.post(f"{BASE}/templates/new", data={"csrf_token": shop.csrf, "channel": "wallet_nokia",
                                                              "name": "Nokia", "key": "nokia"})  # fmt: skip
    assert errors_for(unknown.text, "channel") == ["'wallet_nokia' is not an installed wallet"]


# --- the editor -----------------------------------------------------------------------------------------
def test_the_editor_shows_the_areas_the_value_picker_and_a_live_preview(shop: WalletShop) -> None:
    template_id = shop.create_template()
    page = shop.client.get(f"{BASE}/templates/{template_id}")

    assert page.status_code == 200
    for area in ("header", "primary", "secondary", "auxiliary", "back"):
        assert f'class="pass-dropzone" data-area="{area}"' in page.text
    assert 'hx-post="' + f"{BASE}/templates/{template_id}/preview" + '"' in page.text
    assert 'hx-trigger="input changed delay:400ms' in page.text
    assert "/static/wallet_editor.js" in page.text
    # the picker offers traits, computed traits, loyalty fields and the pass serial
    for value in ("{{ traits.first_name }}", "{{ computed.predicted_clv }}", "{{ loyalty.balance }}",
                  "{{ loyalty.club.tier }}", "{{ wallet.serial }}"):  # fmt: skip
        assert f'<option value="{value}">' in page.text, value
    # the starter design's cards, each with a "move to" select for keyboards
    assert (
        'name="field.0.key" value="member"' in page.text
        and 'name="field.0.area" class="move-to"' in page.text
    )
    assert 'id="pass-preview"' in page.text


def test_a_template_is_designed_and_saved_through_the_editor(shop: WalletShop) -> None:
    template_id = shop.create_template()
    url = f"{BASE}/templates/{template_id}"

    answer = shop.client.post(url, data=editor_form(shop), follow_redirects=False)

    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"{url}?saved=1"
    design = PassDesign.model_validate(shop.template(template_id).design)
    assert [(f.key, f.area) for f in design.fields] == [
        ("points", "primary"),
        ("name", "secondary"),
        ("terms", "back"),
    ]
    points = design.fields[0]
    assert (points.value, points.change_message, points.numeric, points.role) == (
        "{{ loyalty.balance }}", "You now have %@ points", True, "points",
    )  # fmt: skip
    assert design.foreground_color == "rgb(255, 255, 255)" and design.background_color == "rgb(24, 48, 96)"
    assert design.label_color is None  # "the wallet's default" was ticked
    assert design.barcode is not None and design.barcode.message == "{{ wallet.serial }}"
    assert design.translations == {
        "fr": {"field.points.label": "Points fidélité", "field.name.label": "Membre"}
    }
    (entry,) = audited("passes.template.update")
    assert entry.actor == "mia@shop.test" and entry.detail["key"] == "club_card"

    page = shop.client.get(answer.headers["location"]).text
    assert 'id="saved"' in page
    assert 'name="background_color" value="#183060"' in page
    assert 'name="tr.fr.field.points.label" value="Points fidélité"' in page


def test_fields_are_saved_in_the_order_and_area_they_are_posted(shop: WalletShop) -> None:
    template_id = shop.create_template()
    moved = [dict(CARD_FIELDS[2], area="secondary"), CARD_FIELDS[0], CARD_FIELDS[1]]  # terms dragged first

    answer = shop.client.post(f"{BASE}/templates/{template_id}", data=editor_form(shop, moved),
                              follow_redirects=False)  # fmt: skip

    assert answer.status_code == 303, answer.text
    design = PassDesign.model_validate(shop.template(template_id).design)
    assert [(f.key, f.area) for f in design.fields] == [("terms", "secondary"), ("points", "primary"),
                                                        ("name", "secondary")]  # fmt: skip


def test_a_bad_colour_and_a_missing_value_are_shown_next_to_their_inputs(shop: WalletShop) -> None:
    template_id = shop.create_template()
    before = shop.template(template_id).design
    fields = [dict(CARD_FIELDS[0], value=""), CARD_FIELDS[1], dict(CARD_FIELDS[2], change_message="Updated")]

    answer = shop.client.post(f"{BASE}/templates/{template_id}",
                              data=editor_form(shop, fields, background_color="navy blue"))  # fmt: skip

    assert answer.status_code == 422
    assert errors_for(answer.text, "background_color") == [
        "“navy blue” is not a colour: pick one, or type it like #1a2b3c."
    ]
    assert errors_for(answer.text, "field.0.value") == [
        "A field needs a value: type it, or pick a value to show."
    ]
    assert errors_for(answer.text, "field.2.change_message") == [
        "a change message must contain %@ where the new value goes"
    ]
    assert 'name="field.1.value" value="{{ traits.first_name }}"' in answer.text  # what was typed is kept
    assert shop.template(template_id).design == before
    assert audited("passes.template.update") == []


def test_an_unknown_image_and_a_template_mistake_are_shown_next_to_their_inputs(shop: WalletShop) -> None:
    template_id = shop.create_template()
    fields = [CARD_FIELDS[0], dict(CARD_FIELDS[1], value="{{ traits.first_name }"), CARD_FIELDS[2]]

    answer = shop.client.post(f"{BASE}/templates/{template_id}",
                              data=editor_form(shop, fields, **{"images.logo": "9999"}))  # fmt: skip

    assert answer.status_code == 422
    assert errors_for(answer.text, "images.logo") == ["image 9999 does not exist"]
    assert '<option value="9999" selected>image 9999 (not found)</option>' in answer.text
    assert errors_for(answer.text, "field.1.value"), answer.text  # the syntax error, by its input

    unknown = shop.client.post(f"{BASE}/templates/{template_id}",
                               data=editor_form(shop, [dict(CARD_FIELDS[0], value="{{ basket.total }}")]))  # fmt: skip
    assert unknown.status_code == 422
    (message,) = errors_for(unknown.text, "field.0.value")
    assert message.startswith("unknown variable(s) basket")


def test_adding_a_field_and_a_language_redraws_the_inputs_keeping_what_was_typed(shop: WalletShop) -> None:
    template_id = shop.create_template()
    url = f"{BASE}/templates/{template_id}/editor"
    form = editor_form(shop, logo_text="Typed, not saved")

    added = shop.client.post(url, data={**form, "action": ["field-add:header"]}, headers=HTMX)
    assert added.status_code == 200
    assert added.text.lstrip().startswith('<div id="pass-editor-fields"')
    assert 'name="field.3.key" value="field4"' in added.text
    assert re.search(r'name="field\.3\.area" class="move-to"[^>]*>\s*(<option[^>]*>[^<]*</option>\s*)*?'
                     r'<option value="header" selected>', added.text)  # fmt: skip
    assert 'value="Typed, not saved"' in added.text

    german = shop.client.post(
        url, data={**form, "action": ["language-add"], "new_language": ["de"]}, headers=HTMX
    )
    assert 'name="tr_language" value="de"' in german.text and 'name="tr_language" value="fr"' in german.text
    assert 'name="tr.de.field.points.label" value=""' in german.text and 'placeholder="Points"' in german.text

    refused = shop.client.post(url, data={**form, "action": ["language-add"], "new_language": ["klingon"]},
                               headers=HTMX)  # fmt: skip
    assert refused.status_code == 422
    assert errors_for(refused.text, "new_language") == [
        "“klingon” is not a language code such as fr or pt_BR."
    ]
    removed = shop.client.post(url, data={**form, "action": ["field-remove:0"]}, headers=HTMX)
    assert re.search(r'name="field\.\d+\.key" value="points"', removed.text) is None
    assert 'name="field.0.key" value="name"' in removed.text

    # Without JavaScript the same buttons submit the whole form: the page comes back reshaped, unsaved.
    before = shop.template(template_id).design
    page = shop.client.post(f"{BASE}/templates/{template_id}", data={**form, "action": ["beacon-add"]})
    assert page.status_code == 200 and "<h1>Club card" in page.text
    assert 'name="beacon.0.proximity_uuid" value=""' in page.text and 'value="Typed, not saved"' in page.text
    assert shop.template(template_id).design == before


def test_the_preview_draws_the_unsaved_pass_for_a_profile_in_french(shop: WalletShop) -> None:
    template_id = shop.create_template()
    before = shop.template(template_id).design
    data = editor_form(shop, preview_profile="ann@example.com", preview_language="fr")

    answer = shop.client.post(f"{BASE}/templates/{template_id}/preview", data=data, headers=HTMX)

    assert answer.status_code == 200, answer.text
    assert f'data-profile="{shop.people["ann"]}" data-language="fr"' in answer.text
    assert '<option value="fr" selected>fr</option>' in answer.text
    frame = re.search(r'<iframe class="pass-frame"[^>]*srcdoc="([^"]*)"', answer.text)
    assert frame, answer.text
    drawn = unescape(frame.group(1)).casefold()  # Wallet shows labels in capitals
    assert "points fidélité" in drawn and "membre" in drawn and "ann" in drawn and "120" in drawn
    assert 'sandbox="allow-same-origin"' in answer.text  # the wallet's HTML runs no script
    assert shop.template(template_id).design == before  # nothing is saved


def test_the_preview_lists_why_a_profile_would_not_get_the_pass(shop: WalletShop) -> None:
    template_id = shop.create_template()
    data = editor_form(shop, preview_profile=shop.people["bob"])

    answer = shop.client.post(f"{BASE}/templates/{template_id}/preview", data=data, headers=HTMX)

    assert answer.status_code == 422
    assert 'id="preview-problems"' in answer.text and "This profile would not get the pass" in answer.text
    assert (
        "<strong>Field “Member”: value</strong>: traits.first_name has no value for this profile"
        in unescape(answer.text)
    )

    broken = shop.client.post(f"{BASE}/templates/{template_id}/preview", headers=HTMX,
                              data=editor_form(shop, background_color="red-ish"))  # fmt: skip
    assert broken.status_code == 422
    assert "The pass cannot be drawn yet" in broken.text and "Background colour" in broken.text


def test_a_wallet_that_cannot_draw_passes_yet_says_so_and_the_texts_show(
    sqlite_shop: WalletShop, monkeypatch: pytest.MonkeyPatch
) -> None:
    def not_yet(self: AppleWalletChannel, rendered: Any, language: str) -> Any:
        raise ChannelNotImplemented(CHANNEL, "preview passes")

    monkeypatch.setattr(AppleWalletChannel, "preview_pass", not_yet)
    template_id = sqlite_shop.create_template()
    data = editor_form(sqlite_shop, preview_profile="ann")

    answer = sqlite_shop.client.post(f"{BASE}/templates/{template_id}/preview", data=data, headers=HTMX)

    assert answer.status_code == 200
    assert "No preview: Channel &#39;wallet_apple&#39; cannot preview passes yet" in answer.text
    assert "<dd>120</dd>" in answer.text and "<dd>Ann</dd>" in answer.text  # the texts instead
    png_answer = sqlite_shop.client.get(f"{BASE}/templates/{template_id}/preview.png?profile=ann")
    assert png_answer.status_code == 422 and "cannot preview passes yet" in png_answer.text


# --- roles ------------------------------------------------------------------------------------------------
def test_an_analyst_sees_the_wallet_but_cannot_change_it(shop: WalletShop) -> None:
    template_id = shop.create_template()
    shop.client.post(f"{BASE}/templates/{template_id}", data=editor_form(shop))
    shop.client.cookies.clear()
    login(shop.client, "ana@shop.test")
    csrf = shop.csrf

    library = shop.client.get(BASE)
    assert library.status_code == 200 and "New template" not in library.text
    assert f'href="{BASE}/templates/{template_id}/passes">Club card</a>' in library.text
    for page in ("/passes", "/report", "/report?source=recent"):
        assert shop.client.get(f"{BASE}/templates/{template_id}{page}").status_code == 200, page
    assert shop.client.get(f"{BASE}/stores").status_code == 200
    assert shop.client.get(f"{BASE}/images").status_code == 200

    assert shop.client.get(f"{BASE}/templates/{template_id}").status_code == 403
    assert shop.client.get(f"{BASE}/templates/new").status_code == 403
    refused = [
        shop.client.post(f"{BASE}/templates/{template_id}", data=editor_form(shop, name="Hacked")),
        shop.client.post(f"{BASE}/templates/{template_id}/preview", data=editor_form(shop), headers=HTMX),
        shop.client.post(f"{BASE}/templates/{template_id}/editor", data=editor_form(shop), headers=HTMX),
        shop.client.post(f"{BASE}/templates/new", data={"csrf_token": csrf, "channel": CHANNEL, "name": "X"}),
        shop.client.post(f"{BASE}/stores", data={"csrf_token": csrf, "name": "X", "latitude": "1", "longitude": "1"}),
        shop.client.post(f"{BASE}/images", data={"csrf_token": csrf, "kind": "logo"},
                         files={"file": ("logo.png", png(), "image/png")}),
    ]  # fmt: skip
    assert [answer.status_code for answer in refused] == [403] * len(refused)
    assert shop.template(template_id).name == "Club card"


# --- images -----------------------------------------------------------------------------------------------
def test_an_upload_that_is_not_an_image_is_refused_with_a_clear_message(shop: WalletShop) -> None:
    answer = shop.client.post(f"{BASE}/images", data={"csrf_token": shop.csrf, "kind": "logo"},
                              files={"file": ("logo.png", b"%PDF-1.4 not a picture", "image/png")})  # fmt: skip

    assert answer.status_code == 422
    assert errors_for(answer.text, "file") == ["The file is not an image Tessera can read (use PNG or JPEG)."]
    with shop.session() as session:
        assert session.exec(select(PassImage).where(PassImage.kind == "logo")).all() == []

    template_id = shop.create_template()
    in_editor = shop.client.post(f"{BASE}/images", headers=HTMX,
                                 data=editor_form(shop, None, ("upload", "strip")),
                                 files={"upload_file.strip": ("strip.png", b"", "image/png")})  # fmt: skip
    assert in_editor.status_code == 422 and in_editor.text.lstrip().startswith(
        '<section class="card" id="pass-images">'
    )
    assert errors_for(in_editor.text, "images.strip") == ["The file is empty."]
    assert template_id


def test_an_image_uploaded_in_the_editor_is_chosen_and_audited(shop: WalletShop) -> None:
    shop.create_template()
    answer = shop.client.post(f"{BASE}/images", headers=HTMX, data=editor_form(shop, None, ("upload", "logo")),
                              files={"upload_file.logo": ("brand.png", png(120, 40), "image/png")})  # fmt: skip

    assert answer.status_code == 200, answer.text
    with shop.session() as session:
        (image,) = session.exec(select(PassImage).where(PassImage.kind == "logo")).all()
    assert (image.kind, image.filename, image.width, image.height) == ("logo", "brand.png", 120, 40)
    assert f'<option value="{image.id}" selected>brand.png (#{image.id})</option>' in answer.text
    assert f'src="{BASE}/images/{image.id}.png"' in answer.text
    served = shop.client.get(f"{BASE}/images/{image.id}.png")
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    (entry,) = audited("passes.image.upload")
    assert entry.target == f"pass image {image.id}" and entry.detail["kind"] == "logo"


# --- stores -----------------------------------------------------------------------------------------------
def test_stores_are_added_listed_and_offered_to_templates(shop: WalletShop) -> None:
    store = {"csrf_token": shop.csrf, "name": "Paris Opéra", "address": "12 rue Auber, Paris",
             "latitude": "48.8719", "longitude": "2,3316", "relevant_text": "Your card is ready"}  # fmt: skip
    answer = shop.client.post(f"{BASE}/stores", data=store, follow_redirects=False)
    assert answer.status_code == 303, answer.text

    page = shop.client.get(f"{BASE}/stores").text
    assert "<td>Paris Opéra</td>" in page and "48.8719" in page and "2.3316" in page
    with shop.session() as session:
        (saved,) = session.exec(select(Store)).all()
    (entry,) = audited("passes.store.create")
    assert entry.target == f"store {saved.id}"

    again = shop.client.post(f"{BASE}/stores", data=store)
    assert again.status_code == 422 and errors_for(again.text, "name") == [
        "There is already a store named 'Paris Opéra'."
    ]
    wrong = shop.client.post(
        f"{BASE}/stores", data={**store, "name": "Lyon", "latitude": "91", "longitude": "east"}
    )
    assert errors_for(wrong.text, "latitude") == ["Between -90 and 90."]
    assert errors_for(wrong.text, "longitude") == ["A number of degrees, -180 to 180 (e.g. 48.8566)."]

    template_id = shop.create_template()
    editor = shop.client.get(f"{BASE}/templates/{template_id}").text
    assert f'name="store_ids" value="{saved.id}"> Paris Opéra' in editor
    saved_answer = shop.client.post(f"{BASE}/templates/{template_id}",
                                    data=editor_form(shop, None, ("store_ids", str(saved.id))), follow_redirects=False)  # fmt: skip
    assert saved_answer.status_code == 303
    assert shop.template(template_id).design["store_ids"] == [saved.id]


# --- issued passes, the validation report, the PNG ---------------------------------------------------------
def test_issued_passes_are_listed_with_their_profile_state_and_devices(shop: WalletShop) -> None:
    template_id = shop.create_template()
    shop.client.post(f"{BASE}/templates/{template_id}", data=editor_form(shop))
    with control_session() as control:
        tenant = get_tenant(control, TENANT)
    with shop.session() as session:
        template = session.get(PassTemplate, template_id)
        assert template is not None
        outcome = issue(session, wallet_for(tenant, CHANNEL), template, [shop.people["ann"]])[
            shop.people["ann"]
        ]
        assert not isinstance(outcome, list), outcome
        session.commit()
        serial = outcome.wallet_pass.serial

    page = shop.client.get(f"{BASE}/templates/{template_id}/passes")

    assert page.status_code == 200
    row = re.search(rf'<tr data-serial="{serial}">(.*?)</tr>', page.text, re.S)
    assert row, page.text
    assert f'href="/t/{TENANT}/profiles/{shop.people["ann"]}">Ann Martin</a>' in row.group(1)
    assert ">active</span>" in row.group(1) and 'data-figure="devices">0<' in row.group(1)
    assert 'data-figure="issued">1<' in shop.client.get(BASE).text

    # A new design reaches the passes already issued: their holders are marked for re-issue.
    shop.client.post(f"{BASE}/templates/{template_id}", data=editor_form(shop, logo_text="Club+"))
    with shop.session() as session:
        assert [row.profile_id for row in session.exec(select(PassRefresh))] == [shop.people["ann"]]
    assert audited("passes.template.update")[-1].detail["passes_refreshed"] == 1


def test_the_validation_report_lists_who_would_not_get_the_pass_and_why(shop: WalletShop) -> None:
    template_id = shop.create_template()
    shop.client.post(f"{BASE}/templates/{template_id}", data=editor_form(shop))
    url = f"{BASE}/templates/{template_id}/report"

    choices = shop.client.get(url).text
    assert (
        '<option value="recent">' in choices
        and f'<option value="{shop.segment_id}">Segment: No first name' in choices
    )

    recent = shop.client.get(url, params={"source": "recent"}).text
    assert re.search(r'Of <strong>2</strong> profiles.*?data-failing="1"', recent, re.S), recent
    assert (
        f'<tr data-profile="{shop.people["bob"]}">' in recent
        and f'data-profile="{shop.people["ann"]}"' not in recent
    )
    assert "Field “Member”: value</strong>: traits.first_name has no value for this profile" in unescape(
        recent
    )

    segment = shop.client.get(url, params={"source": str(shop.segment_id)}).text
    assert re.search(r"Of <strong>1</strong> profiles \(Segment: No first name\)", segment), segment


def test_the_preview_as_png_is_the_wallets_snapshot_of_the_saved_template(shop: WalletShop) -> None:
    template_id = shop.create_template()
    shop.client.post(f"{BASE}/templates/{template_id}", data=editor_form(shop))

    answer = shop.client.get(
        f"{BASE}/templates/{template_id}/preview.png", params={"profile": "ann", "language": "fr"}
    )

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/png" and answer.content.startswith(b"\x89PNG")
    bob = shop.client.get(f"{BASE}/templates/{template_id}/preview.png", params={"profile": "bob"})
    assert bob.status_code == 422 and "cannot get the pass" in bob.text


def test_the_editor_issues_the_card_in_other_wallets_with_their_own_settings(shop: WalletShop) -> None:
    template_id = shop.create_template()
    url = f"{BASE}/templates/{template_id}"
    page = shop.client.get(url).text
    assert 'name="other_wallets" value="wallet_google"' in page and "Also issued in" in page
    assert 'name="ws.wallet_google.kind"' not in page  # Google's settings show once it is ticked
    google = {"other_wallets": ["wallet_google"], "ws.wallet_google.kind": ["giftCard"]}

    refused = shop.client.post(
        url, data={**editor_form(shop), **google, "ws.wallet_google.currency": ["euro"]}
    )

    assert refused.status_code == 422
    assert 'name="ws.wallet_google.currency" value="euro"' in refused.text
    assert "should match pattern" in refused.text
    assert shop.template(template_id).wallets() == ["wallet_apple"]  # nothing saved

    answer = shop.client.post(url, data={**editor_form(shop), **google, "ws.wallet_google.currency": ["EUR"]},
                              follow_redirects=False)  # fmt: skip

    assert answer.status_code == 303, answer.text
    saved = shop.template(template_id)
    assert saved.wallets() == ["wallet_apple", "wallet_google"]
    assert saved.design["wallet_settings"] == {"wallet_google": {"kind": "giftCard", "currency": "EUR"}}
    page = shop.client.get(url).text
    assert 'value="wallet_google" checked' in page and "<option selected>giftCard</option>" in page
    shop.client.post(url, data=editor_form(shop), follow_redirects=False)  # unticked: Apple Wallet only
    again = shop.template(template_id)
    assert (
        again.wallets() == ["wallet_apple"]
        and again.design["wallet_settings"]["wallet_google"]["kind"] == "giftCard"
    )
