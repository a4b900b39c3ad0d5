"""Test settings: the real settings module, with a throwaway secret. Services come from the environment
(DATABASE_URL, REDIS_URL), exactly as in production; `make test` and .ci/run set them."""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-not-a-secret")

from chimera.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
