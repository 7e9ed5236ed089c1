"""The business account's message templates, synced from Meta and kept with the plugin's own records.

``GET /{version}/{waba_id}/message_templates`` is read page by page (``paging.next``) into one
record: every template's name, language, category, status and components, when the list was last
synced, when a sync was last tried and why it last failed. A failed sync keeps the previous list.
"""

from __future__ import annotations

import html
import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from core.plugin_api import ChannelContext, Suggestion, channel_context, plugin_data
from tessera_whatsapp.config import WhatsAppConfig
from tessera_whatsapp.sending import base_url, client_for

log = logging.getLogger(__name__)

PLUGIN = "whatsapp"
KEY = "templates"
MAX_AGE = timedelta(minutes=15)
# How long a process trusts the record it read, so validate does not read the database per message.
CACHE_SECONDS = 60.0
FIELDS = "name,language,category,status,components"
PAGE_SIZE = 100
MAX_PAGES = 200

# The tenant's plugin records (``plugin_data``) and channel context; tests swap in stand-ins.
store_for: Callable[[str], Any] = lambda tenant: plugin_data(tenant, PLUGIN)  # noqa: E731
context_for: Callable[[str], ChannelContext] = lambda tenant: channel_context(tenant, PLUGIN)  # noqa: E731

_cache: dict[str, tuple[float, dict[str, Any]]] = {}
_lock = threading.Lock()


class SyncError(Exception):
    """Meta refused or garbled the template list; ``str()`` says what to fix."""


def _now() -> datetime:
    return datetime.now(UTC)


def _refused(response: httpx.Response) -> SyncError:
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    code = error.get("code") if isinstance(error, dict) else None
    text = error.get("message", response.text[:200]) if isinstance(error, dict) else response.text[:200]
    hint = " Renew the access token in the WhatsApp settings." if code == 190 else ""
    return SyncError(
        f"Meta refused the template list (HTTP {response.status_code}, code {code}): {text}.{hint}"
    )


def fetch_templates(config: WhatsAppConfig, url: str) -> list[dict[str, Any]]:
    """Every template of the business account, following Meta's paging to the last page."""
    client = client_for(url)
    headers = {"Authorization": f"Bearer {config.access_token.get_secret_value()}"}
    next_url: str | None = f"{url}/{config.api_version}/{config.business_account_id}/message_templates"
    params: dict[str, Any] | None = {"fields": FIELDS, "limit": PAGE_SIZE}
    found: list[dict[str, Any]] = []
    for _ in range(MAX_PAGES):
        if next_url is None:
            return found
        response = client.get(next_url, params=params, headers=headers)
        if response.status_code != 200:
            raise _refused(response)
        try:
            page = response.json()
            data, paging = page["data"], page.get("paging") or {}
        except (ValueError, KeyError, TypeError) as exc:
            raise SyncError(f"Meta's template list is not in the documented shape: {exc!r}") from exc
        found += [_template(item) for item in data if isinstance(item, dict)]
        # ``next`` is a full URL carrying the query and the ``after`` cursor; absent on the last page.
        next_url, params = paging.get("next"), None
    raise SyncError(f"Meta's template list has more than {MAX_PAGES} pages; stopped reading.")


def _template(item: dict[str, Any]) -> dict[str, Any]:
    return {key: item.get(key) for key in ("name", "language", "category", "status")} | {
        "components": item.get("components") or []
    }


def _source(ctx: ChannelContext, config: WhatsAppConfig) -> str:
    return f"{base_url(config, ctx.sandbox, ctx.sandbox_url)}/{config.business_account_id}"


def sync_templates(ctx: ChannelContext) -> dict[str, Any]:
    """Fetch the tenant's templates and store them; on failure keep the old list with the error."""
    assert isinstance(ctx.config, WhatsAppConfig)
    config, now = ctx.config, _now().isoformat()
    store = store_for(ctx.tenant)
    source = _source(ctx, config)
    try:
        templates = fetch_templates(config, base_url(config, ctx.sandbox, ctx.sandbox_url))
    except (SyncError, httpx.HTTPError) as exc:
        previous = store.get(KEY) or {}
        kept = previous if previous.get("source") == source else {}
        error = str(exc) if isinstance(exc, SyncError) else f"Meta could not be reached: {exc!r}"
        record = {**kept, "source": source, "checked_at": now, "error": error[:1000]}
        log.warning("WhatsApp template sync failed for %s: %s", ctx.tenant, record["error"])
    else:
        record = {
            "source": source,
            "templates": templates,
            "synced_at": now,
            "checked_at": now,
            "error": None,
        }
    store.put(KEY, record)
    with _lock:
        _cache[ctx.tenant] = (time.monotonic(), record)
    return record


def _stale(record: dict[str, Any], source: str) -> bool:
    checked = record.get("checked_at")
    if record.get("source") != source or not checked:
        return True
    return _now() - datetime.fromisoformat(checked) > MAX_AGE


def current(ctx: ChannelContext) -> dict[str, Any]:
    """The tenant's synced record, synced first when older than 15 minutes (cached briefly)."""
    assert isinstance(ctx.config, WhatsAppConfig)
    source = _source(ctx, ctx.config)
    with _lock:
        cached = _cache.get(ctx.tenant)
    if cached and time.monotonic() - cached[0] < CACHE_SECONDS and cached[1].get("source") == source:
        return cached[1]
    record = store_for(ctx.tenant).get(KEY) or {}
    if _stale(record, source):
        return sync_templates(ctx)
    with _lock:
        _cache[ctx.tenant] = (time.monotonic(), record)
    return record


def forget_cache() -> None:
    """Drop the in-process copies (tests; a process reading another's fresh sync sooner)."""
    with _lock:
        _cache.clear()


def find(record: dict[str, Any], name: str, language: str) -> dict[str, Any] | None:
    """The synced template ``name`` in ``language``, or None."""
    return next(
        (t for t in record.get("templates") or [] if (t.get("name"), t.get("language")) == (name, language)),
        None,
    )


def refusal(record: dict[str, Any], name: str, language: str) -> str | None:
    """Why template ``name`` in ``language`` may not be sent (not approved, unknown), or None.

    With no list at all (it could never be synced: Meta unreachable, a refused token), nothing is
    refused here: the send itself then meets Meta's answer, a temporary outage stays temporary.
    """
    if "templates" not in record:
        return None
    found = find(record, name, language)
    if found is not None and found.get("status") == "APPROVED":
        return None
    approved = [
        f"{t['name']} ({t['language']})" for t in record["templates"] if t.get("status") == "APPROVED"
    ]
    some = ", ".join(approved[:5]) + (", ..." if len(approved) > 5 else "") if approved else "none"
    if found is None:
        why = f"Template {name!r} in {language} does not exist in the WhatsApp account"
    else:
        why = f"Template {name!r} in {language} is {found.get('status')} at Meta, not APPROVED"
    return f"{why}. Approved templates: {some}."


_PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")


def parameter_problems(found: dict[str, Any], body_given: int, header_given: bool) -> dict[str, str]:
    """What the synced template ``found`` says of the parameters given, by field: its body takes one
    per ``{{n}}`` placeholder, its text header one when it has ``{{1}}``. Meta refuses a mismatch
    (132000) at the send; said here, a marketer sees it in the review instead."""
    problems = {}
    body_wanted = len(set(_PLACEHOLDER.findall(str(_part(found, "BODY").get("text") or ""))))
    if body_wanted != body_given:
        problems["body_parameters"] = (
            f"Template {found.get('name')!r} in {found.get('language')} takes {body_wanted} body "
            f"parameter(s), one per line; {body_given} given."
        )
    header = _part(found, "HEADER")
    wants_header = str(header.get("format", "TEXT")).upper() == "TEXT" and bool(
        _PLACEHOLDER.search(str(header.get("text") or ""))
    )
    if wants_header and not header_given:
        problems["header_text"] = (
            f"Template {found.get('name')!r} has a header parameter ({{{{1}}}}): fill it in."
        )
    elif header_given and not wants_header:
        problems["header_text"] = (
            f"Template {found.get('name')!r} has no header parameter: leave the header text empty."
        )
    return problems


def _part(template: dict[str, Any], kind: str) -> dict[str, Any]:
    wanted = (c for c in template.get("components") or [] if str(c.get("type", "")).upper() == kind)
    return next(wanted, {})


def button_url_bases(template: dict[str, Any]) -> dict[int, str]:
    """The fixed start of each dynamic URL button (``https://x/{{1}}`` -> ``https://x/``), by position."""
    bases = {}
    for index, button in enumerate(_part(template, "BUTTONS").get("buttons") or []):
        url = str(button.get("url") or "")
        if str(button.get("type", "")).upper() == "URL" and url.endswith("{{1}}"):
            bases[index] = url.removesuffix("{{1}}")
    return bases


def approved_choices(tenant: str) -> dict[str, list[Suggestion]]:
    """The synced approved templates as the message editors offer them: names (with their languages,
    category and body) and languages. Read from the last sync: the editor never waits for Meta."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for template in (store_for(tenant).get(KEY) or {}).get("templates") or []:
        if template.get("status") == "APPROVED":
            by_name.setdefault(str(template.get("name")), []).append(template)
    if not by_name:
        return {}
    names = []
    for name, found in sorted(by_name.items()):
        codes = ", ".join(sorted(str(t.get("language")) for t in found))
        body = str(_part(found[0], "BODY").get("text") or "")
        body = body if len(body) <= 60 else body[:59] + "…"
        names.append(Suggestion(name, f"{codes} · {found[0].get('category')} · {body}"))
    codes = sorted({str(t.get("language")) for found in by_name.values() for t in found})
    return {"template_name": names, "language": [Suggestion(code, code) for code in codes]}


def render_panel(tenant: str, context: dict[str, Any]) -> str:
    """The settings panel: the synced templates (name, language, category, status, body) and sync times."""
    record = store_for(tenant).get(KEY) or {}
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(str(t.get('name')))}</td><td>{e(str(t.get('language')))}</td>"
        f"<td>{e(str(t.get('category')))}</td><td>{e(str(t.get('status')))}</td>"
        f"<td>{e(str(_part(t, 'BODY').get('text') or ''))}</td></tr>"
        for t in record.get("templates") or []
    )
    parts = [f"<p class='muted'>Synced {e(record.get('synced_at') or 'never')}; "
             f"last checked {e(record.get('checked_at') or 'never')}.</p>"]  # fmt: skip
    if record.get("error"):
        parts.append(f"<p class='flash error'>Last sync failed: {e(record['error'])}</p>")
    if rows:
        parts.append("<table><thead><tr><th>Name</th><th>Language</th><th>Category</th><th>Status</th>"
                     f"<th>Body</th></tr></thead><tbody>{rows}</tbody></table>")  # fmt: skip
    else:
        parts.append("<p>No templates synced yet.</p>")
    return "".join(parts)


def sync_job(tenant: str, payload: dict[str, Any]) -> None:
    """The ``whatsapp.sync_templates`` job: sync the tenant's templates, if WhatsApp is configured."""
    ctx = context_for(tenant)
    if not isinstance(ctx.config, WhatsAppConfig):
        log.info("WhatsApp template sync for %s skipped: WhatsApp is not configured", tenant)
        return
    sync_templates(ctx)
