"""Reaches into libraries' private internals, one module per library.

Each module names the version it was written against (UPSTREAM), the upstream issue that
would make it unnecessary, and how to remove it; tests/compat fails when an installed
version differs or an internal it uses is gone. Nothing else in the project touches a
library's private names.
"""
