"""The queue tests use the installed sample plugin's job type (see :mod:`tests.plugins_host.packages`)."""

from tests.plugins_host.packages import plugin_packages, sample_plugin

__all__ = ["plugin_packages", "sample_plugin"]
