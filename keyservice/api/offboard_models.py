"""Bodies of offboarding a member of staff who leaves (docs/API.md)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from keyservice.api.schemas import Strict


class OffboardRequest(Strict):
    # Why they leave, kept in the audit entry and told to whoever the offboarding is announced to.
    reason: str = Field(min_length=1, max_length=500)
    # Only say what would end; change nothing and write no audit entry.
    dry_run: bool = False


class OffboardPublic(BaseModel):
    """What ended (or, in a dry run, would end): ids, and counts where there are no ids."""

    principal_id: str
    dry_run: bool
    roles: list[str]
    assignments_ended: list[str]
    devices_revoked: list[str]
    codes_voided: int
    proposals_cancelled: list[str]
    shares_kept: int = Field(description="shares this person created for others: they stay")
    announced_to: list[str]
