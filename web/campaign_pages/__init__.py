"""The campaign pages' logic, kept out of the routes module.

:mod:`.form` reads the campaign form (texts per language, schedule) into a
:class:`~core.campaigns.service.CampaignIn` and places what is wrong next to the input it concerns;
:mod:`.display` formats times in the tenant's zone and the list's figures; :mod:`.policy_form`
reads the sending-policy settings form. The routes are in :mod:`web.routes.campaigns`,
:mod:`web.routes.sending_policy` and :mod:`web.routes.links`.
"""
