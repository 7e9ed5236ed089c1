"""Identity resolution: which identifiers (emails, phones, user ids, devices) are one customer.

:mod:`core.identity.identifiers` defines the core identifier types and how their values are
normalized; :mod:`core.identity.graph` holds the resolution rules as a pure, deterministic
function of a set of observations, with no database involved.
"""
