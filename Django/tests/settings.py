"""Unit-test settings: the project's settings with SQLite and the in-memory channel layer.

The real MySQL and Redis are exercised by the whole-stack tests in ../proving_ground/tests.
"""

import os
import tempfile

for key, value in {
    "SECRET_KEY": "unit-tests-only",
    "MYSQL_DATABASE": "unused",
    "MYSQL_USER": "unused",
    "MYSQL_PASSWORD": "unused",
    # Empty: WhiteNoise reads the whole folder when the app starts.
    "STATIC_ROOT": tempfile.mkdtemp(prefix="static-"),
}.items():
    os.environ.setdefault(key, value)

from channels_tutorial.settings import *  # noqa: E402,F403

DEBUG = False
# The core app's developer endpoints are under test too.
DEBUG_ENDPOINTS = True
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# Signing up and in are under test, not the hash's cost: a fast one, as Django's testing
# docs advise (the project's own hasher takes a second of CPU per test user).
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# The sign-in throttle's counts, in this process (Redis in the whole-stack tests).
CACHES = {**CACHES, "sign_in": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}  # noqa: F405
