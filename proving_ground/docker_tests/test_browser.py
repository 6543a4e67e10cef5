"""Real browsers on the stack in containers, through nginx and on Django's own port (a
module of its own: Playwright's sync API must not share a module with asyncio tests)."""

from proving_ground.tests.conftest import output_dir  # noqa: F401 - a fixture
from proving_ground.tests.test_browser import (  # noqa: F401 - fixtures, and tests run here
    open_window,
    playwright,
    test_a_message_sent_on_djangos_own_port_reaches_a_page_through_nginx,
    test_a_page_that_lost_its_connection_gets_every_message_once_in_order,
    test_landing_page_shows_every_check_green,
)
