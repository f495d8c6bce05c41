"""Small deliberate bugs (mutations), each with the tests that must catch it.

    python -m tests.mutations              # every mutation
    python -m tests.mutations NAME ...     # some of them
    python -m tests.mutations --list

Each mutation is applied to a copy of the tree in a temporary directory (the
working tree is never touched), then its tests run there with this virtual
environment's Python. A mutation is killed when those tests fail; the script
exits 1 if any mutation survives, or if a mutation no longer applies (the code
it changes was rewritten: update the mutation with it).
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
SKIP = shutil.ignore_patterns(
    ".venv", "node_modules", "var", ".git", "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache"
)


@dataclasses.dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # relative to the repository root
    old: str  # must occur exactly once in the file
    new: str
    tests: tuple[str, ...]  # pytest node ids or paths that must fail
    backends: str = "sqlite"  # the --backends the tests run on

    def apply(self, root: pathlib.Path) -> None:
        file = root / self.path
        text = file.read_text()
        count = text.count(self.old)
        if count != 1:
            raise LookupError(f"{self.name}: expected the code once in {self.path}, found {count}")
        file.write_text(text.replace(self.old, self.new))


MUTATIONS = [
    Mutation(
        "group-commit-answers-before-commit",
        "service/db.py",
        "            batch.done.acquire()  # released by the commit, then passed along\n"
        "            batch.done.release()\n",
        "",
        ("tests/service/test_group_commit.py",),
    ),
    Mutation(
        "group-commit-keeps-a-failed-first-body",
        "service/db.py",
        "self._end_turn(batch, rollback=first and failure is not None)",
        "self._end_turn(batch, rollback=False)",
        ("tests/service/test_group_commit.py",),
    ),
    Mutation(
        "group-commit-body-without-savepoint",
        "service/db.py",
        "with contextlib.nullcontext() if first else database.atomic():",
        "with contextlib.nullcontext():",
        ("tests/service/test_group_commit.py",),
    ),
    Mutation(
        "claim-ignores-message-token",
        "service/store.py",
        "    post = job(post_id, token, Status.PENDING)\n",
        "    post = job(post_id, Post.get_by_id(post_id).job_token, Status.PENDING)\n",
        ("tests/workers/test_job_tokens.py",),
        backends="sqlite,postgres-redis,postgres-rabbitmq",
    ),
    Mutation(
        "time-limit-escapes-delivery",
        "workers/delivery.py",
        "        except BaseException as exc:\n",
        "        except Exception as exc:\n",
        ("tests/workers/test_poison.py",),
    ),
    Mutation(
        "network-keys-from-the-callers-key",
        "workers/delivery.py",
        '    base = f"{post.id}:{post.content_revision}:{index}"',
        '    base = f"{post.idempotency_key or post.id}:{post.content_revision}:{index}"',
        ("tests/workers/adapters/test_delivery_keys.py",),
    ),
    Mutation(
        "live-item-overwritten",
        "workers/delivery.py",
        "    ).where((PostItem.id == item_id) & (PostItem.platform_post_id == empty))\n",
        "    ).where((PostItem.id == item_id) & (PostItem.platform_post_id.is_null(False)"
        " | (PostItem.platform_post_id == empty)))\n",
        ("tests/workers/test_delivery.py",),
    ),
    Mutation(
        "failed-finish-loses-the-item",
        "workers/delivery.py",
        "            with db.write():\n                _write_live(loaded, item, published, now, None, event)\n",
        "            pass\n",
        ("tests/workers/test_delivery.py::test_a_failed_finish_does_not_take_the_item_back",),
    ),
    Mutation(
        "a-fresh-lease-trusted-forever",
        "workers/delivery.py",
        "            if time.monotonic() - self._renewed < half:",
        "            if True:",
        (
            (
                "tests/workers/test_leases.py::"
                "test_a_worker_held_past_its_lease_before_the_create_sends_nothing"
            ),
        ),
    ),
    Mutation(
        "database-lock-trusts-a-dead-connection",
        "workers/inprocess.py",
        '                self._connection.execute("SELECT 1")\n                return True\n',
        "                return True\n",
        (
            (
                "tests/service/test_server.py::"
                "test_a_postgresql_lock_whose_connection_dropped_is_taken_again"
            ),
            (
                "tests/service/test_server.py::"
                "test_a_postgresql_lock_taken_by_another_server_meanwhile_stops_the_first"
            ),
        ),
    ),
    Mutation(
        "database-lock-not-taken-again",
        "workers/inprocess.py",
        "                connection = self._connect(refuse=False)\n",
        "                connection = None\n",
        (
            (
                "tests/service/test_server.py::"
                "test_a_postgresql_lock_whose_connection_dropped_is_taken_again"
            ),
        ),
    ),
    Mutation(
        "lost-database-lock-ignored-by-the-server",
        "workers/inprocess.py",
        "DatabaseLock.take(config, on_lost=self._lost)",
        "DatabaseLock.take(config)",
        (
            (
                "tests/service/test_server.py::"
                "test_an_embedded_server_on_postgresql_that_loses_its_database_stops_delivering"
            ),
        ),
    ),
    Mutation(
        "stopped-said-before-the-worker-stops",
        "service/server.py",
        "    for drain in drains:\n        drain.join()\n",
        "",
        ("tests/service/test_server.py::test_a_clean_start_and_stop_log_no_warning",),
    ),
    Mutation(
        "instagram-retry-after-ignored",
        "workers/adapters/instagram.py",
        "        return TransientError(label, message, retry_after(response))",
        "        return TransientError(label, message, None)",
        ("tests/workers/adapters/test_instagram.py::test_retry_after_is_respected",),
    ),
    Mutation(
        "tiktok-retry-after-ignored",
        "workers/adapters/tiktok.py",
        "        return TransientError(label, message, retry_after(response))",
        "        return TransientError(label, message, None)",
        ("tests/workers/adapters/test_tiktok.py::test_retry_after_is_respected",),
    ),
    Mutation(
        "youtube-retry-after-ignored",
        "workers/adapters/youtube.py",
        "        return TransientError(label, message, retry_after(response))",
        "        return TransientError(label, message, None)",
        ("tests/workers/adapters/test_youtube.py::test_retry_after_is_respected",),
    ),
    Mutation(
        "restart-takes-live-leases-on-postgresql",
        "workers/inprocess.py",
        "scheduler.recover_after_restart(db.utcnow(), leases_may_live)",
        "scheduler.recover_after_restart(db.utcnow())",
        (
            (
                "tests/service/test_server.py::"
                "test_an_embedded_server_on_postgresql_leaves_posts_with_live_leases_to_the_sweeper"
            ),
        ),
    ),
    Mutation(
        "lost-database-lock-leaves-the-worker-running",
        "workers/inprocess.py",
        "        if self._stop_delivering():\n",
        "        if True:\n",
        (
            (
                "tests/service/test_server.py::"
                "test_an_embedded_server_on_postgresql_that_loses_its_database_stops_delivering"
            ),
        ),
    ),
    Mutation(
        "take-overs-never-use-up-attempts",
        "service/lifecycle.py",
        "    if event in (E.CRASH, E.TAKE_OVER, E.RESTART) and job.attempts >= policy.max_attempts:",
        "    if event is E.CRASH and job.attempts >= policy.max_attempts:",
        (
            (
                "tests/workers/test_poison.py::"
                "test_a_post_whose_worker_is_killed_on_it_each_time_fails_as_crashed"
            ),
        ),
    ),
    Mutation(
        "no-renewal-while-waiting",
        "workers/adapters/http.py",
        "        lease.renew()\n        left = ends_at",
        "        left = ends_at",
        ("tests/workers/test_leases.py",),
    ),
    Mutation(
        "5xx-to-a-create-counts-as-not-sent",
        "workers/adapters/http.py",
        "    if creates and response.status_code >= 500:",
        "    if False:",
        ("tests/workers/test_leases.py",),
    ),
    Mutation(
        "drafts-fire-at-their-old-time",
        "workers/scheduler.py",
        "        .where((Post.status == scheduled) & (Post.scheduled_at <= now))\n",
        "        .where(((Post.status == scheduled) | (Post.status == __import__('peewee')"
        ".SQL(\"'draft'\"))) & (Post.scheduled_at <= now))\n",
        (
            (
                "tests/service/test_scenarios.py::"
                "test_a_scheduled_post_turned_back_into_a_draft_keeps_its_time_and_does_not_fire"
            ),
        ),
    ),
    Mutation(
        "reschedule-without-clock-skew",
        "service/lifecycle.py",
        "        if time_moved and scheduled_at < now - CLOCK_SKEW:\n",
        "        if time_moved and scheduled_at < now:\n",
        (
            "tests/service/test_lifecycle.py",
            (
                "tests/service/test_scenarios.py::"
                "test_a_scheduled_post_moved_into_the_last_minute_is_published_now"
            ),
        ),
    ),
    Mutation(
        "x-look-up-without-tweet-fields",
        "workers/adapters/x.py",
        'params={"max_results": 100, "tweet.fields": TWEET_FIELDS},',
        'params={"max_results": 100},',
        ("tests/workers/adapters/test_x.py",),
    ),
    Mutation(
        "x-weighting-range-cut-short",
        "service/rules.py",
        "X_LIGHT_RANGES = ((0x0000, 0x10FF),",
        "X_LIGHT_RANGES = ((0x0000, 0x0FFF),",
        ("tests/service/test_rules.py",),
    ),
    Mutation(
        "marks-sorted-pieces-joined-unsorted",
        "service/rules.py",
        'return "".join("".join(by_class[ccc]) for ccc in sorted(by_class))',
        'return "".join("".join(by_class[ccc]) for ccc in by_class)',
        (
            (
                "tests/service/test_rules.py::"
                "test_a_hostile_item_costs_linear_time[combining-marks-out-of-order-x]"
            ),
        ),
    ),
    Mutation(
        "marks-pieces-of-a-class-out-of-order",
        "service/rules.py",
        'by_class[ccc].append("".join(chars))',
        'by_class[ccc].insert(0, "".join(chars))',
        ("tests/service/test_rules.py::test_sorting_runs_of_combining_marks_gives_the_same_nfc",),
    ),
    Mutation(
        "published-snapshot-without-the-live-item",
        "workers/delivery.py",
        "        item.platform_post_id, item.platform_url = published.platform_post_id, published.url\n",
        "        pass\n",
        ("tests/service/test_events.py::test_each_path_gives_exactly_its_events_in_order",),
    ),
    Mutation(
        "due-snapshot-of-the-post-before-the-move",
        "workers/scheduler.py",
        "{each.post.id: each for each in load_items(found)}",
        "{each.post.id: each for each in load_items(candidates.rows(Post, expected.value, *params))}",
        ("tests/service/test_events.py::test_each_path_gives_exactly_its_events_in_order",),
    ),
    Mutation(
        "media-run-on-into-the-next-item",
        "service/models.py",
        "            item, media = db.row_of(PostItem, _ITEM_FIELDS, row[:split]), []\n",
        "            item = db.row_of(PostItem, _ITEM_FIELDS, row[:split])\n",
        ("tests/service/test_scenarios.py::test_each_item_keeps_its_own_media_in_order",),
    ),
    Mutation(
        "media-read-in-reverse",
        "service/models.py",
        ".order_by(PostItem.post, PostItem.position, Media.position)",
        ".order_by(PostItem.post, PostItem.position, -Media.position)",
        ("tests/service/test_scenarios.py::test_each_item_keeps_its_own_media_in_order",),
    ),
    Mutation(
        "second-server-never-started",
        "service/server.py",
        "        for i in range(processes)\n",
        "        for i in range(min(processes, 1))\n",
        ("tests/service/test_server.py::test_serve_processes_share_one_port_and_stop_together",),
    ),
    Mutation(
        "event-cursor-in-insertion-order",
        "service/events.py",
        "    return PostEvent.id if db.is_sqlite() else PostEvent.seq\n",
        "    return PostEvent.id\n",
        (
            "tests/service/test_events.py::test_event_ids_never_go_back_while_concurrent_writers_commit",
        ),
        backends="postgres-redis",
    ),
    Mutation(
        "watch-join-one-too-early",
        "service/watch.py",
        "            if event.event_id > join:  # the queue has it\n",
        "            if event.event_id >= join:  # the queue has it\n",
        (
            "tests/service/test_watch.py::test_replay_then_live_neither_skips_nor_repeats_at_the_join",
        ),
    ),
    Mutation(
        "watch-new-workspace-misses-the-poll",
        "service/watch.py",
        "                            watcher.join = max(watcher.join or 0, upto)\n",
        "                            pass\n",
        (
            "tests/service/test_watch.py::test_the_first_watcher_of_a_workspace_opened_mid_poll_misses_nothing",
        ),
    ),
    Mutation(
        "token-refresh-without-claim",
        "workers/credentials.py",
        "            claimed = row.refreshing_until is None or row.refreshing_until <= now\n",
        "            claimed = True\n",
        (
            "tests/workers/adapters/test_credentials.py::test_two_workers_refreshing_at_once_spend_the_refresh_token_once",
        ),
    ),
    Mutation(
        "instagram-container-not-recorded",
        "workers/adapters/instagram.py",
        "                lease.record_handle(container_id)\n",
        "                pass\n",
        (
            "tests/workers/adapters/test_instagram.py::test_transient_failure_then_success_resumes_the_container",
            "tests/workers/test_kills_per_step.py",
        ),
    ),
    Mutation(
        "instagram-publishing-limit-ignored",
        "workers/adapters/instagram.py",
        "            self._check_quota(user_id, lease)\n",
        "            pass\n",
        (
            "tests/workers/adapters/test_instagram.py::test_a_full_publishing_quota_waits_without_spending_an_attempt",
        ),
    ),
    Mutation(
        "tiktok-publish-id-not-recorded",
        "workers/adapters/tiktok.py",
        "            lease.record_handle(publish_id)\n",
        "            pass\n",
        (
            "tests/workers/adapters/test_tiktok.py::test_a_transient_fail_reason_polls_again_without_a_second_init",
            "tests/workers/test_kills_per_step.py",
        ),
    ),
    Mutation(
        "tiktok-duration-unchecked",
        "workers/adapters/tiktok.py",
        "        if seconds is not None and seconds > longest:\n",
        "        if seconds is not None and seconds > longest * 2:\n",
        (
            "tests/workers/adapters/test_tiktok.py::test_a_video_longer_than_the_creator_may_post_fails_before_the_init",
        ),
    ),
    Mutation(
        "youtube-session-not-recorded",
        "workers/adapters/youtube.py",
        "                    lease.record_handle(session)\n",
        "                    pass\n",
        (
            "tests/workers/adapters/test_youtube.py::test_a_chunk_whose_answer_was_lost_resumes_on_the_same_session",
            "tests/workers/test_kills_per_step.py",
        ),
    ),
    Mutation(
        "youtube-resume-from-the-start",
        "workers/adapters/youtube.py",
        "            return None, _held(response)\n",
        "            return None, 0\n",
        (
            "tests/workers/adapters/test_youtube.py::test_a_chunk_whose_answer_was_lost_resumes_on_the_same_session",
        ),
    ),
    Mutation(
        "event-without-outbox",
        "service/migrations/0004_webhook_subscriptions.sqlite.sql",
        'NEW."workspace_id" AND "s"."state" = \'active\'',
        'NEW."workspace_id" AND "s"."state" = \'gone\'',
        ("tests/workers/test_event_webhooks.py",),
    ),
    Mutation(
        "redis-batch-skips-after-enqueue",
        "workers/broker.py",
        '                self.emit_after("enqueue", message, None)\n',
        "                pass\n",
        (
            "tests/workers/test_batch_send.py::test_a_batch_reaches_the_queue_once_each_through_the_middleware",
        ),
        backends="postgres-redis",
    ),
    Mutation(
        "redis-batch-drops-its-last-message",
        "workers/broker.py",
        "        refused = self._send_pipeline(ready)\n",
        "        refused = self._send_pipeline(ready[:-1])\n",
        (
            "tests/workers/test_batch_send.py::test_a_batch_reaches_the_queue_once_each_through_the_middleware",
        ),
        backends="postgres-redis",
    ),
    Mutation(
        "redis-batch-checks-its-script-first",
        "workers/broker.py",
        "            answers = pipeline.execute(raise_on_error=False)\n",
        "            pipeline.scripts.add(script)\n"
        "            answers = pipeline.execute(raise_on_error=False)\n",
        ("tests/workers/test_batch_send.py::test_a_batch_is_one_round_trip_to_redis",),
        backends="postgres-redis",
    ),
    Mutation(
        "redis-batch-hides-a-refusal",
        "workers/broker.py",
        "        if refused:\n            raise refused[0][1]\n",
        "",
        (
            "tests/workers/test_batch_send.py::test_a_batch_redis_takes_in_part_is_completed_by_the_sweeper",
        ),
        backends="postgres-redis",
    ),
    Mutation(
        "batch-loop-drops-its-last-message",
        "workers/broker.py",
        "        for message in messages:\n            self.enqueue(message)\n",
        "        for message in messages[:-1]:\n            self.enqueue(message)\n",
        (
            "tests/workers/test_batch_send.py::test_a_batch_reaches_the_queue_once_each_through_the_middleware",
        ),
        backends="sqlite,postgres-rabbitmq",
    ),
]


def run(mutation: Mutation) -> tuple[str, float, str]:
    """Applies ``mutation`` to a copy of the tree and runs its tests there."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"mutant-{mutation.name}-") as tmp:
        copy = pathlib.Path(tmp) / "tree"
        shutil.copytree(ROOT, copy, ignore=SKIP)
        try:
            mutation.apply(copy)
        except LookupError as error:
            return "stale", time.monotonic() - started, str(error)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-x",
                "-p",
                "no:cacheprovider",
                f"--backends={mutation.backends}",
                *mutation.tests,
            ],
            cwd=copy,
            capture_output=True,
            text=True,
            check=False,
        )
    lines = result.stdout.strip().splitlines()
    summary = lines[-1] if lines else result.stderr.strip()[-300:]
    # pytest exits 1 when tests failed; anything else (2-5), or a test that could
    # not even be set up ("1 error"), is not a kill.
    outcome = "killed" if result.returncode == 1 else "SURVIVED"
    if result.returncode not in (0, 1) or " error" in summary:
        outcome = f"error (pytest exit {result.returncode})"
    return outcome, time.monotonic() - started, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="mutations to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = parser.parse_args(argv)
    by_name = {m.name: m for m in MUTATIONS}
    if args.list:
        for m in MUTATIONS:
            print(f"{m.name}: {m.path} -> {' '.join(m.tests)} [{m.backends}]")
        return 0
    unknown = set(args.names) - set(by_name)
    if unknown:
        parser.error(f"unknown mutations {sorted(unknown)}; known: {sorted(by_name)}")
    chosen = [by_name[name] for name in args.names] or MUTATIONS
    failed = 0
    for mutation in chosen:
        outcome, seconds, summary = run(mutation)
        failed += outcome != "killed"
        print(f"{mutation.name:34} {outcome:9} {seconds:5.1f}s  {summary}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
