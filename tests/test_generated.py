"""The committed contract artifacts are current: generated/ matches protos/, buf lint is clean."""

import pathlib
import shutil
import subprocess

from service import protogen

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


def test_proto_passes_buf_lint():
    # Always run: `make test` installs buf first, so a missing one is a broken setup
    buf = str(BUF) if BUF.exists() else shutil.which("buf")
    assert buf is not None, (
        f"buf is not installed (no {BUF.relative_to(ROOT)} and none on PATH); "
        "`make test` installs it, or run `make buf-lint`"
    )

    result = subprocess.run(
        [buf, "lint"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )

    assert result.returncode == 0, f"buf lint failed:\n{result.stdout}{result.stderr}"
