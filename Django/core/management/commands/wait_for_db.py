import logging
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from django.db.utils import OperationalError
from tenacity import RetryError, retry, retry_if_exception, stop_after_delay, wait_fixed

logger = logging.getLogger("wait_for_db")

# MySQL's "access denied" errors: waiting will not change the answer.
ACCESS_DENIED = {1044, 1045}


def _transient(error: BaseException) -> bool:
    code = error.args[0] if error.args else None
    return isinstance(error, OperationalError) and code not in ACCESS_DENIED


class Command(BaseCommand):
    help = "Wait, for a bounded time, until the default database accepts connections."

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")

    def handle(self, *args, timeout, **options):
        started = time.monotonic()

        @retry(
            retry=retry_if_exception(_transient),
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
        except OperationalError as error:  # not transient: refused credentials
            raise CommandError(
                f"the database refuses MYSQL_USER/MYSQL_PASSWORD: {error}. MySQL creates the"
                " user only when its data volume is empty; a volume made with other"
                " credentials keeps them."
            ) from None
        except RetryError as error:
            last = error.last_attempt.exception()
            raise CommandError(f"database still unreachable after {timeout:g}s: {last}") from None
        logger.info("database ready after %.1fs", time.monotonic() - started)
