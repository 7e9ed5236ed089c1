"""Errors of the tenancy services; messages say how to fix the problem."""


class TenancyError(ValueError):
    """Bad input to a tenancy service (the CLI prints it, the API answers 4xx with it)."""


class NotFound(TenancyError):
    """The named tenant, user, token or plugin does not exist."""


class Conflict(TenancyError):
    """The thing already exists (duplicate slug, duplicate email)."""
