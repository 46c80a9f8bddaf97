"""Run as a child process by test_interrupted.py: upload a file slowly, saying when it starts.

    python -m tests.e2e.upload_child KEY_FILE CHILD_ID FILE

The passphrase comes from CAREVAULT_PASSPHRASE. It prints ``STARTED`` once the first bytes
are on their way to storage; the progress callback then sleeps a little per piece so the
parent can kill it while the upload is still running.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from vault.client import Client, load_identity


def main() -> None:
    key_file, child_id, file = sys.argv[1:4]
    identity = load_identity(Path(key_file), os.environ["CAREVAULT_PASSPHRASE"])
    started = False

    def progress(count: int) -> None:
        nonlocal started
        if not started:
            started = True
            sys.stdout.write("STARTED\n")
            sys.stdout.flush()
        time.sleep(0.002)

    with Client(identity) as client:
        client.put(child_ids=[child_id], category="observation", path=Path(file), progress=progress)
    sys.stdout.write("FINISHED\n")


if __name__ == "__main__":
    main()
