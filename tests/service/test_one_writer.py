"""Only service.store writes a post's lifecycle columns (and service.lifecycle decides them).

Exactly-once rests on it: a second place that sets a status, a job token, a
lease or an attempt count would make its own decision outside the table. The
test reads the source of service/ and workers/ and fails on any assignment,
keyword argument or update mapping that names one of those columns elsewhere.
"""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
COLUMNS = {"status", "job_token", "lease_expires_at", "attempts"}
ALLOWED = {"service/store.py", "service/lifecycle.py", "service/models.py"}
#: Calls that write rows: a model's constructor, insert, update, create.
WRITES = {"update", "insert", "insert_many", "create", "replace"}


def writes_in(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for each write of a lifecycle column: ``x.status = …`` (not on
    ``self``: an exception's own attribute), ``Post(status=…)``,
    ``Post.update(status=…)`` and ``Post.update({Post.status: …})``."""
    found = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for target in targets:
            if (
                isinstance(target, ast.Attribute)
                and target.attr in COLUMNS
                and getattr(target.value, "id", "") != "self"
            ):
                found.append((node.lineno, f".{target.attr} = …"))
        if isinstance(node, ast.Call):
            found += _call_writes(node)
    return found


def _call_writes(node: ast.Call) -> list[tuple[int, str]]:
    """``writes_in`` of one call: ``Post(status=…)``, ``Post.update(status=…)`` or
    ``Post.update({Post.status: …})``."""
    func = node.func
    if isinstance(func, ast.Name) and func.id == "Post":
        name = "Post"
    elif (
        isinstance(func, ast.Attribute)
        and func.attr in WRITES
        and getattr(func.value, "id", "") == "Post"
    ):
        name = f"Post.{func.attr}"
    else:
        return []
    found = []
    for keyword in node.keywords:
        if keyword.arg in COLUMNS:
            found.append((node.lineno, f"{name}({keyword.arg}=…)"))
    for arg in node.args:
        for key in arg.keys if isinstance(arg, ast.Dict) else ():
            if isinstance(key, ast.Attribute) and key.attr in COLUMNS:
                found.append((node.lineno, f"{name}({{Post.{key.attr}: …}})"))
    return found


def test_only_the_store_writes_lifecycle_columns():
    offenders = []
    for path in sorted([*ROOT.glob("service/**/*.py"), *ROOT.glob("workers/**/*.py")]):
        relative = path.relative_to(ROOT).as_posix()
        if relative in ALLOWED:
            continue
        for line, what in writes_in(ast.parse(path.read_text(), relative)):
            offenders.append(f"{relative}:{line}: {what}")
    assert not offenders, "lifecycle columns written outside service.store:\n" + "\n".join(
        offenders
    )


def test_the_check_sees_each_kind_of_write():
    # The detector must be able to fail: each form of write is caught.
    source = """
post.status = "pending"
post.attempts += 1
row.job_token = "t"
Post(id="p", lease_expires_at=None)
Post.update(status="failed").where(Post.id == "p")
Post.update({Post.attempts: 0})
self.status = 404
pb.Post(status=1)
"""
    assert sorted(line for line, _ in writes_in(ast.parse(source))) == [2, 3, 4, 5, 6, 7]
