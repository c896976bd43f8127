"""Loss and duplication under SIGKILL, on real processes (the journal's and sealer's promises)."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from revealed.settings import Settings
from revealed.store import Store

WORKERS = str(Path(__file__).with_name("workers.py"))


def spawn(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, WORKERS, *map(str, args)], stdout=subprocess.PIPE, text=True)


def stored_ids(data: Path) -> Counter[str]:
    with Store(Settings(data_dir=data)) as store:
        store.seal()
        column = store.table("events").to_pyarrow_table(columns=["event_id"]).column("event_id")
        return Counter(column.to_pylist())


def kill_appender_after(data: Path, prefix: str, rng: random.Random) -> int:
    """Start an appender, SIGKILL it at a random moment; returns the last index it was told is stored."""
    proc = spawn("append", data, prefix, 10**7, rng.choice([1, 7, 100, 1000]))
    assert proc.stdout is not None
    wanted, acked = rng.randint(1, 40), -1
    for _ in range(wanted):
        line = proc.stdout.readline()
        assert line.startswith("ack "), line
        acked = int(line.split()[1])
    time.sleep(rng.uniform(0, 0.02))
    proc.send_signal(signal.SIGKILL)
    for line in proc.stdout.read().splitlines():  # acks printed before the kill were also told
        acked = max(acked, int(line.split()[1]))
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return acked


def check_prefix(ids: Counter[str], prefix: str, acked: int) -> None:
    mine = sorted(int(k.rsplit("-", 1)[1]) for k in ids if k.startswith(prefix + "-"))
    assert mine == list(range(len(mine))), "a batch is all or nothing, and batches commit in order"
    assert len(mine) > acked, f"{prefix}: told {acked + 1} rows were stored, found {len(mine)}"


@pytest.mark.parametrize(
    "rounds", [pytest.param(2, id="quick"), pytest.param(12, id="many", marks=pytest.mark.slow)]
)
def test_appender_killed_at_random_keeps_every_acknowledged_row_once(tmp_path: Path, rounds: int) -> None:
    rng = random.Random(20261127 + rounds)
    acked = {f"r{r}": kill_appender_after(tmp_path, f"r{r}", rng) for r in range(rounds)}
    ids = stored_ids(tmp_path)
    assert max(ids.values()) == 1, "no row stored twice"
    for prefix, last in acked.items():
        check_prefix(ids, prefix, last)


N_SEALED = 4_000


@pytest.fixture
def journal_full(tmp_path: Path) -> Path:
    sys.path.insert(0, str(Path(WORKERS).parent))
    from workers import event

    with Store(Settings(data_dir=tmp_path)) as store:
        for start in range(0, N_SEALED, 50):  # small journal batches: sealing takes many commits
            store.ingest([event("s", i) for i in range(start, start + 50)], kind="event")
    return tmp_path


def assert_sealed_once(data: Path) -> None:
    ids = stored_ids(data)
    assert max(ids.values()) == 1
    assert len(ids) == N_SEALED
    with Store(Settings(data_dir=data)) as store:
        assert store.journal.pending()["events"] == 0
        assert store.unsealed()["events"] == 0


@pytest.mark.parametrize("kill_point", ["before_commit", "after_commit", "after_trim"])
def test_sealer_killed_around_its_commit_loses_and_doubles_nothing(
    journal_full: Path, kill_point: str
) -> None:
    proc = spawn("seal", journal_full, 500, kill_point)
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    with Store(Settings(data_dir=journal_full)) as store:
        sealed = store.count("events")
        assert sealed == {"before_commit": 500, "after_commit": 1000, "after_trim": N_SEALED}[kill_point]
        assert sealed + store.journal.pending()["events"] >= N_SEALED, "nothing trimmed before it was sealed"
    assert_sealed_once(journal_full)


@pytest.mark.parametrize(
    "kills", [pytest.param(3, id="quick"), pytest.param(15, id="many", marks=pytest.mark.slow)]
)
def test_sealer_killed_at_random_moments_repeatedly(journal_full: Path, kills: int) -> None:
    rng = random.Random(kills)
    killed = 0
    for _ in range(kills):
        proc = spawn("seal", journal_full, 50, "announce")  # up to 80 Delta commits to interrupt
        assert proc.stdout is not None
        for _ in range(rng.randint(1, 8)):
            if not proc.stdout.readline().startswith("commit"):
                break
        time.sleep(rng.uniform(0, 0.01))  # between commits, or inside the next one
        proc.kill()
        proc.communicate()
        killed += proc.returncode == -signal.SIGKILL
        with Store(Settings(data_dir=journal_full)) as store:
            table = store.table("events").to_pyarrow_table(columns=["event_id"])
            assert table.num_rows == len(set(table.column("event_id").to_pylist())), "no row sealed twice"
    assert killed >= 1, "at least one kill interrupted a sealer mid-way"
    assert_sealed_once(journal_full)


def test_two_appenders_and_a_sealer_at_once(tmp_path: Path) -> None:
    Store(Settings(data_dir=tmp_path)).close()
    appenders = [
        spawn("append", tmp_path, "a", 3000, 50),
        spawn("append", tmp_path, "b", 3000, 37),
        spawn("append", tmp_path, "a", 3000, 91),
    ]  # the same ids again, concurrently: duplicates
    sealer = spawn("sealloop", tmp_path, 6)
    for proc in [*appenders, sealer]:
        proc.communicate(timeout=300)
        assert proc.returncode == 0
    ids = stored_ids(tmp_path)
    assert max(ids.values()) == 1
    assert len(ids) == 6000
    assert {f"a-{i}" for i in range(3000)} | {f"b-{i}" for i in range(3000)} == set(ids)
