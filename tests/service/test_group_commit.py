"""service.db's group commit on SQLite: writes that wait for their turn share
the running one's transaction, each in a savepoint, and every caller returns
only once that transaction commits.

The choreography: thread A runs its body and, once thread B waits for its turn,
ends it; B then runs its body in A's transaction while the test looks on.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
import time
import types

import pytest

BACKENDS = ["sqlite"]


def _visible(name: str) -> bool:
    """Whether another connection (a fresh thread's) sees workspace ``name``."""
    from service import db
    from service.models import Workspace

    seen: list[bool] = []

    def look() -> None:
        with db.connection():
            seen.append(Workspace.get_or_none(Workspace.name == name) is not None)

    reader = threading.Thread(target=look)
    reader.start()
    reader.join()
    return seen[0]


def _add(name: str) -> None:
    from service import db, ids
    from service.models import Workspace

    Workspace.create(id=ids.new(ids.WORKSPACE), name=name, created_at=db.utcnow())


def _wait_for(condition, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


@functools.cache
def _turn_acquire() -> tuple[types.CodeType, int]:
    """GroupCommit._take_turn's code and the line where it waits for the turn."""
    from service.db import GroupCommit

    lines, first = inspect.getsourcelines(GroupCommit._take_turn)
    acquire = first + next(n for n, line in enumerate(lines) if "self._turn.acquire()" in line)
    return GroupCommit._take_turn.__code__, acquire


def _waits_for_its_turn(thread: threading.Thread | None) -> bool:
    """Whether ``thread`` waits in GroupCommit._take_turn, already counted as waiting.
    (The server's own writers, its dispatcher's, may be waiting too: the count
    alone cannot tell B from them.)"""
    if thread is None or thread.ident is None:
        return False
    code, acquire = _turn_acquire()
    frame = sys._current_frames().get(thread.ident)
    while frame is not None:
        if frame.f_code is code:
            return frame.f_lineno >= acquire
        frame = frame.f_back
    return False


class _Two:
    """Threads A and B writing, B's body held until ``release``."""

    def __init__(self, b_body):
        from service import db

        self.group = db.group
        assert self.group is not None, "SQLite runs with a group commit"
        self.b_running = threading.Event()
        self.release = threading.Event()
        self.returned: dict[str, object] = {}
        self.callbacks: list[tuple[str, bool, bool]] = []
        self._b_body = b_body
        self.b_thread: threading.Thread | None = None  # started once A has its turn

    def a(self, name: str) -> None:
        from service import db

        try:
            with db.connection(), db.write():
                _add(name)
                db.after_commit(
                    lambda: self.callbacks.append(("a", _visible(name), _visible(name + "-b")))
                )
                # A's turn ends once B waits for one.
                _wait_for(lambda: _waits_for_its_turn(self.b_thread), "B to wait for its turn")
            self.returned["a"] = "ok"
        except Exception as error:  # noqa: BLE001 (the test looks at it)
            self.returned["a"] = error

    def b(self, name: str) -> None:
        from service import db

        try:
            with db.connection(), db.write():
                self.b_running.set()
                self._b_body(name + "-b")
                assert self.release.wait(10)
            self.returned["b"] = "ok"
        except Exception as error:  # noqa: BLE001 (the test looks at it)
            self.returned["b"] = error

    def run(self, name: str) -> None:
        a = threading.Thread(target=self.a, args=(name,))
        a.start()
        _wait_for(self.group._turn.locked, "A to take its turn")
        b = self.b_thread = threading.Thread(target=self.b, args=(name,))
        b.start()
        assert self.b_running.wait(10)
        # B runs its body in A's transaction: A has not returned, nothing is committed.
        time.sleep(0.05)  # room for a wrong early return of A to happen
        self.a_returned_early = "a" in self.returned
        self.a_visible_early = _visible(name)
        self.release.set()
        a.join(10)
        b.join(10)


def test_a_write_waiting_for_its_turn_shares_the_running_ones_commit(server):
    from service import db

    # Given a write whose body runs while another waits for its turn
    two = _Two(b_body=_add)
    before = (two.group.batches, two.group.bodies)
    # When both run
    two.run("together")
    # Then the second ran in the first's transaction, before it committed
    assert not two.a_returned_early, "A returned before the transaction holding it committed"
    assert not two.a_visible_early, "A's write was committed before B's body ended"
    # And both committed, once, together: one batch of two bodies
    assert two.returned == {"a": "ok", "b": "ok"}
    assert _visible("together") and _visible("together-b")
    assert two.group.bodies - before[1] >= 2
    # And A's after-commit callback ran once both were committed
    assert two.callbacks == [("a", True, True)]
    assert db.group is two.group


def test_a_body_that_raises_rolls_back_only_its_own_changes(server):
    # Given B's body failing after its write, in A's transaction
    def fails(name: str) -> None:
        _add(name)
        raise RuntimeError("B's unit fails")

    two = _Two(b_body=fails)
    two.run("alone")
    # Then A's write commits and A returns; B raises its own error; its write is gone
    assert two.returned["a"] == "ok"
    assert isinstance(two.returned["b"], RuntimeError)
    assert _visible("alone") and not _visible("alone-b")
    assert two.callbacks == [("a", True, False)]


def test_a_first_body_that_raises_rolls_its_transaction_back(server):
    from service import db

    # Given a write alone in its transaction (it runs without a savepoint), failing
    with db.connection(), pytest.raises(RuntimeError), db.write():
        _add("first-fails")
        raise RuntimeError("the only unit fails")
    # Then its change is gone, and the next write commits in a transaction of its own
    with db.connection(), db.write():
        _add("first-after")
    assert not _visible("first-fails") and _visible("first-after")


def test_a_failed_commit_fails_every_caller_of_the_batch(server):
    from service import db
    from service.models import PostItem

    # Given B's body leaving a deferred foreign key violation, which fails the COMMIT
    def breaks_the_commit(name: str) -> None:
        db.database.execute_sql("PRAGMA defer_foreign_keys = ON")
        PostItem.insert(post="pst_00000000000000000000000000", position=0, text=name).execute()

    two = _Two(b_body=breaks_the_commit)
    two.run("doomed")
    # Then neither write committed, and both callers got the error; no callback ran
    assert not _visible("doomed")
    import peewee

    assert isinstance(two.returned["a"], peewee.IntegrityError), two.returned
    assert isinstance(two.returned["b"], peewee.IntegrityError), two.returned
    assert two.callbacks == []
    # And the next write starts a transaction of its own and commits
    with db.connection(), db.write():
        _add("after-the-failure")
    assert _visible("after-the-failure")


@pytest.mark.parametrize("threads", [16])
def test_many_concurrent_read_then_write_units_lose_no_update(server, threads):
    from service import db, ids
    from service.models import Workspace

    # Given one row that every unit reads, then writes back plus one
    counter = ids.new(ids.WORKSPACE)
    with db.connection(), db.write():
        Workspace.create(id=counter, name="0", created_at=db.utcnow())
    group = db.group
    before = (group.batches, group.bodies)
    start = threading.Barrier(threads)
    rounds = 50

    def bump() -> None:
        start.wait()
        for _ in range(rounds):
            with db.connection(), db.write():
                row = Workspace.get_by_id(counter)
                Workspace.update(name=str(int(row.name) + 1)).where(
                    Workspace.id == counter
                ).execute()

    workers = [threading.Thread(target=bump) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    # Then every increment counted: each unit read what the ones before it wrote
    with db.connection():
        assert Workspace.get_by_id(counter).name == str(threads * rounds)
    batches, bodies = group.batches - before[0], group.bodies - before[1]
    assert bodies >= threads * rounds  # the server's own writes (its dispatcher) join too
    # And writes did share commits (fewer transactions than units)
    assert batches < bodies, (batches, bodies)
    print(f"\n{bodies} units in {batches} commits ({bodies / batches:.1f} per commit)")


def test_deliveries_due_together_share_commits(server, api, tenant):
    from service import db
    from tests.support import in_seconds, posts_pb2, timestamp

    # Given posts all due in the same instant, made before it
    due = timestamp(in_seconds(5))
    made = [
        api.create(
            tenant,
            text=f"due together {n}",
            status=posts_pb2.STATUS_CHANGE_SCHEDULED,
            scheduled_at=due,
        ).post_id
        for n in range(40)
    ]
    group = db.group
    before = (group.batches, group.bodies)
    # When the dispatcher and the worker threads deliver them
    for post_id in made:
        api.wait_published(tenant, post_id)
    # Then their claims and results (two writes a post, at least) took fewer commits
    batches, bodies = group.batches - before[0], group.bodies - before[1]
    assert bodies >= 2 * len(made), (batches, bodies)
    assert batches < bodies, (batches, bodies)
    print(f"\n{len(made)} deliveries: {bodies} writes in {batches} commits")
