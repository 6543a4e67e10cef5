"""The book's stack alone, in containers: the README's commands run in the copy Compose
builds from, then `docker compose up` serves what chapter 2 builds (the same tests as
natively, ../tests/test_book_stack.py). Its own module: the browser's sync API must not
share one with asyncio tests."""

import pytest

from proving_ground.stacks import book
from proving_ground.stacks.docker import DockerStack
from proving_ground.tests.test_book_stack import (  # noqa: F401 - fixtures, and tests run here
    open_window,
    playwright,
    test_its_status_page_is_all_green,
    test_the_books_stack_serves_without_the_realtime_base,
)


@pytest.fixture(scope="module")
def book_stack():
    stack = DockerStack()
    book.strip_to_the_book(stack.dir)
    with stack:
        yield stack
