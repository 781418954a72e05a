"""Settings shared by every environment; each value can come from an environment variable.

The embedded default needs nothing set: SQLite and media under ./var, Redis on 127.0.0.1.
"""

from pathlib import Path

import dj_database_url

from webapp.env import env_bool, env_int, env_list, env_str
from webapp.storage_settings import default_storage_from_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("CELLSEARCH_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024  # 1 MB: an API body past it is a 400 before it is parsed

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "axes",
    "webapp.teams",
    "webapp.cells",
    "webapp.searches",
    "webapp.trials",
    "webapp.transfers",
    "webapp.reviews",
    "webapp.workers",
    "webapp.analysis",
]

# django-axes first: it refuses a locked-out username+IP before any password is checked. Then
# object permissions: the team roles' table in webapp.teams.permissions (django-rules), then
# Django's own (superusers, the admin).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "rules.permissions.ObjectPermissionBackend",
    "django.contrib.auth.backends.ModelBackend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",  # the Content-Security-Policy header (CONTENT_SECURITY_POLICY below)
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "webapp.middleware.LoginRequiredExceptApiMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # last, as django-axes asks: it answers a locked-out login with its lockout response (429)
    "axes.middleware.AxesMiddleware",
]

# -- abuse (issue 17) ------------------------------------------------------------------------------
# Logins: AXES_FAILURE_LIMIT wrong passwords for one username from one IP lock that pair out for
# AXES_COOLOFF_TIME hours (other users, and the same user elsewhere, can still log in); a
# successful login forgets the failures. Attempts are kept in the database (axes' default handler).
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = float(env_str("AXES_COOLOFF_TIME", "1"))  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Security headers on every response (SecurityMiddleware, XFrameOptionsMiddleware); Django's
# defaults, written out so that they are not lost.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# The Content-Security-Policy of every response (django-csp's CSPMiddleware). Scripts only from our
# own static files: the templates have no inline <script> (server data goes in json_script's
# <script type="application/json">) and no on*= handlers (static/js/cellsearch.js wires data-*
# attributes); htmx runs with allowEval off (templates/base.html), and Plotly's charts, scattergl
# included, need no eval. Styles also allow 'unsafe-inline', for styles only: Plotly injects
# its rules into a <style> element at runtime (its charts lose hover labels and modebar layout
# without them), and the progress bars set their width with style="". tests/webapp/test_csp.py
# checks the header and the templates, the browser tests fail on any violation.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    },
}

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "webapp.teams.context_processors.roles",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"), conn_max_age=env_int("DB_CONN_MAX_AGE", 60)
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web server and workers share one file: wait for each other's writes instead of failing.
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE",
                                       "init_command": "PRAGMA journal_mode=WAL;"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "searches:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("CELLSEARCH_MEDIA_ROOT", str(VAR_DIR / "media")))
STORAGES = {
    # Local files under MEDIA_ROOT, or an S3-compatible store shared by every host (webapp/storage_settings.py).
    "default": default_storage_from_url(env_str("CELLSEARCH_STORAGE_URL", "")),
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

REST_FRAMEWORK = {
    # Token first: an unauthenticated API request gets 401 with `WWW-Authenticate: Token`.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # JSON nested past the recursion limit is a 400, not a 500; forms and uploads as DRF's defaults.
    "DEFAULT_PARSER_CLASSES": [
        "webapp.api.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # Services' ValidationError and searchcore's errors become the same 400 body as a serializer's.
    "EXCEPTION_HANDLER": "webapp.api.errors.exception_handler",
    # Per user (or per IP when anonymous); over the rate a request gets 429 with Retry-After.
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.UserRateThrottle",
        "rest_framework.throttling.AnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": env_str("CELLSEARCH_THROTTLE_USER", "1000/min"),
        "anon": env_str("CELLSEARCH_THROTTLE_ANON", "60/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CellSearch API",
    "DESCRIPTION": "Launch, watch and compare NASNet-style cell searches.",
    "VERSION": "1",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Searches and trials both have a `status`: name their enums apart.
    "ENUM_NAME_OVERRIDES": {
        "SearchStatusEnum": "webapp.searches.models.Search.Status",
        "TrialStatusEnum": "webapp.trials.models.Trial.Status",
        "TransferStatusEnum": "webapp.transfers.models.Transfer.Status",
        "ReviewStatusEnum": "webapp.reviews.models.ReviewStatus.Status",
    },
    # Swagger UI from our own static files: it works without internet access.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# -- Celery: `gpu` trains trials, transfers and one-shot supernets (one worker process per GPU), `control` runs strategy
# steps and the reconcilers.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "control"
CELERY_TASK_ROUTES = {
    "trials.train_trial": {"queue": "gpu"},
    "transfers.train_transfer": {"queue": "gpu"},
    "searches.train_oneshot": {"queue": "gpu"},
    "searches.*": {"queue": "control"},
    "transfers.*": {"queue": "control"},
}
# A trial trains for minutes to hours: Redis must not hand its message to another worker meanwhile.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 12 * 3600)}
CELERY_BEAT_SCHEDULE = {
    "reconcile": {"task": "searches.reconcile", "schedule": env_int("CELLSEARCH_RECONCILE_SECONDS", 30)},
    "transfers-reconcile": {"task": "transfers.reconcile", "schedule": env_int("CELLSEARCH_RECONCILE_SECONDS", 30)},
}

# A running trial's worker beats at most this often, as its training makes progress; one silent
# for HEARTBEAT_TIMEOUT is presumed dead (the reconciler queues the trial again).
CELLSEARCH_HEARTBEAT_SECONDS = env_int("CELLSEARCH_HEARTBEAT_SECONDS", 10)
CELLSEARCH_HEARTBEAT_TIMEOUT = env_int("CELLSEARCH_HEARTBEAT_TIMEOUT", 60)
# The worker kills its training process, and the attempt counts as lost, when it shows no
# progress for STALL_FACTOR x its median epoch time (between MIN_STALL_SECONDS and
# HEARTBEAT_TIMEOUT), or for STARTUP_SECONDS before its first training step.
CELLSEARCH_STALL_FACTOR = env_int("CELLSEARCH_STALL_FACTOR", 5)
# Threads per training on a gpu worker; 0: the machine's cores shared among the worker's
# concurrency (celery -c), whatever OMP_NUM_THREADS says (searchcore.runner.threads_per_child).
CELLSEARCH_THREADS_PER_CHILD = env_int("CELLSEARCH_THREADS_PER_CHILD", 0)
# Trials each search keeps asked beyond its parallelism ("ready"), queued the moment one of its
# trials ends, so that no worker waits for a control step between trials (searches.services.
# control); 0 asks only on need: each trial then sees every result but those in flight.
CELLSEARCH_TRIALS_AHEAD = env_int("CELLSEARCH_TRIALS_AHEAD", 1)
CELLSEARCH_MIN_STALL_SECONDS = env_int("CELLSEARCH_MIN_STALL_SECONDS", 30)
CELLSEARCH_STARTUP_SECONDS = env_int("CELLSEARCH_STARTUP_SECONDS", 600)
# A pending trial queued this long ago with no message left in the gpu queue is sent again
# (Redis lost it); a trial whose training process crashed, hung or lost its worker this many
# times is marked failed.
CELLSEARCH_PENDING_TIMEOUT = env_int("CELLSEARCH_PENDING_TIMEOUT", 600)
CELLSEARCH_MAX_ATTEMPTS = env_int("CELLSEARCH_MAX_ATTEMPTS", 3)
CELLSEARCH_DATA_ROOT = env_str("CELLSEARCH_DATA_ROOT", str(VAR_DIR / "data"))
# Whether launching a search checks that CELLSEARCH_DATA_ROOT/<dataset> holds the files its
# loader reads; turn it off where the web host does not see the workers' data.
CELLSEARCH_CHECK_DATA_FILES = env_bool("CELLSEARCH_CHECK_DATA_FILES", True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("DJANGO_LOG_LEVEL", "INFO")},
}
