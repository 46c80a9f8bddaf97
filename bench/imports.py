"""A bulk CSV import through the real key service on PostgreSQL: ``python -m bench imports``.

One PostgreSQL server (tests/servers.py's ``start_postgres``) and one key service process on
it. Each round makes fresh staff through the API and children by one import of new children
(no room, so applied at once), then imports a 10,000-row
assignments CSV (every staff member with every child): one ``POST /v1/admin/imports`` that
validates every row and stores the batch as one proposal (an assignment gives read rights),
then a second admin's ``POST /v1/proposals/{id}/approve``, which plans the stored file again
and applies it in one transaction. Figures, medians over rounds:

- ``import_rows_per_s``: rows / (propose + approve wall time), as an admin waits for them
  (bar: >= 2,000); the propose and approve seconds ride along;
- ``import_dry_run_rows_per_s``: the same file's ``--dry-run`` (validation and diff only);
- ``import_create_children_rows_per_s``: a 10,000-row ``name,date_of_birth,left_on,room,
  valid_from`` file that CREATES the children (each with a first key version wrapped by the
  root key) into a room that has staff, so one proposal and its approval, timed as above
  (decision 0027; bar: >= 2,000); ``import_create_children_dry_run_rows_per_s`` its dry run.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from bench._harness import Record, median, rate_record
from clients.localservice import LocalService, local_keyservice
from tests.servers import make_temp_dir, start_postgres
from vault.client import Client, Proposal
from vault.client.rooms import ImportDiff

BENCH = "imports"
ROWS = 10_000
_CODE = re.compile(r"enrolment code .*: ([A-Z2-7-]+)\s*$", re.MULTILINE)


def _approver(service: LocalService, admin: Client) -> Client:
    """A second admin, approved at the host, whose code the first admin never saw."""
    proposal = admin.propose_admin(display_name="Bench Approver")
    assert isinstance(proposal, Proposal)
    found = _CODE.search(service.host("proposals", "approve", proposal.proposal_id))
    if found is None:
        raise RuntimeError("the host approval printed no enrolment code")
    client, _ = Client.enrol(service.base_url, found.group(1), "bench approver")
    return client


def _people(admin: Client, staff: int, children: int) -> tuple[list[str], list[str]]:
    staff_ids = [
        admin.create_principal(kind="staff", display_name=f"Staff {i}", roles=["educator"])
        for i in range(staff)
    ]
    # The children in one import of new children (no room: applied at once).
    tag = uuid.uuid4().hex[:8]
    made = admin.import_csv(
        "name,date_of_birth,left_on,room,valid_from\n"
        + "".join(f"Child {tag}-{i},,,,\n" for i in range(children))
    )
    assert isinstance(made, ImportDiff) and made.applied, made
    return staff_ids, [p.person_id for p in made.people]


def _csv(staff: list[str], children: list[str], rows: int) -> str:
    lines = ["staff_id,child_id,role,valid_from,valid_to"]
    for index in range(rows):
        s, c = staff[index // len(children)], children[index % len(children)]
        lines.append(f"{s},{c},educator,2026-01-01,2030-01-01")
    return "\n".join(lines) + "\n"


def _new_children_csv(room: str, tag: str, rows: int) -> str:
    lines = ["name,date_of_birth,left_on,room,valid_from"]
    lines += [f"Child {tag}-{i},2022-{1 + i % 12:02d}-15,,{room},2026-09-01" for i in range(rows)]
    return "\n".join(lines) + "\n"


def _timed_import(
    admin: Client, approver: Client, text: str, rows: int, created: bool
) -> tuple[float, float, float, float]:
    """(rows/s for propose + approve, dry-run rows/s, propose s, approve s)."""
    started = time.perf_counter()
    dry = admin.import_csv(text, dry_run=True)
    dry_s = time.perf_counter() - started
    assert isinstance(dry, ImportDiff) and dry.counts["added"] == rows, dry
    if created:
        assert dry.counts["created"] == rows, dry.counts
    started = time.perf_counter()
    proposal = admin.import_csv(text)
    proposed = time.perf_counter()
    assert isinstance(proposal, Proposal), proposal
    decided = approver.approve(proposal.proposal_id)
    done = time.perf_counter()
    assert decided.state == "approved", decided
    return rows / (done - started), rows / dry_s, proposed - started, done - proposed


def measure(work: Path, *, rows: int = ROWS, rounds: int = 3) -> Iterator[Record]:
    side = max(1, int(rows**0.5))
    # Its own directory: it is handed to the unprivileged account PostgreSQL runs as.
    cluster = make_temp_dir("carevault-bench-postgres-")
    postgres, server = start_postgres(cluster)
    try:
        database = server.create_database("bench_imports")
        with local_keyservice(
            work / "keyservice", extra_env={"CAREVAULT_DATABASE_URL": database.url}
        ) as service:
            admin, _ = Client.enrol(service.base_url, service.admin_code, "bench admin")
            approver = _approver(service, admin)
            rates, dry_rates, proposes, approves = [], [], [], []
            made: list[tuple[float, float, float, float]] = []
            size = 0
            # New children join a room that has a member of staff: the file gives read rights.
            room = admin.create_room("Bench Room").name
            minder = admin.create_principal(kind="staff", display_name="Minder", roles=["educator"])
            joined = admin.import_csv(
                f"staff_id,room,role,valid_from,valid_to\n{minder},{room},educator,,\n"
            )
            assert isinstance(joined, ImportDiff) and joined.applied, joined
            for round_ in range(rounds):
                staff, children = _people(admin, -(-rows // side), side)
                text = _csv(staff, children, rows)
                size = len(text.encode())
                rate, dry_rate, propose_s, approve_s = _timed_import(
                    admin, approver, text, rows, created=False
                )
                proposes.append(propose_s)
                approves.append(approve_s)
                rates.append(rate)
                dry_rates.append(dry_rate)
                made.append(
                    _timed_import(
                        admin,
                        approver,
                        _new_children_csv(room, f"r{round_}", rows),
                        rows,
                        created=True,
                    )
                )
            admin.close()
            approver.close()
    finally:
        postgres.stop()
        shutil.rmtree(cluster, ignore_errors=True)
    yield rate_record(
        bench=BENCH,
        metric="import_rows_per_s",
        value=median(rates),
        unit="rows/s",
        rows=rows,
        csv_bytes=size,
        database="postgresql",
        propose_s=round(median(proposes), 3),
        approve_s=round(median(approves), 3),
        rounds=rounds,
    )
    yield rate_record(
        bench=BENCH,
        metric="import_dry_run_rows_per_s",
        value=median(dry_rates),
        unit="rows/s",
        rows=rows,
        database="postgresql",
        rounds=rounds,
    )
    yield rate_record(
        bench=BENCH,
        metric="import_create_children_rows_per_s",
        value=median([m[0] for m in made]),
        unit="rows/s",
        rows=rows,
        database="postgresql",
        propose_s=round(median([m[2] for m in made]), 3),
        approve_s=round(median([m[3] for m in made]), 3),
        rounds=rounds,
    )
    yield rate_record(
        bench=BENCH,
        metric="import_create_children_dry_run_rows_per_s",
        value=median([m[1] for m in made]),
        unit="rows/s",
        rows=rows,
        database="postgresql",
        rounds=rounds,
    )


def run(quick: bool) -> Iterator[Record]:
    with tempfile.TemporaryDirectory(prefix="carevault-bench-imports-") as work:
        yield from measure(Path(work), rounds=1 if quick else 3)
