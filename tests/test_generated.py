"""The committed contract artifacts are current: generated/ matches protos/ for Python
and the five other clients' languages, third_party/ holds the installed google/rpc
protos, and buf lint is clean."""

import pathlib
import shutil
import subprocess

from service import protogen
from tests.clients import generate as clientgen

ROOT = pathlib.Path(__file__).resolve().parent.parent
GENERATED = ROOT / "generated"
BUF = ROOT / "node_modules" / ".bin" / "buf"


def _committed_files() -> dict[str, bytes]:
    return {
        str(path.relative_to(GENERATED)): path.read_bytes()
        for path in sorted(GENERATED.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def test_generated_code_is_what_make_proto_would_write(tmp_path):
    # Given the protos regenerated into an empty directory
    written = protogen.generate(tmp_path)
    fresh = {str(path.relative_to(tmp_path)): path.read_bytes() for path in written}
    assert fresh, "protogen.generate wrote nothing"

    # Then every file is byte-for-byte what generated/ holds
    committed = _committed_files()
    stale = sorted(name for name in fresh if committed.get(name) != fresh[name])
    assert not stale, f"generated/ is stale, run `make proto`: {stale}"

    # And generated/ holds no leftover module that protos/ no longer makes
    leftovers = sorted(
        name for name in committed if name.endswith((".py", ".pyi")) and name not in fresh
    )
    assert not leftovers, f"generated/ holds files protos/ does not make: {leftovers}"


def test_client_code_is_what_make_clients_would_write(tmp_path):
    # Given the google/rpc protos as installed, and every client regenerated
    # from them into an empty directory (the tools missing fail: `make test`
    # installs them, `make client-deps` alone too)
    third_party = tmp_path / "third_party"
    clientgen.copy_rpc_protos(third_party)
    written = clientgen.generate(tmp_path / "generated", third_party)
    fresh = {str(path.relative_to(tmp_path / "generated")): path.read_bytes() for path in written}
    assert {name.partition("/")[0] for name in fresh} == set(clientgen.LANGUAGES)

    # Then third_party/ holds those protos
    stale_protos = sorted(
        name
        for name, content in clientgen.rpc_protos().items()
        if not (clientgen.THIRD_PARTY / name).is_file()
        or (clientgen.THIRD_PARTY / name).read_bytes() != content
    )
    assert not stale_protos, f"third_party/ is stale, run `make clients`: {stale_protos}"

    # And generated/<language>/ holds exactly the fresh files, byte for byte
    committed = {
        name: content
        for name, content in _committed_files().items()
        if name.partition("/")[0] in clientgen.LANGUAGES
    }
    stale = sorted(name for name in fresh if committed.get(name) != fresh[name])
    assert not stale, f"generated/ is stale, run `make clients`: {stale}"
    leftovers = sorted(set(committed) - set(fresh))
    assert not leftovers, f"generated/ holds files protos/ does not make: {leftovers}"


def _buf() -> str:
    # Always there: `make test` installs buf first, so a missing one is a broken setup
    buf = str(BUF) if BUF.exists() else shutil.which("buf")
    assert buf is not None, (
        f"buf is not installed (no {BUF.relative_to(ROOT)} and none on PATH); "
        "`make test` installs it, or run `make buf-lint`"
    )
    return buf


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"git {' '.join(args)} failed: {done.stderr}"
    return done.stdout.strip()


def test_proto_passes_buf_lint():
    result = subprocess.run(
        [_buf(), "lint"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )

    assert result.returncode == 0, f"buf lint failed:\n{result.stdout}{result.stderr}"


def test_proto_stays_wire_compatible_with_its_previous_version():
    # Given the proto as it stood before the last commit that changed it (so a
    # committed change is checked too, and an uncommitted one along with it),
    # read from the local repository
    last_change = _git("log", "-1", "--format=%H", "--", "protos")
    assert last_change, "no commit changed protos/: is this a shallow clone?"
    previous = _git("rev-parse", "--verify", f"{last_change}~1")

    # When buf compares the working tree's proto with it, field by field
    result = subprocess.run(
        [_buf(), "breaking", "--against", f".git#ref={previous}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # Then nothing a deployed client relies on changed: no field renumbered,
    # retyped or removed, no RPC or enum value gone (buf's FILE rules)
    assert result.returncode == 0, f"buf breaking failed:\n{result.stdout}{result.stderr}"
