"""The book's stack alone, natively: the README's commands run in a copy of the project
(realtime/, talk/ and accounts/ deleted, a few lines of settings, routing and urls
changed), then that copy's stack serves what chapter 2 builds. Its own module: the
browser's sync API must not share one with asyncio tests."""

import pytest

from proving_ground.stacks import book
from proving_ground.stacks.docker import copy_repository
from proving_ground.stacks.native import NativeStack
from proving_ground.tests.test_browser import open_window, playwright  # noqa: F401 - fixtures


@pytest.fixture(scope="module")
def book_stack(tmp_path_factory):
    root = copy_repository(tmp_path_factory.mktemp("book"))
    book.strip_to_the_book(root)
    with NativeStack(compose_files=(root / "docker-compose.yml",)) as stack:
        yield stack


def test_the_books_stack_serves_without_the_realtime_base(book_stack):
    book.assert_serves_the_book(book_stack.http_url, book_stack.django_url)


@pytest.mark.parametrize("address", ["http_url", "django_url"])
def test_its_status_page_is_all_green(book_stack, open_window, address):  # noqa: F811
    book.assert_status_page_green(open_window(), getattr(book_stack, address))
