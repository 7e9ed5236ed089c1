"""Fixtures installing the test plugin packages (see :mod:`tests.plugins_host.packages`)."""

from tests.plugins_host.packages import broken_plugin, plugin_packages, recording_plugin, sample_plugin

__all__ = ["broken_plugin", "plugin_packages", "recording_plugin", "sample_plugin"]
