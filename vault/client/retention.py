"""Retention, legal holds and crypto-shredding calls of ``vault.Client`` (issue 15, part 6;
docs/decisions/0019-retention-and-shredding.md).

A shred is asked for by a manager or DSL of the child (``request_shred``), approved by a
second one (``approve_shred``), waits (30 days by default, cancellable with
``cancel_shred``), and is then carried out by the key service, which signs a certificate.
``shred_certificate`` fetches it and verifies it against the service key you pinned
(``service_signing_key``, kept somewhere the service cannot change); ``verify_certificate``
does the same offline from saved bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from vault.client import wire
from vault.client.fields import Fields
from vault.client.transport import KeyServiceTransport
from vault.shred import ShredCertificate, read_certificate


@dataclass(frozen=True)
class DueItem:
    """A record (``kind`` record) or a whole child (``kind`` child) whose retention is over."""

    kind: str
    record_id: str | None
    child_id: str | None
    child_ids: tuple[str, ...]
    category: str | None
    rule: str
    due_on: date
    on_hold: bool
    shred_open: bool


@dataclass(frozen=True)
class ShredRequest:
    """A shred as the service reports it. ``records``/``versions``: what it destroys, counted
    when it was asked for (or in a dry run, when ``shred_id`` is None)."""

    shred_id: str | None
    target: str
    record_id: str | None
    child_id: str | None
    child_ids: tuple[str, ...]
    reason: str
    state: str
    requested_by: str
    requested_at: datetime
    approved_by: str | None
    not_before: datetime | None
    cancel_reason: str | None
    done_at: datetime | None
    records: int | None
    versions: int | None


@dataclass(frozen=True)
class SignedCertificate:
    """A shred certificate's exact signed bytes, its signature, and what it says."""

    statement: bytes
    signature: bytes
    certificate: ShredCertificate


def _due(body: object) -> DueItem:
    fields = Fields(body, "a retention item")
    return DueItem(
        kind=fields.text("kind"),
        record_id=fields.opt_text("record_id"),
        child_id=fields.opt_text("child_id"),
        child_ids=fields.texts("child_ids"),
        category=fields.opt_text("category"),
        rule=fields.text("rule"),
        due_on=date.fromisoformat(fields.text("due_on")),
        on_hold=fields.flag("on_hold", default=False),
        shred_open=fields.flag("shred_open", default=False),
    )


def _shred(body: object) -> ShredRequest:
    fields = Fields(body, "a shred request")
    return ShredRequest(
        shred_id=fields.opt_text("shred_id"),
        target=fields.text("target"),
        record_id=fields.opt_text("record_id"),
        child_id=fields.opt_text("child_id"),
        child_ids=fields.texts("child_ids"),
        reason=fields.text("reason"),
        state=fields.text("state"),
        requested_by=fields.text("requested_by"),
        requested_at=fields.time("requested_at"),
        approved_by=fields.opt_text("approved_by"),
        not_before=fields.opt_time("not_before"),
        cancel_reason=fields.opt_text("cancel_reason"),
        done_at=fields.opt_time("done_at"),
        records=fields.opt_integer("records"),
        versions=fields.opt_integer("versions"),
    )


def verify_certificate(service_key: bytes, statement: bytes, signature: bytes) -> SignedCertificate:
    """Verify a saved certificate offline against the pinned service key; ``ValueError`` if
    it does not verify."""
    return SignedCertificate(
        statement, signature, read_certificate(service_key, statement, signature)
    )


class RetentionCalls:
    """Mixed into ``Client``; every call is signed by the client's device."""

    _api: KeyServiceTransport

    def retention_due(self) -> list[DueItem]:
        """Records and children whose retention is over (admins)."""
        return self._api.get("/v1/admin/retention/due", wire.listed(_due, "retention items"))

    def set_child_dates(
        self, child_id: str, *, date_of_birth: date | None, left_on: date | None
    ) -> None:
        """A child's date of birth and leaving date (an admin, or a manager/DSL of the child);
        None clears one."""
        body = {
            "date_of_birth": date_of_birth.isoformat() if date_of_birth else None,
            "left_on": left_on.isoformat() if left_on else None,
        }
        self._api.post(f"/v1/children/{child_id}/dates", wire.nothing, body)

    def set_legal_hold(self, child_id: str, *, reason: str) -> str:
        """Put a legal hold on the child; returns its id. Nothing of the child is shredded
        while it is on."""
        return self._api.post(
            f"/v1/children/{child_id}/holds", wire.made_id("hold_id"), {"reason": reason}
        )

    def lift_legal_hold(self, hold_id: str, *, reason: str) -> None:
        self._api.post(f"/v1/holds/{hold_id}/lift", wire.nothing, {"reason": reason})

    def request_shred(
        self,
        *,
        record_id: str | None = None,
        child_id: str | None = None,
        reason: str,
        dry_run: bool = False,
    ) -> ShredRequest:
        """Ask for one record, or a whole child, to be shredded. ``dry_run``: what it would
        destroy, counted; nothing is stored."""
        body = wire.drop_none(
            {"record_id": record_id, "child_id": child_id, "reason": reason, "dry_run": dry_run}
        )
        return self._api.post("/v1/shreds", _shred, body)

    def approve_shred(self, shred_id: str) -> ShredRequest:
        return self._api.post(f"/v1/shreds/{shred_id}/approve", _shred)

    def cancel_shred(self, shred_id: str, *, reason: str) -> ShredRequest:
        return self._api.post(f"/v1/shreds/{shred_id}/cancel", _shred, {"reason": reason})

    def shreds(self) -> list[ShredRequest]:
        return self._api.get("/v1/shreds", wire.listed(_shred, "shred requests"))

    def shred(self, shred_id: str) -> ShredRequest:
        return self._api.get(f"/v1/shreds/{shred_id}", _shred)

    def service_signing_key(self) -> bytes:
        """The key that signs shred certificates and audit checkpoints, as the service says
        it is: pin it once, and verify later certificates against the pinned copy."""
        return self._api.get(
            "/v1/service/signing-key", lambda body: Fields(body, "the key").data("public_key")
        )

    def shred_certificate(self, shred_id: str, *, service_key: bytes) -> SignedCertificate:
        """The signed certificate of a shred carried out, verified against ``service_key``
        (``ValueError`` if it does not verify)."""
        fields = self._api.get(
            f"/v1/shreds/{shred_id}/certificate", lambda body: Fields(body, "a certificate")
        )
        return verify_certificate(service_key, fields.data("statement"), fields.data("signature"))
