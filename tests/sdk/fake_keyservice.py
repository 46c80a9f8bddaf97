"""A small stand-in for the key service and its blob URLs, for unit tests of the SDK only.

It speaks the wire contract of docs/API.md closely enough to drive ``vault.Client``: it seals
record keys to the requesting device with ``vault.sealing`` under the request's signature
nonce, hands out blob URLs it serves itself (with HTTP Range), checks commits against the
stored bytes, and releases keys only to the creator, each with the committed size and
digest. Changes that give read rights answer 202 with a proposal, as the real service does;
anyone but the proposer may approve one here. It does not verify signatures or apply the
policy; the end-to-end tests in tests/e2e run the real service for that.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx

from vault.format import RecordAttributes
from vault.sealing import seal_batch
from vault.signing import request_nonce, sealing_context

BASE = "http://keyservice.test"
NOW = "2026-11-22T18:00:00Z"
LATER = "2026-12-06T18:00:00Z"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _problem(status: int, title: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={"type": "about:blank", "title": title, "status": status, "detail": title},
        headers={"Content-Type": "application/problem+json"},
    )


@dataclass
class Version:
    attributes: RecordAttributes
    record_key: bytes
    blob_id: str
    expected_size: int
    creator: str
    withheld: bool
    committed: bool = False
    encrypted_metadata: str = ""
    ciphertext_size: int = 0
    ciphertext_sha256: str = ""


@dataclass
class FakeKeyService:
    """State of the fake: devices, children, record versions and blobs."""

    multipart_part_size: int | None = None
    devices: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    codes: dict[str, str] = field(default_factory=dict)
    children: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[tuple[str, int], Version] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    parts: dict[str, dict[int, bytes]] = field(default_factory=dict)
    blob_puts: int = 0
    proposals: dict[str, dict[str, Any]] = field(default_factory=dict)
    court_orders: dict[str, str] = field(default_factory=dict)
    notifications: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: int = 0

    def add_principal(self, principal: str | None = None) -> str:
        """A one-time code for ``principal`` (a new one by default)."""
        code = secrets.token_hex(4)
        self.codes[code] = principal or secrets.token_hex(16)
        return code

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    # --- routing ----------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        self.requests += 1
        if path.startswith("/blobs/"):
            return self._blob(request, path.removeprefix("/blobs/"))
        body = json.loads(request.content) if request.content else {}
        if path == "/v1/enrol":
            return self._enrol(body)
        device = request.headers.get("Signature-Input", "")
        match = re.search(r'keyid="([0-9a-f]{32})"', device)
        if not match or match.group(1) not in self.devices:
            return _problem(401, "authentication failed")
        principal, receiving = self.devices[match.group(1)]
        context = sealing_context(match.group(1), request_nonce(request))
        if path == "/v1/me":
            return httpx.Response(
                200,
                json={
                    "principal_id": principal,
                    "device_id": match.group(1),
                    "kind": "staff",
                    "display_name": "Test Educator",
                    "roles": ["educator"],
                    "organisation": None,
                },
            )
        if path == "/v1/children":
            return httpx.Response(200, json=list(self.children.values()))
        if path == "/v1/records" and method == "POST":
            return self._create(body, principal, receiving, context, record_id=None)
        if m := re.fullmatch(r"/v1/records/([0-9a-f]{32})/versions", path):
            if method == "POST":
                return self._create(body, principal, receiving, context, record_id=m.group(1))
            return self._history(m.group(1), principal)
        if m := re.fullmatch(r"/v1/records/([0-9a-f]{32})/versions/(\d+)/commit", path):
            return self._commit(m.group(1), int(m.group(2)), body, principal)
        if m := re.fullmatch(r"/v1/children/([0-9a-f]{32})/records", path):
            return self._list(m.group(1), principal)
        if path == "/v1/keys/release":
            return self._release(body, principal, receiving, context)
        if (m := re.fullmatch(r"/v1/records/([0-9a-f]{32})", path)) and method == "DELETE":
            for key in [k for k in self.versions if k[0] == m.group(1)]:
                del self.versions[key]
            return httpx.Response(204)
        if path == "/v1/admin/children":
            child_id = secrets.token_hex(16)
            self.children[child_id] = {
                "child_id": child_id,
                "display_name": body["display_name"],
                "room": body.get("room"),
                "relation": "assigned",
            }
            return httpx.Response(201, json={"child_id": child_id})
        if path == "/v1/admin/principals":
            # Adding people is refused (a problem for the tests of errors); proposing an
            # admin, which only a second person can make happen, is taken.
            if "admin" not in body.get("roles", []):
                return _problem(403, "only an admin may add people")
            return self._propose("admin.create", body, principal, None, None)
        if found := self._relationships(path, method, body, principal):
            return found
        if found := self._approvals(path, body, principal, match.group(1)):
            return found
        return self._own(path, principal, match.group(1))

    # --- proposals and relationships ---------------------------------------------------------

    def _propose(
        self,
        action: str,
        payload: dict[str, Any],
        principal: str,
        child_id: str | None,
        beneficiary_id: str | None,
    ) -> httpx.Response:
        proposal_id = secrets.token_hex(16)
        self.proposals[proposal_id] = {
            "proposal_id": proposal_id,
            "action": action,
            "state": "pending",
            "child_id": child_id,
            "beneficiary_id": beneficiary_id,
            "beneficiary_vouched_by": [],
            "payload": payload,
            "proposed_by": principal,
            "proposed_device": None,
            "proposed_at": NOW,
            "expires_at": LATER,
            "decided_by": None,
            "decided_device": None,
            "decided_at": None,
            "result_id": None,
            "reason": None,
            "enrolment_code": None,
            "code_expires_at": None,
        }
        return httpx.Response(202, json=self.proposals[proposal_id])

    def _relationships(
        self, path: str, method: str, body: dict[str, Any], principal: str
    ) -> httpx.Response | None:
        if path == "/v1/admin/assignments":
            return self._propose(
                "assignment.create", body, principal, body["child_id"], body["staff_id"]
            )
        if path == "/v1/admin/guardianships":
            return self._propose(
                "guardianship.create", body, principal, body["child_id"], body["guardian_id"]
            )
        if path == "/v1/consents":
            if body["given_by"] == principal:
                return httpx.Response(201, json={"consent_id": secrets.token_hex(16)})
            return self._propose(
                "consent.create", body, principal, body["child_id"], body["recipient_id"]
            )
        if path == "/v1/court-orders":
            if body["effect"] == "disclose":
                return self._propose(
                    "court_order.create", body, principal, body["child_id"], body["subject_id"]
                )
            order_id = secrets.token_hex(16)
            self.court_orders[order_id] = body["subject_id"]
            return httpx.Response(201, json={"court_order_id": order_id})
        if m := re.fullmatch(r"/v1/court-orders/([0-9a-f]{32})/end", path):
            subject = self.court_orders.pop(m.group(1), None)
            if subject is None:
                return httpx.Response(204)
            payload = {"court_order_id": m.group(1), **body}
            return self._propose("court_order.end", payload, principal, None, subject)
        if m := re.fullmatch(r"/v1/admin/principals/([0-9a-f]{32})/enrolment-codes", path):
            if any(owner == m.group(1) for owner, _ in self.devices.values()):
                payload = {"principal_id": m.group(1)}
                return self._propose("device.enrol", payload, principal, None, m.group(1))
            return self._code(m.group(1), 201)
        if re.fullmatch(r"/v1/(guardianships|consents)/[0-9a-f]{32}/(end|withdraw)", path):
            return httpx.Response(204)
        return None

    def _code(self, principal: str, status: int) -> httpx.Response:
        code = self.add_principal(principal)
        return httpx.Response(status, json={"code": code, "expires_at": LATER})

    def _approvals(
        self, path: str, body: dict[str, Any], principal: str, device_id: str
    ) -> httpx.Response | None:
        if path == "/v1/proposals":
            return httpx.Response(200, json=list(self.proposals.values()))
        m = re.fullmatch(r"/v1/proposals/([0-9a-f]{32})(/approve|/reject)?", path)
        if m is None:
            return None
        proposal = self.proposals.get(m.group(1))
        if proposal is None or (m.group(2) and proposal["state"] != "pending"):
            return _problem(404, "no pending proposal with this id that you may decide")
        if m.group(2) is None:
            return httpx.Response(200, json=proposal)
        own = proposal["proposed_by"] == principal
        if m.group(2) == "/reject":
            proposal["state"] = "cancelled" if own else "rejected"
        elif own:
            return _problem(404, "no pending proposal with this id that you may decide")
        else:
            proposal["state"] = "approved"
            proposal["result_id"] = secrets.token_hex(16)
        proposal.update(
            decided_by=principal,
            decided_device=device_id,
            decided_at=NOW,
            reason=body.get("reason"),
        )
        answer = dict(proposal)
        if proposal["state"] == "approved" and proposal["action"] in (
            "admin.create",
            "device.enrol",
        ):
            person = proposal["beneficiary_id"] or proposal["result_id"]
            answer.update(enrolment_code=self.add_principal(person), code_expires_at=LATER)
        return httpx.Response(200, json=answer)

    def _own(self, path: str, principal: str, device_id: str) -> httpx.Response:
        if path == "/v1/me/enrolment-codes":
            return self._code(principal, 201)
        if path == "/v1/me/devices":
            mine = [
                {
                    "device_id": other,
                    "name": "test laptop",
                    "created_at": NOW,
                    "revoked_at": None,
                    "origin": "first",
                    "approved_by": None,
                    "current": other == device_id,
                }
                for other, (owner, _) in self.devices.items()
                if owner == principal
            ]
            return httpx.Response(200, json=mine)
        if path == "/v1/me/notifications":
            return httpx.Response(200, json=self.notifications.get(principal, []))
        if m := re.fullmatch(r"/v1/admin/devices/([0-9a-f]{32})/revoke", path):
            if self.devices.get(m.group(1), ("", b""))[0] != principal:
                return _problem(404, "no active device with this id that you may revoke")
            del self.devices[m.group(1)]
            return httpx.Response(204)
        return _problem(404, "not found")

    # --- endpoints --------------------------------------------------------------------------

    def _enrol(self, body: dict[str, Any]) -> httpx.Response:
        principal = self.codes.pop(body["code"], None)
        if principal is None:
            return _problem(401, "authentication failed")
        device_id = secrets.token_hex(16)
        self.devices[device_id] = (principal, _unb64(body["receiving_key"]))
        return httpx.Response(
            200,
            json={
                "principal_id": principal,
                "device_id": device_id,
                "kind": "staff",
                "display_name": "Test Educator",
                "roles": ["educator"],
                "audience": "test-audience",
            },
        )

    def _upload_descriptor(self, blob_id: str, size: int) -> dict[str, Any]:
        if self.multipart_part_size is None:
            return {"method": "single", "url": f"{BASE}/blobs/{blob_id}"}
        count = max(1, -(-size // self.multipart_part_size))
        self.parts[blob_id] = {}
        return {
            "method": "multipart",
            "part_size": self.multipart_part_size,
            "part_urls": [f"{BASE}/blobs/{blob_id}?part={n}" for n in range(1, count + 1)],
            "complete": f"{BASE}/blobs/{blob_id}?complete=1",
        }

    def _create(
        self,
        body: dict[str, Any],
        principal: str,
        receiving: bytes,
        context: bytes,
        *,
        record_id: str | None,
    ) -> httpx.Response:
        if record_id is None:
            record_id, version = secrets.token_hex(16), 1
        else:
            existing = [v for (r, v) in self.versions if r == record_id]
            if not existing:
                return _problem(404, "no such record")
            version = max(existing) + 1
        attributes = RecordAttributes.from_hex(
            record_id=record_id,
            version=version,
            child_ids=body["child_ids"],
            category=body["category"],
        )
        record_key = os.urandom(32)
        blob_id = secrets.token_hex(16)
        self.versions[(record_id, version)] = Version(
            attributes,
            record_key,
            blob_id,
            body["ciphertext_size"],
            principal,
            bool(body.get("withheld_from_guardians")),
        )
        batch = seal_batch(
            recipient_public=receiving,
            context=context,
            items=[(attributes.canonical(), record_key)],
        )
        return httpx.Response(
            201,
            json={
                "ephemeral_public": _b64(batch.ephemeral_public),
                "record_id": record_id,
                "version": version,
                "status": "granted",
                "attributes": self._attributes(attributes),
                "sealed_key": _b64(batch.sealed[0]),
                "upload": self._upload_descriptor(blob_id, body["ciphertext_size"]),
            },
        )

    @staticmethod
    def _attributes(attributes: RecordAttributes) -> dict[str, Any]:
        return {
            "record_id": attributes.record_id.hex(),
            "version": attributes.version,
            "child_ids": [c.hex() for c in attributes.child_ids],
            "category": str(attributes.category),
        }

    def _commit(
        self, record_id: str, version: int, body: dict[str, Any], principal: str
    ) -> httpx.Response:
        stored = self.versions.get((record_id, version))
        if stored is None or stored.creator != principal:
            return _problem(404, "no such record version")
        blob = self.blobs.get(stored.blob_id)
        if blob is None or len(blob) != body["ciphertext_size"] != stored.expected_size:
            return _problem(409, "the uploaded object is missing or has the wrong size")
        if _b64(hashlib.sha256(blob).digest()) != body["ciphertext_sha256"]:
            return _problem(409, "the uploaded object does not match its digest")
        stored.committed = True
        stored.encrypted_metadata = body["encrypted_metadata"]
        stored.ciphertext_size = body["ciphertext_size"]
        stored.ciphertext_sha256 = body["ciphertext_sha256"]
        return httpx.Response(200, json={"record_id": record_id, "version": version})

    def _listing(self, key: tuple[str, int], stored: Version) -> dict[str, Any]:
        return {
            "record_id": key[0],
            "version": key[1],
            "category": str(stored.attributes.category),
            "child_ids": [c.hex() for c in stored.attributes.child_ids],
            "withheld_from_guardians": stored.withheld,
            "encrypted_metadata": stored.encrypted_metadata,
            "created_at": "2026-11-22T18:00:00Z",
            "created_by": stored.creator,
        }

    def _list(self, child_id: str, principal: str) -> httpx.Response:
        latest: dict[str, tuple[str, int]] = {}
        for key, stored in self.versions.items():
            mine = stored.committed and bytes.fromhex(child_id) in stored.attributes.child_ids
            if mine and (key[0] not in latest or latest[key[0]][1] < key[1]):
                latest[key[0]] = key
        return httpx.Response(
            200, json=[self._listing(key, self.versions[key]) for key in latest.values()]
        )

    def _history(self, record_id: str, principal: str) -> httpx.Response:
        found = [
            self._listing(key, stored)
            for key, stored in sorted(self.versions.items())
            if key[0] == record_id and stored.committed
        ]
        if not found:
            return _problem(404, "no such record")
        return httpx.Response(200, json=found)

    def _release(
        self, body: dict[str, Any], principal: str, receiving: bytes, context: bytes
    ) -> httpx.Response:
        granted, results = [], []
        for item in body["items"]:
            key = (item["record_id"], int(item["version"]))
            stored = self.versions.get(key)
            if stored is None or not stored.committed or stored.creator != principal:
                results.append({**item, "status": "denied", "code": "unavailable"})
                continue
            granted.append((len(results), stored))
            results.append(
                {
                    **item,
                    "status": "granted",
                    "attributes": self._attributes(stored.attributes),
                    "encrypted_metadata": stored.encrypted_metadata,
                    "ciphertext_size": stored.ciphertext_size,
                    "ciphertext_sha256": stored.ciphertext_sha256,
                    **(
                        {"download_url": f"{BASE}/blobs/{stored.blob_id}"}
                        if body.get("include_urls")
                        else {}
                    ),
                }
            )
        batch = seal_batch(
            recipient_public=receiving,
            context=context,
            items=[(s.attributes.canonical(), s.record_key) for _, s in granted],
        )
        for (index, _), sealed in zip(granted, batch.sealed, strict=True):
            results[index]["sealed_key"] = _b64(sealed)
        return httpx.Response(
            200, json={"ephemeral_public": _b64(batch.ephemeral_public), "results": results}
        )

    def _blob(self, request: httpx.Request, blob_id: str) -> httpx.Response:
        params = request.url.params
        if request.method == "PUT":
            self.blob_puts += 1
            if "Content-Length" not in request.headers:
                return httpx.Response(411)
            data = request.read()
            if "part" in params:
                self.parts[blob_id][int(params["part"])] = data
                etag = hashlib.sha256(data).hexdigest()[:32]
                return httpx.Response(200, headers={"ETag": f'"{etag}"'})
            self.blobs[blob_id] = data
            return httpx.Response(200)
        if request.method == "POST" and "complete" in params:
            parts = self.parts.pop(blob_id)
            self.blobs[blob_id] = b"".join(parts[n] for n in sorted(parts))
            return httpx.Response(200, content=b"<CompleteMultipartUploadResult/>")
        blob = self.blobs.get(blob_id)
        if blob is None:
            return httpx.Response(404)
        if m := re.fullmatch(r"bytes=(\d+)-(\d+)", request.headers.get("Range", "")):
            start, end = int(m.group(1)), int(m.group(2)) + 1
            return httpx.Response(206, content=blob[start:end])
        return httpx.Response(200, content=blob)
