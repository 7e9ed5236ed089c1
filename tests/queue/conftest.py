"""The queue tests use the installed sample plugin's job type (see :mod:`tests.plugins_host.packages`)
and real worker processes (:mod:`tests.workers`)."""

from tests.plugins_host.packages import plugin_packages, sample_plugin
from tests.workers import workers

__all__ = ["plugin_packages", "sample_plugin", "workers"]
