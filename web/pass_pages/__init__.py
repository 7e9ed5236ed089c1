"""The Wallet pages' logic, kept out of the route modules (:mod:`web.routes.wallet`,
:mod:`web.routes.wallet_editor`, :mod:`web.routes.wallet_passes`).

:mod:`.design_form` reads the template editor's form (and fills it from a saved design);
:mod:`.to_design` turns it into a :class:`~core.passes.design.PassDesign`, the one conversion the
live preview and saving share; :mod:`.colours` converts colour inputs; :mod:`.form_actions` adds
and removes fields, iBeacons and languages; :mod:`.problems` places each problem next to its input
and says where it is in words. :mod:`.editor_view`, :mod:`.preview_view` and :mod:`.report_view`
gather what the editor, its live preview and the validation report show; :mod:`.bindings` lists the
values a pass text can show; :mod:`.new_template` and :mod:`.store_form` read the "new template"
and "add a store" forms; :mod:`.access` finds templates, draws the section's pages and audits.
"""
