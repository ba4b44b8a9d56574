"""Configuration defaults; overridden by BIOBANK_* variables, the instance file, then tests."""

from __future__ import annotations


class Config:
    #: SQLAlchemy URL; empty means SQLite in the instance folder (the embedded default)
    DATABASE_URL = ""
    #: set from the environment or the instance file; a random one is kept in the instance folder
    SECRET_KEY = ""
    #: PostgreSQL: a pooled connection that sat unused for longer than this many seconds is
    #: checked (one round trip) before a request gets it, and replaced if the server dropped
    #: it; one used more recently is handed over as it is (0: check every time)
    DATABASE_PING_AFTER_IDLE_SECONDS = 1.0
    SESSION_COOKIE_HTTPONLY = True
    #: the session cookie travels over HTTPS only (and answers carry HSTS); `serve --demo`
    #: turns it off for the embedded demo on plain HTTP
    SESSION_COOKIE_SECURE = True
    SESSION_COOKIE_SAMESITE = "Lax"
    #: a signed-in browser is signed out after this many minutes without a request
    SESSION_IDLE_MINUTES = 60
    #: failed logins before an account is locked, and for how long (seconds)
    LOGIN_MAX_FAILURES = 5
    LOGIN_LOCK_SECONDS = 15 * 60
    #: longest query string an API GET may carry (filters go in POST bodies beyond it)
    MAX_QUERY_STRING_BYTES = 64 * 1024
    #: the dashboard's and the storage overview's counts are kept this many seconds per site
    #: scope (0: counted on every visit); the pages say when they were counted
    SUMMARY_CACHE_SECONDS = 30
    #: largest page a list endpoint returns
    API_MAX_PAGE_SIZE = 1000
    API_DEFAULT_PAGE_SIZE = 100
    #: digits of the sequence number in issued barcodes (site + material + number + 2 checks)
    BARCODE_SEQUENCE_WIDTH = 7
    #: the custody key: every custody event's digest and every checkpoint is an HMAC under
    #: it; keep it outside the database. When empty, one is generated into the instance
    #: folder (`custody_key`; `biobank custody rotate-key` replaces it).
    CUSTODY_KEY = ""
    #: earlier custody keys (comma-separated), so that what they signed still verifies
    CUSTODY_RETIRED_KEYS = ""
    #: folder of the append-only file of custody checkpoints kept outside the database (a
    #: volume the database's administrators cannot write); empty: the instance folder's
    #: ``custody-checkpoints``
    CUSTODY_CHECKPOINT_DIR = ""
    #: other LIMS instances that keep and countersign this one's custody checkpoints:
    #: ``URL=TOKEN`` entries, comma-separated (a token of a manager account there)
    CUSTODY_WITNESSES = ""
    #: how this instance names itself to its witnesses (default: the host name)
    INSTANCE_NAME = ""
    #: scan station: a key pressed alone, with no other keystroke within this many
    #: milliseconds and no Enter, is an action key; faster keys are a scanner typing a code.
    #: Raise it for scanners that type slowly (some Bluetooth ones).
    SCAN_KEY_WINDOW_MS = 50
    #: no custody event (scan) may be dated before this day (ISO date): a scanner whose
    #: clock fell back to 1900 is refused instead of recorded
    CUSTODY_EARLIEST_DATE = "2000-01-01"
    #: Celery broker (redis://… or amqp://…); empty runs background tasks in-process
    CELERY_BROKER_URL = ""
    CELERY_RESULT_BACKEND = ""
    #: how often the beat scheduler signs a custody checkpoint
    CUSTODY_CHECKPOINT_MINUTES = 15
    #: where uploaded import files wait for their job (a volume the workers share); empty:
    #: the instance folder's ``imports`` directory
    IMPORT_DIR = ""
    #: time zone of dates and times written without one in import files
    IMPORT_TIMEZONE = "UTC"
    #: largest import upload accepted by the API, in bytes
    IMPORT_MAX_BYTES = 2 * 1024**3
    #: largest image (a whole-slide image included) and omics file (a BAM) uploads, in bytes
    IMAGE_MAX_BYTES = 8 * 1024**3
    OMICS_MAX_BYTES = 64 * 1024**3
    #: largest request body anywhere else (JSON, forms), in bytes; uploads have the limits
    #: above (UPLOAD_LIMITS names the upload operations and their setting)
    MAX_CONTENT_LENGTH = 16 * 1024**2
    UPLOAD_LIMITS = {
        "imports.ImportViews": "IMPORT_MAX_BYTES",
        "images.ImagesView": "IMAGE_MAX_BYTES",
        "omics.OmicsFileViews": "OMICS_MAX_BYTES",
    }
    #: a running import job tells the database it is alive this often (PostgreSQL), and a
    #: job on another host silent for IMPORT_STALE_MINUTES is taken as interrupted when a
    #: server or worker starts (on the same host, a job whose process is gone is at once)
    IMPORT_HEARTBEAT_SECONDS = 30
    IMPORT_STALE_MINUTES = 10
    #: where images are stored by SHA-256 (a volume the web and workers share); empty: the
    #: instance folder's ``images`` directory
    IMAGE_STORAGE_ROOT = ""
    #: PostgreSQL work_mem of a cohort query's counting statement, in MB: each clause's key
    #: set must fit in one hash table
    QUERY_WORK_MEM_MB = 128
    #: how long an approved request gives its researcher the bytes of its snapshot's omics
    #: files and images (days from the approving signature)
    DATA_ACCESS_DAYS = 365
    #: researchers' counts: below COUNT_SMALL_CELL shown as "<5", the others rounded to the
    #: nearest COUNT_ROUNDING_BASE, so answers cannot be differenced into small counts
    COUNT_SMALL_CELL = 5
    COUNT_ROUNDING_BASE = 5
    #: GA4GH Beacon v2 (/beacon/v2): callers without credentials get a yes or no when on
    BEACON_ANONYMOUS = True
    #: the beacon's id in the network (a reversed domain name), its name and organisation
    BEACON_ID = "org.biobank-lims.beacon"
    BEACON_NAME = "Biobank LIMS beacon"
    BEACON_ORGANIZATION_ID = "org.biobank-lims"
    BEACON_ORGANIZATION_NAME = "Biobank LIMS"
    #: DEV, TEST or PROD (Beacon's maturity attribute)
    BEACON_ENVIRONMENT = "PROD"
    #: MIABIS on FHIR and the BBMRI-ERIC Directory (`biobank export miabis`): the biobank's
    #: Directory id, name, ISO 3166 country, contact and juristic person
    MIABIS_BIOBANK_ID = ""
    MIABIS_BIOBANK_NAME = ""
    MIABIS_COUNTRY = ""
    MIABIS_CONTACT_NAME = ""
    MIABIS_CONTACT_SURNAME = ""
    MIABIS_CONTACT_EMAIL = ""
    MIABIS_JURISTIC_PERSON = ""
    MIABIS_DESCRIPTION = ""
    #: seed of the demo biobank generator
    DEMO_SEED = 20261123

    API_TITLE = "Biobank LIMS"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/api"
    OPENAPI_JSON_PATH = "v1/openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "docs"
    #: Swagger UI's scripts and styles are served by the LIMS itself (from the
    #: swagger-ui-bundle package), so the documentation works without internet access
    OPENAPI_SWAGGER_UI_URL = "/api/docs/assets/"
    API_SPEC_OPTIONS = {
        "info": {
            "description": (
                "REST API of the biobank LIMS. Authenticate with `Authorization: Bearer <token>` "
                "(create one with `biobank create-token`). Errors are RFC 9457 problem details. "
                "Lists use keyset pagination: follow the `Link: rel=next` header or pass the "
                "`X-Next-Cursor` value as `after`."
            )
        },
        "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearerAuth": []}],
    }
