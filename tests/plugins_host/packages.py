"""Build and install the test plugin packages at test time, as a partner's package would be installed.

Each package under this folder is built from its ``pyproject.toml`` and installed with
``pip install --no-deps --no-build-isolation --target <dir>``; a test then puts ``<dir>`` on
``sys.path`` (for this process, where ``importlib.metadata`` finds the dist-info and its entry
points) and on ``PYTHONPATH`` (for the ``tessera`` subprocesses it starts).

The fixtures are defined here and imported by the ``conftest.py`` of each folder that needs them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

from core.plugins import reset_host

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SOURCES = {
    "sample": HERE / "sample_plugin",
    "broken": HERE / "broken_plugin",
    "recording": HERE / "recording_plugin",
}
MODULES = ("tessera_sample_channel", "tessera_broken_channel", "tessera_recording_channel")
TESSERA = str(Path(sys.executable).with_name("tessera"))
INSTALLED_MARKER = ".tessera-test-installed"
SETUPTOOLS_NEEDED = (77, 0)  # PEP 639 ``license = "..."`` strings and a built-in ``bdist_wheel``


def _check_build_backend() -> None:
    # --no-build-isolation builds with this environment's setuptools, whatever the package requires.
    try:
        found = version("setuptools")
    except PackageNotFoundError:
        found = "none"
    numbers = tuple(int(part) for part in found.split(".")[:2] if part.isdigit())
    if numbers < SETUPTOOLS_NEEDED:
        pytest.fail(
            f"Building the test plugin packages needs setuptools>=77 in this environment (found {found}): "
            "run scripts/setup, or `.venv/bin/python -m pip install 'setuptools>=77'`.",
            pytrace=False,
        )


def install_package(source: Path, target: Path) -> Path:
    """``pip install`` a package source folder into ``target`` (once per test session)."""
    if (target / INSTALLED_MARKER).exists():
        return target
    _check_build_backend()
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tessera-plugin-build-") as work:
        # Build from a copy: pip builds in-tree and would leave build/ and *.egg-info in the sources.
        copy = Path(work) / source.name
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        command = [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
            "--no-index", "--no-cache-dir", "--disable-pip-version-check", "--target", str(target), str(copy),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"pip could not install {source.name} (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    (target / INSTALLED_MARKER).write_text("ok\n", encoding="ascii")
    return target


def install_recording_plugin(target: Path) -> Path:
    """Install ``tessera-recording-channel`` into ``target`` (for use outside pytest too, e.g. benchmarks).

    Put ``target`` on ``PYTHONPATH`` of the processes that should find the plugin, and the repository
    root too where the channel's sandbox (``tests.fakes.provider``) is wanted.
    """
    return install_package(SOURCES["recording"], target)


def _forget_plugin_modules() -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in MODULES:
            del sys.modules[name]


def activate(monkeypatch: pytest.MonkeyPatch, *targets: Path) -> None:
    """Make the packages installed in ``targets`` visible here and to subprocesses; re-discover plugins."""
    for target in reversed(targets):
        monkeypatch.syspath_prepend(str(target))
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([*map(str, targets), *inherited]))
    _forget_plugin_modules()
    reset_host()


def deactivate() -> None:
    """Forget the imported test plugins and the host that loaded them (sys.path is undone by monkeypatch)."""
    _forget_plugin_modules()
    reset_host()


def subprocess_env(env: dict[str, str], **extra: str) -> dict[str, str]:
    """The environment of a ``tessera`` subprocess: ours, an installation's, the plugins' PYTHONPATH."""
    return {**os.environ, **env, "PYTHONPATH": os.environ.get("PYTHONPATH", ""), **extra}


@pytest.fixture(scope="session")
def plugin_packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each test plugin package, built and installed into a folder of its own: name -> folder."""
    base = tmp_path_factory.getbasetemp() / "plugin-packages"
    return {name: install_package(source, base / name) for name, source in SOURCES.items()}


@pytest.fixture
def sample_plugin(plugin_packages: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``tessera-sample-channel`` is installed (entry point ``sample_channel``)."""
    activate(monkeypatch, plugin_packages["sample"])
    yield plugin_packages["sample"]
    deactivate()


@pytest.fixture
def broken_plugin(plugin_packages: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``tessera-broken-channel`` (fails at import) is installed, next to ``tessera-sample-channel``."""
    activate(monkeypatch, plugin_packages["broken"], plugin_packages["sample"])
    yield plugin_packages["broken"]
    deactivate()


@pytest.fixture
def recording_plugin(plugin_packages: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``tessera-recording-channel`` is installed (entry point ``recording_channel``).

    The repository root is on ``PYTHONPATH`` as well, so that ``tessera`` subprocesses find the
    channel's sandbox (``tests.fakes.provider``).
    """
    activate(monkeypatch, plugin_packages["recording"])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([os.environ["PYTHONPATH"], str(REPO)]))
    yield plugin_packages["recording"]
    deactivate()
