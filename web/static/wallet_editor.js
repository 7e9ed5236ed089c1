/* The pass template editor (templates/wallet/editor.html): field cards dragged between the areas of
   the pass, each card's "Area" select moving it too (for keyboards), a value picker that inserts
   at the caret, language tabs, and the live preview kept in step. Without this file the editor still
   works: the Area selects, the Save button and the add/remove buttons do the same, less smoothly. */
(function () {
  "use strict";
  const form = document.getElementById("pass-editor");
  if (!form) return;
  let dragged = null;
  let shownLanguage = null;

  /* Ask htmx for a new preview (the form listens for "pass-changed"). */
  function changed() {
    form.dispatchEvent(new CustomEvent("pass-changed", { bubbles: true }));
  }

  function zoneFor(area) {
    return form.querySelector('.pass-dropzone[data-area="' + area + '"]');
  }

  function unmark() {
    form.querySelectorAll(".pass-dropzone.drop-here").forEach(function (zone) { zone.classList.remove("drop-here"); });
  }

  /* The card the dragged one goes before: the first whose middle is below the pointer. */
  function cardAfter(zone, y) {
    const cards = zone.querySelectorAll(".pass-card:not(.dragging)");
    for (let i = 0; i < cards.length; i++) {
      const box = cards[i].getBoundingClientRect();
      if (y < box.top + box.height / 2) return cards[i];
    }
    return null;
  }

  /* Put a card in an area: its inputs move with it, so the posted order is the pass's order. */
  function place(card, zone, before) {
    zone.insertBefore(card, before);
    const select = card.querySelector("select.move-to");
    if (select) select.value = zone.dataset.area;
    changed();
  }

  form.addEventListener("dragstart", function (event) {
    const handle = event.target.closest && event.target.closest(".drag-handle");
    if (!handle) return;
    dragged = handle.closest(".pass-card");
    dragged.classList.add("dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", dragged.dataset.key || "");
    event.dataTransfer.setDragImage(dragged, 16, 16);
  });
  form.addEventListener("dragend", function () {
    if (dragged) dragged.classList.remove("dragging");
    dragged = null;
    unmark();
  });
  form.addEventListener("dragover", function (event) {
    const zone = dragged && event.target.closest && event.target.closest(".pass-dropzone");
    if (!zone) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
    if (!zone.classList.contains("drop-here")) {
      unmark();
      zone.classList.add("drop-here");
    }
  });
  form.addEventListener("drop", function (event) {
    const zone = dragged && event.target.closest && event.target.closest(".pass-dropzone");
    if (!zone) return;
    event.preventDefault();
    place(dragged, zone, cardAfter(zone, event.clientY));
    unmark();
  });

  form.addEventListener("change", function (event) {
    const target = event.target;
    if (target.matches("select.move-to")) {
      const card = target.closest(".pass-card");
      const zone = zoneFor(target.value);
      if (card && zone && card.parentElement !== zone) {
        place(card, zone, null);
        target.focus();
      }
    } else if (target.matches("select.binding-picker")) {
      insertValue(target);
    } else if (target.matches('input[type="checkbox"]')) {
      changed(); // a checkbox keeps its value: htmx's "changed" would not see it
    }
  });

  /* The picker puts the chosen value at the caret of its input. */
  function insertValue(picker) {
    const input = form.querySelector('[name="' + CSS.escape(picker.dataset.for) + '"]');
    const text = picker.value;
    picker.selectedIndex = 0;
    if (!input || !text) return;
    const start = input.selectionStart === null ? input.value.length : input.selectionStart;
    const end = input.selectionEnd === null ? start : input.selectionEnd;
    input.value = input.value.slice(0, start) + text + input.value.slice(end);
    input.focus();
    input.setSelectionRange(start + text.length, start + text.length);
    input.dispatchEvent(new Event("input", { bubbles: true }));
  }

  /* A card's title follows its label (or key), and its header shows its value, as they are typed. */
  form.addEventListener("input", function (event) {
    const card = event.target.closest && event.target.closest(".pass-card");
    if (!card || !/\.(label|key|value)$/.test(event.target.name || "")) return;
    const label = card.querySelector('input[name$=".label"]').value;
    const key = card.querySelector('input[name$=".key"]').value;
    card.querySelector(".pass-card-title").textContent = label || key || "New field";
    card.querySelector(".pass-card-value").textContent = card.querySelector('input[name$=".value"]').value;
    card.querySelector(".pass-card-details > summary").textContent = "Edit " + (label || key || "the field");
    card.dataset.key = key;
  });

  /* Picking a colour means using it: untick "the wallet's default" beside it. */
  form.addEventListener("input", function (event) {
    if (event.target.type !== "color") return;
    const fallback = form.querySelector('input[name="' + CSS.escape(event.target.name + ".default") + '"]');
    if (fallback) fallback.checked = false;
  });

  /* Enter in "Add a language" adds it rather than saving the template. */
  form.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && event.target.id === "new-language") {
      event.preventDefault();
      const button = document.getElementById("add-language");
      if (button) button.click();
    }
  });

  /* Language tabs: one panel shown at a time (all are shown without this file). */
  function showTab(language) {
    const tabs = form.querySelectorAll('.pass-tabs [role="tab"]');
    if (!tabs.length) return;
    const chosen = Array.prototype.find.call(tabs, function (tab) { return tab.dataset.language === language; }) || tabs[0];
    shownLanguage = chosen.dataset.language;
    tabs.forEach(function (tab) {
      const selected = tab === chosen;
      tab.setAttribute("aria-selected", selected ? "true" : "false");
      tab.tabIndex = selected ? 0 : -1;
      const panel = document.getElementById(tab.getAttribute("aria-controls"));
      if (panel) panel.hidden = !selected;
    });
  }

  let knownLanguages = [];

  /* After a redraw: show the language just added, else the one shown before. */
  function setUpTabs() {
    const list = form.querySelector(".pass-tabs");
    if (!list) return;
    list.hidden = false;
    const languages = Array.prototype.map.call(list.querySelectorAll('[role="tab"]'), function (tab) {
      return tab.dataset.language;
    });
    const added = languages.filter(function (language) { return knownLanguages.indexOf(language) < 0; });
    showTab(knownLanguages.length && added.length ? added[0] : shownLanguage);
    knownLanguages = languages;
  }

  form.addEventListener("click", function (event) {
    const tab = event.target.closest && event.target.closest('.pass-tabs [role="tab"]');
    if (tab) showTab(tab.dataset.language);
  });

  /* The wallet's drawing sits in a frame that runs no script: size it to what it holds. */
  function fitFrame(frame) {
    try {
      const inner = frame.contentDocument && frame.contentDocument.documentElement;
      if (inner) frame.style.height = inner.scrollHeight + 4 + "px";
    } catch (error) {
      /* not readable: keep the stylesheet's height */
    }
  }
  document.addEventListener("load", function (event) {
    if (event.target.matches && event.target.matches("iframe.pass-frame")) fitFrame(event.target);
  }, true);

  document.body.addEventListener("htmx:afterSettle", function (event) {
    const target = event.detail && event.detail.target;
    const id = target && target.id;
    if (id === "pass-editor-fields" || id === "pass-images") {
      setUpTabs();
      changed(); // a field, image or language added or removed: draw the pass again
    }
  });

  setUpTabs();
})();
