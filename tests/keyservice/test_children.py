"""Children: only an admin adds one, and a person lists only the children they are related to.
Both databases."""

from __future__ import annotations

import pytest

from tests.keyservice.helpers import Device, Room, admin_enrols, ok
from tests.servers import KeyService

pytestmark = pytest.mark.integration


def test_admin_endpoints_refuse_non_admins(service: KeyService, admin: Device) -> None:
    educator = admin_enrols(service, admin, kind="staff", roles=["educator"])
    with educator.client() as http:
        refused = http.post("/v1/admin/children", json={"display_name": "X"})
    assert refused.status_code == 403


def test_children_lists_only_related_children(room: Room) -> None:
    with room.educator.client() as http:
        listed = ok(http.get("/v1/children"))
    assert [c["child_id"] for c in listed] == [room.child]
    assert listed[0]["relation"] == "assignment:educator"
    with room.guardian.client() as http:
        assert [c["child_id"] for c in ok(http.get("/v1/children"))] == [room.child]
