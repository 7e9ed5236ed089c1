"""The loyalty pages' logic, kept out of the routes module (:mod:`web.routes.loyalty`).

:mod:`.program_form` and :mod:`.tier_form` read a program's settings and its tiers from their
forms; :mod:`.rule_form` reads the earning-rule editor (its property filters drawn with the
audience builder's value inputs; its profile condition is the audience builder itself, as a
journey's branch uses it); :mod:`.problems` words what is wrong for the input it concerns.
:mod:`.program_page` and :mod:`.rule_editor` gather what a program's page and the rule editor
show; :mod:`.words` says rules and settings in words; :mod:`.dry_run` reads the event a marketer
writes to test a rule on; :mod:`.catalogue_forms` reads the rewards, challenges and offers forms.
The dashboard's figures are :mod:`core.loyalty.dashboard`.
"""
