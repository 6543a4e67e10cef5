import pytest
from django.core.management import call_command
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)


def test_migrates_without_a_lock_on_databases_other_than_mysql():
    # The lock itself is tested against MariaDB: proving_ground/tests/test_services.py.
    assert connection.vendor == "sqlite"
    call_command("migrate_locked", timeout=1, verbosity=0)
