"""Regenerates ``generated/<language>/`` for the TypeScript, Go, C++, Java and Ruby
clients from ``protos/`` (``make clients``).

TypeScript comes from buf with the local protoc-gen-es plugin (node_modules); the
others from Debian's protoc and gRPC plugins, whose runtime libraries (Debian's
too) the generated code must match. The ``google/rpc`` protos that error details
need are copied from the googleapis-common-protos package into ``third_party/``,
outside the module that ``buf lint`` checks; the Go and Ruby runtimes already
ship them (genproto, googleapis-common-protos-types), so only TypeScript, C++
and Java get their own.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import tempfile

from google import rpc as google_rpc

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
PROTOS = ROOT / "protos"
THIRD_PARTY = ROOT / "third_party"
GENERATED = ROOT / "generated"
NODE_BIN = ROOT / "node_modules" / ".bin"
LANGUAGES = ("typescript", "go", "cpp", "java", "ruby")
#: The error-detail protos, as googleapis-common-protos ships them.
RPC_PROTOS = ("google/rpc/status.proto", "google/rpc/error_details.proto")
#: Debian's protoc: its version is the one of the C++, Java and Ruby runtimes.
PROTOC = "/usr/bin/protoc"
#: Where Debian's protoc finds google/protobuf/*.proto (libprotobuf-dev).
WELL_KNOWN = "/usr/include"


def rpc_protos() -> dict[str, bytes]:
    """The google/rpc protos from the installed googleapis-common-protos, by path."""
    package = pathlib.Path(google_rpc.__path__[0]).parent.parent
    return {name: (package / name).read_bytes() for name in RPC_PROTOS}


def copy_rpc_protos(third_party: pathlib.Path = THIRD_PARTY) -> None:
    """Writes the google/rpc protos under ``third_party``."""
    for name, content in rpc_protos().items():
        (third_party / name).parent.mkdir(parents=True, exist_ok=True)
        (third_party / name).write_bytes(content)


def _run(args: list[str], cwd: pathlib.Path = ROOT) -> None:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}")


def _sources(root: pathlib.Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.proto"))


def _protoc(
    out_dir: pathlib.Path, third_party: pathlib.Path, *options: str, with_rpc: bool
) -> None:
    includes = [f"-I{PROTOS}"] + ([f"-I{third_party}"] if with_rpc else []) + [f"-I{WELL_KNOWN}"]
    sources = _sources(PROTOS) + (list(RPC_PROTOS) if with_rpc else [])
    out_dir.mkdir(parents=True, exist_ok=True)
    _run([PROTOC, *includes, *options, *sources])


def typescript(out_dir: pathlib.Path, third_party: pathlib.Path) -> None:
    # buf's inputs are directories here, so no remote module or plugin is needed
    with tempfile.TemporaryDirectory() as scratch:
        template = pathlib.Path(scratch) / "buf.gen.yaml"
        template.write_text(
            "version: v2\n"
            "plugins:\n"
            f"  - local: {NODE_BIN / 'protoc-gen-es'}\n"
            f"    out: {out_dir}\n"
            "    opt: target=ts\n"
        )
        for source in (PROTOS, third_party):
            _run([str(NODE_BIN / "buf"), "generate", "--template", str(template), str(source)])


def go(out_dir: pathlib.Path, third_party: pathlib.Path) -> None:
    _protoc(
        out_dir,
        third_party,
        f"--go_out={out_dir}",
        "--go_opt=paths=source_relative",
        f"--go-grpc_out={out_dir}",
        "--go-grpc_opt=paths=source_relative",
        with_rpc=False,
    )


def cpp(out_dir: pathlib.Path, third_party: pathlib.Path) -> None:
    _protoc(
        out_dir,
        third_party,
        f"--cpp_out={out_dir}",
        f"--grpc_out={out_dir}",
        "--plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin",
        with_rpc=True,
    )


def java(out_dir: pathlib.Path, third_party: pathlib.Path) -> None:
    _protoc(
        out_dir,
        third_party,
        f"--java_out={out_dir}",
        f"--grpc_out={out_dir}",
        "--plugin=protoc-gen-grpc=/usr/bin/grpc_java_plugin",
        with_rpc=True,
    )


def ruby(out_dir: pathlib.Path, third_party: pathlib.Path) -> None:
    _protoc(
        out_dir,
        third_party,
        f"--ruby_out={out_dir}",
        f"--grpc_out={out_dir}",
        "--plugin=protoc-gen-grpc=/usr/bin/grpc_ruby_plugin",
        with_rpc=False,
    )


GENERATORS = {"typescript": typescript, "go": go, "cpp": cpp, "java": java, "ruby": ruby}


def generate(
    out_dir: pathlib.Path = GENERATED, third_party: pathlib.Path = THIRD_PARTY
) -> list[pathlib.Path]:
    """Writes every language's client code into ``out_dir/<language>/``, each
    directory emptied first so that nothing protos/ no longer makes is left;
    the google/rpc protos are read from ``third_party``.

    Returns the files written; raises RuntimeError when a generator fails."""
    written = []
    for language, generator in GENERATORS.items():
        target = out_dir / language
        shutil.rmtree(target, ignore_errors=True)
        generator(target, third_party)
        written += sorted(p for p in target.rglob("*") if p.is_file())
    return written


if __name__ == "__main__":
    copy_rpc_protos()
    for path in generate():
        print(path.relative_to(ROOT))
    sys.exit(0)
