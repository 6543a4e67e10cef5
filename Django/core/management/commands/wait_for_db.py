import logging
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from django.db.utils import OperationalError
from tenacity import RetryError, retry, retry_if_exception_type, stop_after_delay, wait_fixed

logger = logging.getLogger("wait_for_db")


class Command(BaseCommand):
    help = "Wait, for a bounded time, until the default database accepts connections."

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")

    def handle(self, *args, timeout, **options):
        started = time.monotonic()

        @retry(
            retry=retry_if_exception_type(OperationalError),
            stop=stop_after_delay(timeout),
            wait=wait_fixed(1),
            before_sleep=lambda state: logger.warning(
                "database not ready (%s); retrying", state.outcome.exception()
            ),
        )
        def connect():
            connection = connections["default"]
            connection.close()
            connection.ensure_connection()

        try:
            connect()
        except RetryError as error:
            last = error.last_attempt.exception()
            raise CommandError(f"database still unreachable after {timeout:g}s: {last}") from None
        logger.info("database ready after %.1fs", time.monotonic() - started)
