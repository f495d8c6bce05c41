"""service.db's compiled statements, on SQLite and on PostgreSQL.

The hot paths run SQL that peewee built once (``Compiled``), insert through
``insert`` and write only changed columns (``update_changed``); these check
that they behave as peewee's own calls would, where it matters.
"""

from __future__ import annotations

import threading

import pytest

BACKENDS = ["sqlite", "postgres-redis"]


def test_a_query_binding_other_values_than_its_parameters_is_refused(server):
    from service import db
    from service.models import Post

    # A constant inside the query would be bound, yet never passed again.
    statement = db.Compiled(
        lambda post_id: Post.select().where((Post.id == post_id) & (Post.status == "pending"))
    )
    with db.connection(), pytest.raises(ValueError, match="binds"):
        statement.rows(Post, "pst_00000000000000000000000000")


def test_rows_come_back_as_peewee_makes_them(server, api, tenant):
    from service import db, posts
    from service.models import Post

    post = api.create(tenant, text="compiled")  # a draft: nothing changes it meanwhile
    with db.connection():
        compiled = posts.load(post.post_id).post
        by_peewee = Post.get_by_id(post.post_id)
    assert compiled.__data__ == by_peewee.__data__
    assert compiled.workspace_id == tenant.workspace_id  # foreign keys by id, as peewee's


def test_update_changed_keeps_a_concurrent_change_to_another_column(server, api, tenant):
    from service import db, posts
    from service.models import Post

    # Given a post read by one writer
    post_id = api.create(tenant, text="two writers").post_id
    with db.connection():
        mine = posts.load(post_id).post
        # When another writer changes one column, and the first another one
        Post.update(title="theirs").where(Post.id == post_id).execute()
        mine.error_message = "mine"
        mine.status = mine.status  # set to the value read: not a change
        written = db.update_changed(mine)
        after = Post.get_by_id(post_id)
    # Then both changes are kept: only the changed column was written
    assert written == 1
    assert (after.title, after.error_message) == ("theirs", "mine")


def test_update_changed_is_a_compare_and_set_on_the_expected_values(server, api, tenant):
    from service import db, posts
    from service.models import Post

    post_id = api.create(tenant, text="versions").post_id
    with db.connection():
        stale = posts.load(post_id).post
        Post.update(version=Post.version + 1).where(Post.id == post_id).execute()
        stale.title = "late"
        assert db.update_changed(stale, version=stale.version) == 0
        assert Post.get_by_id(post_id).title == ""


def test_insert_fills_in_auto_increment_ids(server, api, tenant):
    from service import db
    from service.models import PostEvent

    post_id = api.create(tenant, text="events").post_id
    with db.connection(), db.write():
        first = db.insert(PostEvent(post=post_id, at=db.utcnow(), to_status="draft", cause="a"))
        second = db.insert(PostEvent(post=post_id, at=db.utcnow(), to_status="draft", cause="b"))
    assert second.id > first.id > 0
    with db.connection():
        assert PostEvent.get_by_id(second.id).cause == "b"


def test_after_commit_runs_once_the_outermost_write_commits_and_never_on_rollback(server):
    from service import db
    from service.models import Workspace

    ran: list[str] = []

    def seen_committed(name: str):
        def look() -> None:
            with db.connection():
                ran.append(name if Workspace.get_or_none(Workspace.name == name) else "unseen")

        def callback() -> None:
            # Once it runs, another thread's connection sees the write.
            reader = threading.Thread(target=look)
            reader.start()
            reader.join()

        return callback

    # Given callbacks registered in a transaction, one of them in a nested one
    with db.connection():
        with db.write():
            Workspace.create(
                id="wks_00000000000000000000000001", name="kept", created_at=db.utcnow()
            )
            db.after_commit(seen_committed("kept"))
            with pytest.raises(RuntimeError), db.write():
                db.after_commit(lambda: ran.append("rolled back savepoint"))
                raise RuntimeError("the inner unit fails")
            assert ran == []  # not before the commit
        # Then the committed one ran, after the commit; the rolled-back one never
        assert ran == ["kept"]
        # And a transaction that rolls back runs none
        with pytest.raises(RuntimeError), db.write():
            db.after_commit(lambda: ran.append("rolled back"))
            raise RuntimeError("the unit fails")
        assert ran == ["kept"]


# ------------------------------------------------- connections: held and pooled


def test_a_held_connection_serves_unit_after_unit_and_goes_back_when_its_thread_ends(
    server, monkeypatch
):
    import gc

    import peewee

    from service import db
    from tests.support import wait_for

    target = db.database.obj
    returned = []
    give_back = target._close

    def recorded(conn, *args, **kwargs):
        returned.append(conn)
        return give_back(conn, *args, **kwargs)

    monkeypatch.setattr(target, "_close", recorded)
    seen = []

    def units():
        for _ in range(3):
            with db.held_connection():
                db.database.execute_sql("SELECT 1").fetchall()
                seen.append(db.database.connection())
        # A database error gives it back at once (the pool checks it on its way in)
        with pytest.raises(peewee.DatabaseError), db.held_connection():
            db.database.execute_sql("SELECT * FROM no_such_table")
        seen.append(db.database.is_closed())
        with db.held_connection():
            seen.append(db.database.connection())
        seen.append(list(returned))

    thread = threading.Thread(target=units)
    thread.start()
    thread.join()
    first, second, third, closed, after_error, returned_meanwhile = seen
    assert first is second is third  # one checkout for the three units
    assert closed and first in returned_meanwhile
    # Held once its unit ended, until the thread ends
    times = returned_meanwhile.count(after_error)
    wait_for(lambda: gc.collect() is not None and returned.count(after_error) > times, timeout=5)


def test_a_connection_used_within_trusted_seconds_is_handed_out_without_a_ping(server):
    from service import db

    if db.is_sqlite():
        pytest.skip("SQLite's pool sends nothing on a checkout")
    shared = db.database.obj
    # A pool of its own, on the same database: no other thread takes its connection.
    pool = db._PostgresPool(
        shared.database, max_connections=2, prefer_psycopg3=True, **shared.connect_params
    )
    pings = []
    ping = pool._adapter.is_connection_closed
    pool._adapter.is_connection_closed = lambda conn: pings.append(conn) or ping(conn)
    try:
        for _ in range(4):
            with pool.connection_context():
                pool.execute_sql("SELECT 1").fetchall()
        assert pings == []  # handed out again within the second: no round trip
        # Unused for longer, it is asked first
        for conn in list(pool.last_used):
            pool.last_used[conn] -= 2 * db.TRUSTED_SECONDS
        with pool.connection_context():
            pool.execute_sql("SELECT 1").fetchall()
        assert len(pings) == 1
    finally:
        pool.close_all()
