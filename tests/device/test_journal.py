"""The transaction journal: records leave it only through acknowledge(), and survive the process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from proxy_lab.device import Journal, Record


def test_added_records_are_pending_oldest_first_under_fresh_uuid4_ids(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as j:
        a = j.add(Record("ignored", weight_g=20))
        b = j.add()
        assert a != "ignored" and uuid.UUID(a).version == 4 and uuid.UUID(b).version == 4
        assert [r.id for r in j.pending()] == [a, b]
        assert j.pending()[0].weight_g == 20
        assert j.count() == 2


def test_acknowledge_deletes_exactly_the_named_ids_and_ignores_strangers(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as j:
        ids = [j.add() for _ in range(3)]
        assert j.acknowledge([ids[1], "not-ours", ids[1]]) == 1
        assert [r.id for r in j.pending()] == [ids[0], ids[2]]
        assert j.acknowledge([]) == 0  # nothing named, nothing deleted
        assert j.acknowledge([ids[1]]) == 0  # each id is deleted once
        assert j.count() == 2


def test_the_journal_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal(path) as j:
        kept = j.add()
        gone = j.add()
        j.acknowledge([gone])
    with Journal(path) as j:
        assert [r.id for r in j.pending()] == [kept]


def test_a_record_added_before_the_process_is_killed_is_still_there(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    code = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from proxy_lab.device import Journal\n"
        f"j = Journal(Path({str(path)!r}))\n"
        "print(j.add(), flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    added = proc.stdout.strip()
    with Journal(path) as j:
        assert [r.id for r in j.pending()] == [added]
    assert os.path.exists(path)
