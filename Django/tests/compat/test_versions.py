"""Each compat module was written against one version of its library: a change of version
fails here, so that its workaround is checked again against the new one."""

import importlib
import pkgutil
from importlib.metadata import version

import pytest

import compat

MODULES = sorted(info.name for info in pkgutil.iter_modules(compat.__path__))


def test_there_is_a_module_per_library():
    assert MODULES == [
        "channels",
        "channels_redis",
        "django_prometheus",
        "prometheus_client",
        "redis",
        "uvicorn",
    ]


@pytest.mark.parametrize("name", MODULES)
def test_installed_versions_are_the_ones_the_workarounds_were_written_for(name):
    module = importlib.import_module(f"compat.{name}")
    package, written_for = module.UPSTREAM
    assert version(package) == written_for, (
        f"{package} changed: re-run tests/compat/test_{name}.py and the tests its module"
        f" names, drop what upstream fixed, then update compat/{name}.py's UPSTREAM"
    )


@pytest.mark.parametrize("name", MODULES)
def test_each_module_names_its_upstream_issue_and_how_to_remove_it(name):
    doc = importlib.import_module(f"compat.{name}").__doc__
    assert "Upstream:" in doc and "remove" in doc.lower()
