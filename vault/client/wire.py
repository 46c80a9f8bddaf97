"""The JSON of docs/API.md, parsed once into the SDK's typed models, and back (times, optional
fields).

Every parser takes a decoded JSON answer and returns a frozen dataclass of
``vault.client.models``, or raises ``MalformedAnswer`` naming what is missing or of the wrong
type; the transport turns that into a ``KeyServiceError`` that names the request. Nothing past
these parsers sees a dict of the service's answer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from vault.client.fields import Fields, MalformedAnswer
from vault.client.models import (
    Child,
    DeviceInfo,
    Disclosure,
    Enrolled,
    EnrolmentCode,
    ExpectedCiphertext,
    GrantedKey,
    IssuedCode,
    ListedVersion,
    Me,
    MultipartUpload,
    NewVersion,
    Notification,
    Offboarded,
    Proposal,
    Release,
    SealedKey,
    Share,
    ShareItem,
    ShareOpening,
    SingleUpload,
    UploadPlan,
)
from vault.format import (
    DIGEST_ALGS,
    DIGEST_SIZE,
    Category,
    CiphertextDigest,
    FormatError,
    RecordAttributes,
)

T = TypeVar("T")


def wire_time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def drop_none(body: dict[str, object]) -> dict[str, object]:
    return {name: value for name, value in body.items() if value is not None}


def listed(parse: Callable[[object], T], what: str) -> Callable[[object], list[T]]:
    """A parser of a JSON list whose items ``parse`` reads."""

    def parse_list(body: object) -> list[T]:
        if not isinstance(body, list):
            raise MalformedAnswer(f"the list of {what} is not a JSON list")
        return [parse(item) for item in body]

    return parse_list


def nothing(body: object) -> None:
    """For an answer whose body the SDK does not use (a 204, or an id it does not need)."""
    return None


def made_id(name: str) -> Callable[[object], str]:
    """A parser of ``{name: id}``, the answer to something made at once."""

    def parse(body: object) -> str:
        return Fields(body, "the answer").text(name)

    return parse


# --- people, children and the device itself ---------------------------------------------------


def enrolled(body: object) -> Enrolled:
    fields = Fields(body, "the enrolment")
    return Enrolled(
        principal_id=fields.text("principal_id"),
        device_id=fields.text("device_id"),
        audience=fields.text("audience"),
    )


def me(body: object) -> Me:
    fields = Fields(body, "the caller")
    return Me(
        principal_id=fields.text("principal_id"),
        device_id=fields.text("device_id"),
        kind=fields.text("kind"),
        display_name=fields.text("display_name"),
        roles=fields.texts("roles", optional=True),
        organisation=fields.opt_text("organisation"),
    )


def child(body: object) -> Child:
    fields = Fields(body, "a child")
    return Child(
        child_id=fields.text("child_id"),
        display_name=fields.text("display_name"),
        room=fields.opt_text("room"),
        relation=fields.text("relation"),
    )


def enrolment_code(body: object) -> EnrolmentCode:
    fields = Fields(body, "the enrolment code")
    return EnrolmentCode(code=fields.text("code"), expires_at=fields.time("expires_at"))


def offboarded(body: object) -> Offboarded:
    fields = Fields(body, "the offboarding")
    return Offboarded(
        principal_id=fields.text("principal_id"),
        dry_run=fields.flag("dry_run", default=False),
        roles=fields.texts("roles"),
        assignments_ended=fields.texts("assignments_ended"),
        devices_revoked=fields.texts("devices_revoked"),
        codes_voided=fields.integer("codes_voided"),
        proposals_cancelled=fields.texts("proposals_cancelled"),
        shares_kept=fields.integer("shares_kept"),
        announced_to=fields.texts("announced_to"),
    )


def proposal(body: object) -> Proposal:
    fields = Fields(body, "a proposal")
    code = fields.opt_text("enrolment_code")
    code_expires = fields.opt_time("code_expires_at")
    return Proposal(
        proposal_id=fields.text("proposal_id"),
        action=fields.text("action"),
        state=fields.text("state"),
        child_id=fields.opt_text("child_id"),
        beneficiary_id=fields.opt_text("beneficiary_id"),
        beneficiary_vouched_by=fields.texts("beneficiary_vouched_by", optional=True),
        payload=fields.mapping("payload"),
        proposed_by=fields.text("proposed_by"),
        proposed_device=fields.opt_text("proposed_device"),
        proposed_at=fields.time("proposed_at"),
        expires_at=fields.time("expires_at"),
        decided_by=fields.opt_text("decided_by"),
        decided_device=fields.opt_text("decided_device"),
        decided_at=fields.opt_time("decided_at"),
        result_id=fields.opt_text("result_id"),
        reason=fields.opt_text("reason"),
        enrolment_code=(
            EnrolmentCode(code=code, expires_at=code_expires) if code and code_expires else None
        ),
        enrolment_codes=tuple(
            IssuedCode(
                line=c.integer("line"),
                principal_id=c.text("principal_id"),
                display_name=c.text("display_name"),
                code=EnrolmentCode(code=c.text("code"), expires_at=c.time("expires_at")),
            )
            for c in (
                fields.items("enrolment_codes", "an enrolment code")
                if "enrolment_codes" in fields.whole()
                else []
            )
        ),
    )


def device(body: object) -> DeviceInfo:
    fields = Fields(body, "a device")
    return DeviceInfo(
        device_id=fields.text("device_id"),
        name=fields.text("name"),
        created_at=fields.time("created_at"),
        revoked_at=fields.opt_time("revoked_at"),
        origin=fields.text("origin"),
        approved_by=fields.opt_text("approved_by"),
        current=fields.flag("current", default=False),
    )


def notification(body: object) -> Notification:
    fields = Fields(body, "a notification")
    return Notification(
        notification_id=fields.text("notification_id"),
        at=fields.time("at"),
        kind=fields.text("kind"),
        detail=fields.mapping("detail"),
    )


def disclosure(body: object) -> Disclosure:
    fields = Fields(body, "a disclosure")
    return Disclosure(
        at=fields.time("at"),
        decision=fields.opt_text("decision") or "",
        principal_id=fields.opt_text("principal_id") or "",
        principal_name=fields.opt_text("principal_name"),
        record_id=fields.opt_text("record_id"),
        version=fields.opt_integer("version"),
        basis=fields.opt_text("basis"),
        detail=fields.whole(),
    )


# --- records and their keys ----------------------------------------------------------------


def _attributes(fields: Fields) -> RecordAttributes:
    try:
        return RecordAttributes.from_hex(
            record_id=fields.text("record_id"),
            version=fields.integer("version"),
            child_ids=fields.texts("child_ids"),
            category=fields.text("category"),
        )
    except FormatError as exc:
        raise MalformedAnswer(f"a record's attributes are not valid: {exc}") from exc


def _sealed_key(fields: Fields) -> SealedKey:
    return SealedKey(
        attributes=_attributes(fields.obj("attributes")), sealed=fields.data("sealed_key")
    )


def _upload(fields: Fields) -> UploadPlan:
    method = fields.text("method")
    if method == "single":
        return SingleUpload(url=fields.text("url"))
    if method != "multipart":
        raise MalformedAnswer(f"the key service asked for an unknown upload method {method!r}")
    part_size = fields.integer("part_size")
    part_urls = fields.texts("part_urls")
    if part_size < 1 or not part_urls:
        raise MalformedAnswer("the multipart upload plan has no parts")
    return MultipartUpload(part_size=part_size, part_urls=part_urls)


def new_version(body: object) -> NewVersion:
    fields = Fields(body, "the new record version")
    return NewVersion(
        ephemeral_public=fields.data("ephemeral_public"),
        key=_sealed_key(fields),
        upload=_upload(fields.obj("upload")),
    )


def _committed_ciphertext(fields: Fields) -> ExpectedCiphertext:
    """The committed size and digest (and its algorithm) a granted release item must carry.

    A release without them is a key service breaking the API, not a reason to skip the
    check: without them a blob replaced after commit would go unnoticed.
    """
    lacking = MalformedAnswer(
        "the key service released a record key without the ciphertext's committed size and "
        "digest; update the key service, or ask its operator to"
    )
    try:
        size, digest = fields.integer("ciphertext_size"), fields.data("ciphertext_digest")
        alg = fields.text("ciphertext_digest_alg")
    except MalformedAnswer as exc:
        raise lacking from exc
    if size < 1 or len(digest) != DIGEST_SIZE:
        raise lacking
    if alg not in DIGEST_ALGS:
        raise MalformedAnswer(
            f"the key service named a ciphertext digest this SDK does not know ({alg[:20]!r}); "
            "update the SDK"
        )
    return ExpectedCiphertext(size=size, digest=CiphertextDigest(alg, digest))


def _granted(fields: Fields) -> GrantedKey | None:
    status = fields.text("status")
    if status == "denied":
        return None
    if status != "granted":
        raise MalformedAnswer(f"a release item has the unknown status {status!r}")
    return GrantedKey(
        key=_sealed_key(fields),
        ciphertext=_committed_ciphertext(fields),
        encrypted_metadata=fields.opt_data("encrypted_metadata"),
        download_url=fields.opt_text("download_url"),
        inline=fields.opt_data("ciphertext"),
    )


def release(body: object) -> Release:
    fields = Fields(body, "the key release")
    granted = (_granted(item) for item in fields.items("results", "a release item"))
    return Release(
        ephemeral_public=fields.data("ephemeral_public"),
        granted=tuple(item for item in granted if item is not None),
    )


def listed_version(body: object) -> ListedVersion:
    fields = Fields(body, "a listed record version")
    try:
        category = Category(fields.text("category"))
    except ValueError as exc:
        raise MalformedAnswer("a listed record version has an unknown category") from exc
    return ListedVersion(
        record_id=fields.text("record_id"),
        version=fields.integer("version"),
        category=category,
        child_ids=fields.texts("child_ids"),
        withheld_from_guardians=fields.flag("withheld_from_guardians", default=False),
        encrypted_metadata=fields.data("encrypted_metadata"),
        created_at=fields.time("created_at"),
        created_by=fields.text("created_by"),
    )


# --- shares to outside recipients ------------------------------------------------------------


def _share_item(fields: Fields) -> ShareItem:
    return ShareItem(
        record_id=fields.text("record_id"),
        version=fields.integer("version"),
        used=fields.integer("used"),
        remaining=fields.opt_integer("remaining"),
        ciphertext_size=fields.opt_integer("ciphertext_size"),
    )


def _invitation(fields: Fields) -> EnrolmentCode | None:
    """The one-time code of a recipient the share invited, when the answer carries one."""
    if fields.whole().get("invitation") is None:
        return None
    invitation = fields.obj("invitation")
    return EnrolmentCode(code=invitation.text("code"), expires_at=invitation.time("expires_at"))


def share(body: object) -> Share:
    """A share as docs/API.md describes it; fields this client does not know are ignored, so
    a newer key service's additions do not break it."""
    fields = Fields(body, "a share")
    return Share(
        share_id=fields.text("share_id"),
        recipient_id=fields.text("recipient_id"),
        basis=fields.text("basis"),
        basis_id=fields.text("basis_id"),
        child_id=fields.text("child_id"),
        purpose=fields.text("purpose"),
        created_by=fields.text("created_by"),
        created_at=fields.time("created_at"),
        valid_from=fields.time("valid_from"),
        valid_to=fields.time("valid_to"),
        download_cap=fields.opt_integer("download_cap"),
        state=fields.text("state"),
        revoked_at=fields.opt_time("revoked_at"),
        revoked_by=fields.opt_text("revoked_by"),
        revoke_reason=fields.opt_text("revoke_reason"),
        items=tuple(_share_item(item) for item in fields.items("items", "a share item")),
        status=fields.opt_text("status"),
        invitation=_invitation(fields),
        opened_at=fields.opt_time("opened_at"),
        acknowledged_at=fields.opt_time("acknowledged_at"),
        acknowledged_device=fields.opt_text("acknowledged_device"),
        ack_due=fields.opt_time("ack_due"),
        overdue=fields.flag("overdue", default=False),
    )


def share_opening(body: object) -> ShareOpening:
    """A share opened to download, with the release of its first items (if any)."""
    fields = Fields(body, "a share opening")
    if fields.whole().get("release") is None:
        return ShareOpening(share=share(fields.whole().get("share")), release=None, asked=())
    released = fields.obj("release")
    asked = tuple(
        (item.text("record_id"), item.integer("version"))
        for item in released.items("results", "a release item")
    )
    return ShareOpening(
        share=share(fields.whole().get("share")),
        release=release(released.whole()),
        asked=asked,
    )


children = listed(child, "children")
proposals = listed(proposal, "proposals")
devices = listed(device, "devices")
notifications = listed(notification, "notifications")
disclosures = listed(disclosure, "disclosures")
listed_versions = listed(listed_version, "record versions")
shares = listed(share, "shares")
