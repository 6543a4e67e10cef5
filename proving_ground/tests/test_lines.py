"""`make lines`: the parts it counts cover Django/ once each, and the book's stack stays
within its budget."""

from proving_ground.reports import lines
from proving_ground.stacks.compose import ROOT

DJANGO = ROOT / "Django"


def test_the_books_stack_stays_within_its_budget():
    book, *_ = lines.parts()
    assert book.lines < lines.BOOK_BUDGET, lines.render(lines.parts())


def test_every_python_file_is_in_one_part():
    counted = [name for part in lines.parts() for name in part.files]
    everything = lines.python_files(DJANGO, tuple(p.name for p in DJANGO.iterdir()))
    assert sorted(counted) == sorted(str(f.relative_to(DJANGO)) for f in everything)


def test_code_lines_leave_out_blank_lines_comments_and_docstrings():
    source = '''"""A module docstring
over two lines."""

import os  # a comment after code counts


def f():
    """A docstring."""
    # a comment alone
    return {
        "key": os.sep,
    }
'''
    assert lines.code_lines(source) == 5  # import, def, return {, "key", }
