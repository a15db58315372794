"""The job ledger contract: SQLite, PostgreSQL and the memory twin queue once, claim apart, never finish twice."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy.engine import make_url

from firstseen.storage.catalog import SqlCatalog
from firstseen.storage.job_ledger import JobCounts, MemoryJobLedger, SqlJobLedger, StaleClaimError


def jobs(n: int, prefix: str = "f") -> list[tuple[str, str, dict]]:
    return [
        (f"/in/{prefix}{i}.mp4|100|{i}", f"/in/{prefix}{i}.mp4", {"path": f"/in/{prefix}{i}.mp4"}) for i in range(n)
    ]


class JobLedgerContract:
    """A backend provides the `ledger` fixture, and `second` (another connection to the same one)."""

    def test_a_file_is_queued_once_and_claimed_by_one_process(self, ledger, second):
        assert ledger.enqueue(jobs(5)) == 5
        assert second.enqueue(jobs(5)) == 0  # the other process was given the same folder
        first = ledger.claim("a", 3, lease_s=60)
        other = second.claim("b", 3, lease_s=60)
        assert [j.path for j in first] == [f"/in/f{i}.mp4" for i in range(3)]
        assert {j.job_id for j in first}.isdisjoint(j.job_id for j in other) and len(other) == 2
        assert ledger.claim("a", 3, lease_s=60) == []
        assert first[0].item == {"path": "/in/f0.mp4"} and first[0].claims == 1
        assert ledger.counts() == JobCounts(claimed=5)

    def test_an_expired_claim_is_taken_again_and_can_no_longer_finish(self, ledger, second):
        ledger.enqueue(jobs(1))
        (dead,) = ledger.claim("dead", 1, lease_s=0.2)
        assert second.claim("b", 1, lease_s=60) == []  # the lease still runs
        time.sleep(0.3)
        (taken,) = second.claim("b", 1, lease_s=60)
        assert taken.job_id == dead.job_id and taken.token != dead.token and taken.claims == 2
        with pytest.raises(StaleClaimError):
            ledger.finish(dead, status="committed", video_id="v1")
        with pytest.raises(StaleClaimError):
            ledger.renew(dead, 60)
        second.finish(taken, status="committed", video_id="v1")
        with pytest.raises(StaleClaimError):  # finished once: never again
            second.finish(taken, status="committed", video_id="v1")
        assert ledger.counts() == JobCounts(committed=1)

    def test_a_renewed_claim_outlives_its_first_lease(self, ledger, second):
        ledger.enqueue(jobs(1))
        (job,) = ledger.claim("a", 1, lease_s=0.3)
        time.sleep(0.15)
        ledger.renew(job, 60)
        time.sleep(0.25)
        assert second.claim("b", 1, lease_s=60) == []

    def test_a_failed_job_is_queued_again_when_given_again(self, ledger, second):
        ledger.enqueue(jobs(2))
        a, b = ledger.claim("a", 2, lease_s=60)
        ledger.finish(a, status="failed", reason="corrupt")
        ledger.finish(b, status="committed", video_id="v")
        assert ledger.counts() == JobCounts(committed=1, failed=1)
        assert second.enqueue(jobs(2)) == 1  # the failed one; the committed one stays done
        assert [j.path for j in second.claim("b", 5, lease_s=60)] == ["/in/f0.mp4"]
        with pytest.raises(ValueError):
            ledger.finish(b, status="claimed")

    def test_concurrent_claimers_split_the_queue_with_no_job_twice(self, ledger, make_ledger):
        ledger.enqueue(jobs(60))
        taken: list[list[int]] = []

        def worker(name: str) -> None:
            mine, own = [], make_ledger()
            while batch := own.claim(name, 2, lease_s=60):
                for job in batch:
                    own.finish(job, status="committed", video_id=f"v{job.job_id}")
                    mine.append(job.job_id)
            taken.append(mine)

        threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        every = [j for mine in taken for j in mine]
        assert len(every) == 60 and len(set(every)) == 60
        assert ledger.counts() == JobCounts(committed=60)


class TestMemoryLedger(JobLedgerContract):
    @pytest.fixture
    def ledger(self):
        self.shared = MemoryJobLedger()
        return self.shared

    @pytest.fixture
    def second(self, ledger):
        return ledger

    @pytest.fixture
    def make_ledger(self, ledger):
        return lambda: ledger


class TestSqliteLedger(JobLedgerContract):
    @pytest.fixture
    def url(self, tmp_path):
        return f"sqlite:///{tmp_path / 'catalog.sqlite'}"

    @pytest.fixture
    def make_ledger(self, url):
        opened: list[SqlCatalog] = []

        def make():
            opened.append(SqlCatalog.open(url))
            return SqlJobLedger(opened[-1])

        yield make
        for catalog in opened:
            catalog.close()

    @pytest.fixture
    def ledger(self, make_ledger):
        return make_ledger()

    @pytest.fixture
    def second(self, make_ledger):
        return make_ledger()


@pytest.mark.postgres
class TestPostgresLedger(TestSqliteLedger):
    @pytest.fixture
    def url(self):
        from conftest import pg_schema_url

        with pg_schema_url() as url:
            yield url


@pytest.mark.postgres
def test_writers_on_two_machines_exclude_each_other_through_postgresql(tmp_path):
    """Two data directories stand for two machines' mounts: the flock cannot see across them,
    the archive-wide advisory lock does; a schema is an archive of its own."""
    from conftest import PG_URL, _pg_admin_engine

    from firstseen.errors import ArchiveLockedError
    from firstseen.storage.lock import WriterLock

    _pg_admin_engine().dispose()
    other = make_url(PG_URL).update_query_dict({"options": "-csearch_path=fs_other_archive"})
    first = WriterLock(tmp_path / "machine-a", PG_URL)
    first.acquire()
    try:
        with pytest.raises(ArchiveLockedError, match="another writer"):
            WriterLock(tmp_path / "machine-b", PG_URL).acquire(wait_s=0.3)
        elsewhere = WriterLock(tmp_path / "machine-b", other.render_as_string(hide_password=False))
        elsewhere.acquire()  # another archive: not held up
        elsewhere.release()
    finally:
        first.release()
    second = WriterLock(tmp_path / "machine-b", PG_URL)
    second.acquire(wait_s=1)
    second.release()
