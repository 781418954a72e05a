"""One machine out of the box: DEBUG on, a secret kept in ./var (never in the repo)."""

import secrets

from webapp.env import env_bool, env_str
from webapp.settings.base import *  # noqa: F401,F403
from webapp.settings.base import VAR_DIR

DEBUG = env_bool("DJANGO_DEBUG", True)


def _local_secret_key() -> str:
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env_str("DJANGO_SECRET_KEY", "") or _local_secret_key()
WHITENOISE_USE_FINDERS = True
