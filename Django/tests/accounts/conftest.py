import pytest
from django.core.cache import caches


@pytest.fixture(autouse=True)
def no_failed_sign_ins():
    """Each test starts with the sign-in throttle's counts empty."""
    caches["sign_in"].clear()
    yield
    caches["sign_in"].clear()
