"""The generated clients work: each language's program in ``tests/clients/<language>/``
runs the core flow against a live server, and what it prints is what the server
holds and what the Python client is answered for the same calls.

Builds are cached under ``build/clients/<language>/``, keyed by a hash of their
inputs, so a second run only runs the programs. ``make test`` installs the
toolchains first (``make client-deps``); a missing one fails here, never skips.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import pathlib
import shutil
import subprocess

import grpc
import pytest

from tests.processes import ROOT, ServerProcess, provision_tenant
from tests.support import refused

# isort: split
from posts.v1 import posts_pb2, posts_pb2_grpc

HERE = pathlib.Path(__file__).resolve().parent
GENERATED = pathlib.Path(ROOT) / "generated"
BUILD = pathlib.Path(ROOT) / "build" / "clients"
NODE_MODULES = pathlib.Path(ROOT) / "node_modules"
SECRET_KEY = "clients-secret-key-0123456789abcdef-0123456789"
#: How long one program may take to build, and to run its flow.
BUILD_TIMEOUT = 300
RUN_TIMEOUT = 90


def _inputs(language: str) -> list[pathlib.Path]:
    """Every file a language's build reads from the repository."""
    roots = [GENERATED / language, HERE / language]
    return sorted(p for root in roots for p in root.rglob("*") if p.is_file())


def _digest(language: str, toolchain: str) -> str:
    digest = hashlib.sha256(toolchain.encode())
    for path in _inputs(language):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _run(
    args: list[str],
    cwd: pathlib.Path,
    env: dict[str, str] | None = None,
    timeout: float = BUILD_TIMEOUT,
) -> str:
    done = subprocess.run(
        args,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}"
    return done.stdout


def _tool(path: str) -> str:
    found = shutil.which(path)
    assert found, f"{path} is not installed: `make client-deps` installs the client toolchains"
    return found


# ------------------------------------------------------------------ languages


def build_go(out: pathlib.Path) -> list[str]:
    # GOPATH mode against Debian's Go libraries: nothing is fetched
    gopath = out / "gopath"
    package = gopath / "src" / "github.com" / "example" / "posts" / "gen" / "go" / "posts" / "v1"
    program = gopath / "src" / "postsclient"
    for link, target in ((package, GENERATED / "go" / "posts" / "v1"), (program, HERE / "go")):
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(target)
    env = {
        "GO111MODULE": "off",
        "GOPROXY": "off",
        "GOFLAGS": "",
        "GOPATH": f"{gopath}:/usr/share/gocode",
        "GOCACHE": str(out / "cache"),
    }
    _run([_tool("go"), "build", "-o", str(out / "client"), "."], cwd=program, env=env)
    return [str(out / "client")]


def build_typescript(out: pathlib.Path) -> list[str]:
    # tsc from node_modules; the compiled program finds its libraries there too
    tsc = NODE_MODULES / ".bin" / "tsc"
    assert tsc.exists(), "tsc is not installed: `make test` installs the node packages"
    config = HERE / "typescript" / "tsconfig.json"
    _run([str(tsc), "-p", str(config), "--outDir", str(out / "js")], cwd=HERE / "typescript")
    return [_tool("node"), str(out / "js" / "tests" / "clients" / "typescript" / "client.js")]


def build_cpp(out: pathlib.Path) -> list[str]:
    # Each translation unit compiled in its own g++ at once, then linked against
    # Debian's gRPC and protobuf
    flags = _run(["pkg-config", "--cflags", "--libs", "grpc++", "protobuf"], cwd=HERE).split()
    units = [HERE / "cpp" / "client.cc", *sorted((GENERATED / "cpp").rglob("*.cc"))]
    objects = [out / f"{unit.relative_to(ROOT)}.o".replace("/", "_") for unit in units]
    compile_flags = ["-std=c++17", "-O0", "-I", str(GENERATED / "cpp")]
    compile_flags += [f for f in flags if not f.startswith(("-l", "-Wl"))]
    compilers = [
        subprocess.Popen(
            [_tool("g++"), *compile_flags, "-c", str(unit), "-o", str(obj)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for unit, obj in zip(units, objects, strict=True)
    ]
    for compiler in compilers:
        _, errors = compiler.communicate(timeout=BUILD_TIMEOUT)
        assert compiler.returncode == 0, f"g++ failed:\n{errors}"
    libs = [f for f in flags if f.startswith(("-l", "-Wl"))]
    _run([_tool("g++"), "-o", str(out / "client"), *map(str, objects), *libs], cwd=out)
    return [str(out / "client")]


#: Debian's jars the Java program needs; libgrpc-java declares none of netty,
#: perfmark and gson, and the generated stubs need the javax annotations.
JARS = [
    "grpc-api",
    "grpc-context",
    "grpc-core",
    "grpc-netty",
    "grpc-protobuf",
    "grpc-protobuf-lite",
    "grpc-stub",
    "protobuf",
    "guava",
    "perfmark-api",
    "gson",
    "geronimo-annotation-1.3-spec",
    "netty-buffer",
    "netty-codec",
    "netty-codec-http",
    "netty-codec-http2",
    "netty-codec-socks",
    "netty-common",
    "netty-handler",
    "netty-handler-proxy",
    "netty-resolver",
    "netty-transport",
]


def build_java(out: pathlib.Path) -> list[str]:
    jars = [pathlib.Path("/usr/share/java") / f"{name}.jar" for name in JARS]
    missing = [str(jar) for jar in jars if not jar.exists()]
    assert not missing, f"missing {missing}: `make client-deps` installs the Java packages"
    classes = out / "classes"
    shutil.rmtree(classes, ignore_errors=True)
    classpath = ":".join(str(jar) for jar in jars)
    sources = [str(p) for p in sorted((GENERATED / "java").rglob("*.java"))]
    _run(
        [
            _tool("javac"),
            "-nowarn",
            "-encoding",
            "UTF-8",
            "-d",
            str(classes),
            "-cp",
            classpath,
            *sources,
            str(HERE / "java" / "Client.java"),
        ],
        cwd=HERE / "java",
    )
    return [_tool("java"), "-cp", f"{classes}:{classpath}", "Client"]


def build_ruby(out: pathlib.Path) -> list[str]:
    # Nothing to build: Debian's grpc gem loads the generated code as it is
    return [_tool("ruby"), "-I", str(GENERATED / "ruby"), str(HERE / "ruby" / "client.rb")]


LANGUAGES = {
    "cpp": (build_cpp, "g++ --version; dpkg-query -W libgrpc++-dev libprotobuf-dev"),
    "go": (build_go, "go version; dpkg-query -W golang-google-grpc-dev golang-google-protobuf-dev"),
    "java": (build_java, "javac -version; dpkg-query -W libgrpc-java libprotobuf-java"),
    "ruby": (build_ruby, "ruby --version"),
    "typescript": (build_typescript, "node --version; node_modules/.bin/tsc --version"),
}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A ``python -m service serve`` (SQLite, embedded worker) and a tenant with a
    sandbox X account, made through the admin command line."""
    var = tmp_path_factory.mktemp("clients")
    env = {
        "POSTS_VAR_DIR": str(var),
        "POSTS_DATABASE_URL": f"sqlite:///{var}/posts.db",
        "POSTS_SECRET_KEY": SECRET_KEY,
    }
    tenant = provision_tenant(env, "clients", migrate=True)
    server = ServerProcess(env, str(var / "server.log")).start()
    try:
        server.wait_serving()
        yield server, tenant
    finally:
        server.stop()


def _built(language: str) -> list[str]:
    """The command that runs ``language``'s program, building it first unless
    its inputs are unchanged since the last build."""
    build, toolchain_command = LANGUAGES[language]
    toolchain = _run(["sh", "-c", toolchain_command], cwd=pathlib.Path(ROOT))
    out = BUILD / language
    stamp = out / "inputs.sha256"
    digest = _digest(language, toolchain)
    out.mkdir(parents=True, exist_ok=True)
    command_file = out / "command"
    if stamp.exists() and stamp.read_text() == digest and command_file.exists():
        return command_file.read_text().split("\0")
    stamp.unlink(missing_ok=True)
    command = build(out)
    command_file.write_text("\0".join(command))
    stamp.write_text(digest)
    return command


def _printed(stdout: str) -> dict[str, list[str]]:
    """The program's ``label: words`` lines as ``{label: words}``."""
    return {
        label: rest.split()
        for label, _, rest in (line.partition(": ") for line in stdout.splitlines())
    }


@pytest.fixture(scope="module")
def programs(request):
    """The commands of the selected languages' programs, built all at once in the
    background: each build is mostly one process, so together they take about as
    long as the slowest."""
    selected = {
        item.callspec.params["language"]
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    }
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(LANGUAGES)) as pool:
        yield {language: pool.submit(_built, language) for language in sorted(selected)}


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_the_generated_client_runs_the_core_flow(language, live, programs):
    server, tenant = live
    command = programs[language].result(timeout=BUILD_TIMEOUT)

    # When the program runs against the live server
    done = subprocess.run(
        command,
        cwd=HERE / language,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env={
            **os.environ,
            "POSTS_ADDRESS": server.address,
            "POSTS_API_KEY": tenant.key,
            "POSTS_ACCOUNT_ID": tenant.account_id,
        },
        check=False,
    )
    assert done.returncode == 0, f"{language} client failed:\n{done.stdout}{done.stderr}"
    printed = _printed(done.stdout)

    with grpc.insecure_channel(server.address) as channel:
        stub = posts_pb2_grpc.PostServiceStub(channel)
        metadata = (("authorization", f"Bearer {tenant.key}"),)
        # Then its draft was made, published and is live with the id it read back
        post_id, created_status = printed["created"]
        post = stub.GetPostStatus(
            posts_pb2.GetPostStatusRequest(post_id=post_id), metadata=metadata, timeout=10
        ).post
        assert int(created_status) == posts_pb2.POST_STATUS_DRAFT
        assert int(printed["published"][0]) in {
            posts_pb2.POST_STATUS_PENDING,
            posts_pb2.POST_STATUS_PROCESSING,
            posts_pb2.POST_STATUS_PUBLISHED,
        }
        assert post.status == posts_pb2.POST_STATUS_PUBLISHED
        assert post.platform_post_id and printed["live"] == [post.platform_post_id]

        # And it decoded the same error details as the Python client gets
        edit = refused(
            stub.UpdatePost,
            posts_pb2.UpdatePostRequest(post_id=post_id, text="too late"),
            tenant.key,
        )
        create = refused(
            stub.CreatePost,
            posts_pb2.CreatePostRequest(
                post_type=posts_pb2.POST_TYPE_TWEET,
                text="no account",
                status=posts_pb2.STATUS_CHANGE_DRAFT,
            ),
            tenant.key,
        )
        assert edit.reason and create.reason and create.fields, (edit, create)
        assert printed["refused edit"] == [str(edit.code.value[0]), edit.reason]
        assert printed["refused create"] == [
            str(create.code.value[0]),
            create.reason,
            ",".join(create.field_violations),
        ]

        # And the events it watched are the post's, from CREATED to PUBLISHED
        events = stub.ListPostEvents(
            posts_pb2.ListPostEventsRequest(post_id=post_id), metadata=metadata, timeout=10
        ).events
        types = [event.type for event in events]
        assert types[0] == posts_pb2.POST_EVENT_TYPE_CREATED
        assert types[-1] == posts_pb2.POST_EVENT_TYPE_PUBLISHED
        assert printed["watched"] == [",".join(str(t) for t in types)]
