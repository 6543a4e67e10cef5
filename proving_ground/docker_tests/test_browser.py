"""Real browsers on the stack in containers, through nginx and on Django's own port (a
module of its own: Playwright's sync API must not share a module with asyncio tests)."""

from proving_ground.tests.test_browser import (  # noqa: F401 - fixtures, and a test run here
    open_window,
    playwright,
    test_a_page_that_lost_its_connection_gets_every_message_once_in_order,
)
