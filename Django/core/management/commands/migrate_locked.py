from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

# A MySQL named lock, held by this database session while it migrates.
LOCK_NAME = "channels_tutorial.migrate"


class Command(BaseCommand):
    help = (
        "Run migrate while holding a database lock: replicas that start together"
        " (docker compose --scale, a Swarm service) migrate one at a time instead of"
        " racing to create the same tables."
    )

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=int, default=300, help="seconds to wait")

    def handle(self, *args, timeout, verbosity, **options):
        if connection.vendor != "mysql":  # e.g. the unit tests' SQLite: one process
            call_command("migrate", interactive=False, verbosity=verbosity)
            return
        with connection.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, %s)", [LOCK_NAME, timeout])
            (acquired,) = cursor.fetchone()
        if acquired != 1:
            raise CommandError(f"another process still migrates after {timeout}s")
        try:
            call_command("migrate", interactive=False, verbosity=verbosity)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT RELEASE_LOCK(%s)", [LOCK_NAME])
