"""The FastAPI application factory.

``create_app`` migrates the database to the newest schema, opens the root key provider, the
blob store and the service's own key files, and mounts the API (docs/API.md).
"""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from keyservice import problems
from keyservice.accesslog import redact_blob_tokens
from keyservice.api import ROUTERS
from keyservice.audit import offsite
from keyservice.audit.head import authentic_head
from keyservice.audit.mac import AuditMac
from keyservice.audit.timer import checkpoints_on_time
from keyservice.auth.nonces import ReplayCache
from keyservice.bodylimit import BodyLimit
from keyservice.catalog.child_keys import ChildKeyCache
from keyservice.datadir import private_dir
from keyservice.db import make_engine, upgrade_to_head
from keyservice.jobs import JobRunner, jobs_on_time
from keyservice.keyfiles import load_or_create_secret
from keyservice.keys import RootKeyProvider, open_root_key
from keyservice.ops import routes as ops_routes
from keyservice.ops.metrics import CountedRejections, Metrics
from keyservice.ops.observe import Observe
from keyservice.policy.retention import parse_rules
from keyservice.ratelimit import RejectionLimit
from keyservice.rejection_audit import rejections_on_time
from keyservice.settings import Settings, get_settings
from keyservice.shred_timer import shreds_on_time
from keyservice.state import ServiceState
from vault.storage import LocalDirectoryStore, TokenSigner, make_blob_store


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_state(settings: Settings, *, root: RootKeyProvider | None = None) -> ServiceState:
    """Open everything the service needs; the CLI commands use this too."""
    private_dir(settings.data_dir)
    parse_rules(settings.retention)  # a bad CAREVAULT_RETENTION refuses to start, named
    engine = make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    upgrade_to_head(engine)
    root = root or open_root_key(settings)
    token_key = load_or_create_secret(settings.token_key_file)
    audit_key = Ed25519PrivateKey.from_private_bytes(load_or_create_secret(settings.audit_key_file))
    audit_mac = AuditMac(load_or_create_secret(settings.audit_mac_key_file))
    # New entries must not be chained onto one this key cannot verify (decision 0009).
    authentic_head(engine, audit_mac)
    blob_store = make_blob_store(
        settings.blob_store,
        s3_endpoint_url=settings.s3_endpoint_url,
        public_url=settings.public_url,
        token_key=token_key,
    )
    return ServiceState(
        settings=settings,
        engine=engine,
        root=root,
        blobs=blob_store,
        audit_key=audit_key,
        audit_mac=audit_mac,
        checkpoints=offsite.open_store(settings, token_key=token_key),
        child_keys=ChildKeyCache(root, ttl=settings.child_key_cache_seconds),
        replay_cache=ReplayCache(),
        rejections=CountedRejections(
            window_s=settings.reject_window_seconds,
            limit=settings.reject_limit,
            audit_each=settings.reject_audit_each,
        ),
        clock=utc_now,
        blob_tokens=TokenSigner(token_key) if isinstance(blob_store, LocalDirectoryStore) else None,
    )


def create_app(settings: Settings | None = None, *, state: ServiceState | None = None) -> FastAPI:
    state = state or build_state(settings or get_settings())
    runner = JobRunner(state)
    app = FastAPI(
        title="Carevault key service",
        version="0.1.0",
        # Timed audit checkpoints, due shreds and the rotation job runner run while the
        # application does.
        lifespan=lambda _app: jobs_on_time(
            state,
            within=shreds_on_time(
                state, within=rejections_on_time(state, within=checkpoints_on_time(state))
            ),
            runner=runner,
        ),
    )
    metrics = Metrics(state)
    app.state.service = state
    app.state.jobs = runner
    app.state.metrics = metrics
    problems.install(app)
    app.add_middleware(BodyLimit)
    app.add_middleware(RejectionLimit, ledger=state.rejections)
    # Outermost: every answer, the limits' 413 and 429 included, gets a request id, an access
    # line and its count (docs/OPERATIONS.md).
    app.add_middleware(Observe, metrics=metrics)
    redact_blob_tokens()
    app.include_router(ops_routes.router)

    @app.get("/v1/noop")
    def noop() -> dict[str, str]:
        """Unauthenticated no-op: the HTTP floor that benchmarks compare key release against."""
        return {"status": "ok"}

    for router in ROUTERS:
        app.include_router(router)
    return app
