"""``carevault admin rotate`` and ``carevault admin jobs`` against a real key service (issue 15,
part 3): refusals first, a dry run that changes nothing, then rotations followed to their end.
The SDK's ``Client.rotate``/``jobs`` are what the CLI calls; the key service's own tests cover
both databases (tests/keyservice/test_rotation_jobs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clients.output import EXIT_DENIED, EXIT_ERROR, EXIT_USAGE
from keyservice.ids import new_id
from tests.e2e.cli import as_json, run_cli
from tests.e2e.world import World
from tests.keyservice.helpers import bootstrap_code

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def admin(embedded_world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    code = bootstrap_code(embedded_world.service, force_new_code=True)
    profile = tmp_path_factory.mktemp("admin")
    status, said = run_cli(
        profile, "enroll", "--url", embedded_world.service.base_url, "--code", code
    )
    assert status == 0, said
    return profile


def test_rotating_an_unknown_child_is_refused(admin: Path) -> None:
    status, said = run_cli(admin, "admin", "rotate", "child", new_id())
    assert status == EXIT_DENIED
    assert "no child with this id" in said
    status, _ = run_cli(admin, "admin", "rotate", "child", "not-an-id")
    assert status == EXIT_USAGE


def test_a_dry_run_counts_and_changes_nothing(admin: Path, embedded_world: World) -> None:
    child = next(iter(embedded_world.children.values()))
    status, said = run_cli(admin, "admin", "rotate", "child", child, "--dry-run")
    assert status == 0, said
    assert "Dry run" in said and "Nothing changed" in said
    dry = as_json(admin, "admin", "rotate", "child", child, "--dry-run")
    assert isinstance(dry, dict) and dry["job"] is None and dry["dry_run"] is True
    again = as_json(admin, "admin", "rotate", "child", child, "--dry-run")
    assert isinstance(again, dict) and again["to_version"] == dry["to_version"]


def test_a_child_and_a_root_rotation_followed_to_their_end(
    admin: Path, embedded_world: World
) -> None:
    child = next(iter(embedded_world.children.values()))
    done = as_json(admin, "admin", "rotate", "child", child, "--wait")
    assert isinstance(done, dict)
    assert (done["state"], done["kind"], done["target"]) == ("done", "child", child)
    assert done["done"] == done["total"]
    root = as_json(admin, "admin", "rotate", "root", "--wait")
    assert isinstance(root, dict) and root["state"] == "done" and root["kind"] == "root"
    listed = as_json(admin, "admin", "jobs")
    assert isinstance(listed, list)
    assert {done["job_id"], root["job_id"]} <= {job["job_id"] for job in listed}
    status, said = run_cli(admin, "admin", "jobs")
    assert status == 0 and done["job_id"] in said


def test_jobs_shows_one_and_cancel_refuses_an_ended_or_unknown_job(
    admin: Path, embedded_world: World
) -> None:
    child = next(iter(embedded_world.children.values()))
    done = as_json(admin, "admin", "rotate", "child", child, "--wait")
    assert isinstance(done, dict) and done["state"] == "done"
    shown = as_json(admin, "admin", "jobs", done["job_id"])
    assert isinstance(shown, list) and [job["job_id"] for job in shown] == [done["job_id"]]
    status, said = run_cli(admin, "admin", "jobs", "cancel", done["job_id"])
    assert status == EXIT_ERROR
    assert "is done, not running: nothing to cancel" in said
    status, said = run_cli(admin, "admin", "jobs", "cancel", new_id())
    assert status == EXIT_DENIED and "no job with this id" in said
    assert as_json(admin, "admin", "jobs", done["job_id"]) == shown


def test_rewrap_dry_run_then_run(admin: Path, embedded_world: World) -> None:
    child = next(iter(embedded_world.children.values()))
    status, said = run_cli(admin, "admin", "rewrap", child, "--dry-run")
    assert status == 0, said
    assert "Dry run: re-wrapping onto" in said and "Nothing changed" in said
    done = as_json(admin, "admin", "rewrap", child, "--wait")
    assert isinstance(done, dict)
    assert (done["state"], done["kind"], done["target"]) == ("done", "rewrap", child)
    status, said = run_cli(admin, "admin", "rewrap", new_id())
    assert status == EXIT_DENIED and "no child with this id" in said
