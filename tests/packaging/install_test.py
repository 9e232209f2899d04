"""install_test.py BUILD_DIR SOURCE_DIR VERSION — Switchboard as a dependency.

Installs BUILD_DIR into a temporary prefix (`cmake --install --prefix`) and
checks it the way a user meets it:

  1. the layout: binary, libraries, headers, CMake package, switchboard.pc;
     every header of the source tree's include/ installed, nothing else;
  2. each installed header compiles alone with only -I PREFIX/include (so no
     public header needs a src/ header or a private include directory),
     warnings as errors;
  3. the version is VERSION everywhere: `switchboard --version`, version.hpp,
     pkg-config --modversion, the CMake version file (which accepts 0.2 and
     0.2.x and refuses 0.1, 0.3 and 1.0);
  4. every project in examples/ configures and builds on its own with
     find_package(switchboard 0.2 CONFIG REQUIRED) against the prefix, and two
     of them once more with one `c++ ... $(pkg-config --cflags --libs switchboard)`;
  5. they run: sans_io_echo prints its exchange; echo_server serves on a port
     chosen at run time and ws_client (both builds) talks to it; the installed
     `switchboard serve` starts with a temporary config and realtime_subscriber
     receives a publication made with POST /api/publish.

Everything is on 127.0.0.1 with kernel-chosen ports, in a temporary directory
that is removed at the end.
"""

import json
import re
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from support import Failure, Process, check, http_post_json, main, read_line, run, step  # noqa: E402

EXAMPLES = {
    # directory: executable
    "sans_io": "sans_io_echo",
    "echo_server": "echo_server",
    "client": "ws_client",
    "realtime_subscriber": "realtime_subscriber",
}
CXX = os.environ.get("CXX", "c++")


def test(build_dir, source_dir, version, tmp):
    prefix = tmp / "prefix"
    env = dict(os.environ, PKG_CONFIG_PATH=str(prefix / "lib" / "pkgconfig"))
    # What the pkg-config builds need at run time when the libraries are shared
    # (the CMake builds carry an RPATH; the installed binary $ORIGIN/../lib).
    run_env = dict(os.environ, LD_LIBRARY_PATH=str(prefix / "lib"))

    with step(f"cmake --install {build_dir} --prefix {prefix}"):
        run(["cmake", "--install", build_dir, "--prefix", prefix])
        for path in ["bin/switchboard", "lib/cmake/switchboard/switchboardConfig.cmake",
                     "lib/cmake/switchboard/switchboardConfigVersion.cmake",
                     "lib/pkgconfig/switchboard.pc", "include/switchboard/version.hpp",
                     "share/man/man1/switchboard.1.gz"]:
            check((prefix / path).is_file(), f"not installed: {path}")
        libraries = sorted(p.name for p in (prefix / "lib").glob("libswitchboard_*"))
        for layer in ["protocol", "net", "server", "client", "realtime"]:
            check(any(n.startswith(f"libswitchboard_{layer}.") for n in libraries),
                  f"no libswitchboard_{layer} in {libraries}")
        check(not list(prefix.rglob("*.cpp")), "a source file was installed")

    shared = sorted((prefix / "lib").glob("libswitchboard_*.so"))
    if shared:
        with step(f"the {len(shared)} shared libraries export only what include/ declares"):
            check_exports(shared, source_dir / "include")

    installed = sorted(str(p.relative_to(prefix / "include"))
                       for p in (prefix / "include").rglob("*.hpp"))
    with step(f"the installed headers are include/'s, the export headers and version.hpp"):
        tree = sorted(str(p.relative_to(source_dir / "include"))
                      for p in (source_dir / "include").rglob("*.hpp"))
        generated = ["switchboard/version.hpp"] + [
            f"switchboard/{layer}/export.hpp"
            for layer in ["protocol", "net", "server", "client", "realtime"]] + [
            "switchboard/realtime/client_export.hpp"]
        missing = sorted(set(tree) - set(installed))
        extra = sorted(set(installed) - set(tree) - set(generated))
        check(not missing, f"headers of include/ not installed (add them to SWITCHBOARD_<LAYER>_HEADERS): {missing}")
        check(not extra, f"installed headers that are not in include/: {extra}")
        check(set(generated) <= set(installed), "export.hpp or version.hpp not installed")

    # Compiling 50 headers one by one takes a minute on a loaded machine, so the
    # check is split in two parts that together say the same: each header's
    # includes all resolve with only -I PREFIX/include (preprocessing each one
    # alone), and all of them compile with that flag (one translation unit).
    # That each includes what it uses is header_alone's job in the build tree,
    # on the very same files.
    include_flags = ["-std=c++20", "-I", prefix / "include"]
    with step(f"each of the {len(installed)} installed headers preprocesses alone against the prefix"):
        def preprocess_alone(header):
            try:
                run([CXX, *include_flags, "-E", "-o", "/dev/null", "-x", "c++", "-"],
                    input_text=f"#include <{header}>\n", timeout=60)
                return None
            except Failure as e:
                return f"{header}: {e}"
        with ThreadPoolExecutor(max_workers=2) as pool:
            errors = [e for e in pool.map(preprocess_alone, installed) if e]
        check(not errors, "\n".join(errors))
    with step("all installed headers compile against the prefix, warnings as errors"):
        run([CXX, *include_flags, "-fsyntax-only", "-Wall", "-Wextra", "-Wpedantic", "-Werror",
             "-x", "c++", "-"],
            input_text="".join(f"#include <{h}>\n" for h in installed), timeout=120)

    with step(f"version {version} everywhere"):
        out = run([prefix / "bin/switchboard", "--version"]).strip()
        check(out == f"switchboard {version}", f"switchboard --version printed {out!r}")
        header = (prefix / "include/switchboard/version.hpp").read_text()
        check(f'#define SWITCHBOARD_VERSION "{version}"' in header, "version.hpp disagrees")
        out = run(["pkg-config", "--modversion", "switchboard"], env=env).strip()
        check(out == version, f"pkg-config --modversion printed {out!r}")
        major, minor, _ = version.split(".")
        script = tmp / "version_check.cmake"
        script.write_text(
            'include("${FILE}")\n'
            'message("${PACKAGE_VERSION} ${PACKAGE_VERSION_COMPATIBLE}")\n')
        wanted = {f"{major}.{minor}": True, version: True,
                  f"{major}.{int(minor) - 1}": False, f"{major}.{int(minor) + 1}": False,
                  f"{int(major) + 1}.0": False}
        for asked, compatible in wanted.items():
            # message() writes to stderr.
            parts = (asked.split(".") + ["0", "0"])[:3]
            out = subprocess.run(
                ["cmake", f"-DPACKAGE_FIND_VERSION={asked}",
                 f"-DPACKAGE_FIND_VERSION_COUNT={asked.count('.') + 1}",
                 f"-DPACKAGE_FIND_VERSION_MAJOR={parts[0]}", f"-DPACKAGE_FIND_VERSION_MINOR={parts[1]}",
                 f"-DPACKAGE_FIND_VERSION_PATCH={parts[2]}",
                 f"-DFILE={prefix}/lib/cmake/switchboard/switchboardConfigVersion.cmake",
                 "-P", str(script)], capture_output=True, text=True, timeout=30).stderr.split()
            check(out[:1] == [version], f"ConfigVersion says version {out}")
            check((out[1:2] == ["TRUE"]) == compatible,
                  f"find_package(switchboard {asked}) compatible={out[1:2]}, expected {compatible}")

    builds = {}
    with step("examples/*: configure + build each against the prefix with find_package"):
        def build(example):
            binary_dir = tmp / f"build-{example}"
            run(["cmake", "-S", source_dir / "examples" / example, "-B", binary_dir, "-G", "Ninja",
                 f"-DCMAKE_PREFIX_PATH={prefix}", "-DCMAKE_BUILD_TYPE=", "-Wno-dev"],
                env=env, timeout=180)
            run(["cmake", "--build", binary_dir], env=env, timeout=300)
            return binary_dir / EXAMPLES[example]
        with ThreadPoolExecutor(max_workers=2) as pool:
            for example, path in zip(EXAMPLES, pool.map(build, EXAMPLES)):
                check(path.is_file(), f"{example}: {path} was not built")
                builds[example] = path

    pkgconfig_builds = {}
    with step("sans_io_echo and ws_client again with c++ $(pkg-config --cflags --libs switchboard)"):
        flags = run(["pkg-config", "--cflags", "--libs", "switchboard"], env=env).split()
        def build(example):
            source = next((source_dir / "examples" / example).glob("*.cpp"))
            output = tmp / f"{EXAMPLES[example]}-pkgconfig"
            run([CXX, "-std=c++20", source, "-o", output, *flags], timeout=300)
            return output
        with ThreadPoolExecutor(max_workers=2) as pool:
            for example, path in zip(["sans_io", "client"], pool.map(build, ["sans_io", "client"])):
                pkgconfig_builds[example] = path

    with step("sans_io_echo (CMake and pkg-config builds) prints the exchange"):
        for binary in [builds["sans_io"], pkgconfig_builds["sans_io"]]:
            out = run([binary], timeout=30, env=run_env)
            for expected in ["HTTP/1.1 101 Switching Protocols",
                             "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
                             "message (text): Hello", "peer closed: 1000"]:
                check(expected in out, f"{binary.name}: no {expected!r} in:\n{out}")

    with step("echo_server on a run-time port; ws_client (both builds) talks to it"):
        server = Process([builds["echo_server"], "0"], tmp / "echo_server.log")
        try:
            url = f"ws://127.0.0.1:{server.port}/chat"
            for client in [builds["client"], pkgconfig_builds["client"]]:
                out = run([client, url, "hello", "second message", "héllo ✓"], timeout=30,
                          env=run_env)
                check(out.splitlines() == ["hello", "second message", "héllo ✓"],
                      f"{client.name} printed {out!r}")
            server.stop()
        finally:
            server.kill()

    with step("switchboard serve + realtime_subscriber + POST /api/publish"):
        config = tmp / "serve.toml"
        config.write_text(
            '[server]\nhost = "127.0.0.1"\nport = 0\ndemo = false\n'
            '[auth]\nallow_anonymous = true\n'
            f'[history]\nsnapshot_file = "{tmp}/snapshot.json"\n'
            '[log]\nlevel = "warn"\n')
        serve_env = dict(os.environ, SWITCHBOARD_API_KEY="packaging-test-key")
        server = Process([prefix / "bin/switchboard", "serve", "--config", config],
                         tmp / "serve.log", env=serve_env)
        subscriber = None
        try:
            subscriber = subprocess.Popen(
                [str(builds["realtime_subscriber"]), f"ws://127.0.0.1:{server.port}/ws", "news", "1"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            line = read_line(subscriber, 15)
            check(line == "subscribed news", f"realtime_subscriber said {line!r}")
            status, body = http_post_json(server.port, "/api/publish",
                                          {"channel": "news", "data": {"title": "from the test"}},
                                          headers={"X-API-Key": "packaging-test-key"})
            check(status == 200, f"POST /api/publish: {status} {body}")
            line = read_line(subscriber, 15)
            push = json.loads(line)
            check(push.get("push") == "message" and push.get("channel") == "news"
                  and push.get("data") == {"title": "from the test"}
                  and push.get("offset") == body.get("offset"),
                  f"realtime_subscriber printed {line!r} for publication {body}")
            code = subscriber.wait(timeout=15)
            check(code == 0, f"realtime_subscriber exited {code}: {subscriber.stderr.read()!r}")
            server.stop()
        finally:
            if subscriber and subscriber.poll() is None:
                subscriber.kill()
                subscriber.wait()
            server.kill()


def check_exports(libraries, include_dir):
    """Each library's dynamic symbols in namespace switchboard name something
    of the public headers: a leaked src/ class (hub, session, a broker) shows
    up as a name include/ never mentions. Also a SONAME of MAJOR.MINOR."""
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*",
                           "".join(h.read_text() for h in include_dir.rglob("*.hpp"))))
    for library in libraries:
        soname = run(["objdump", "-p", library])
        check(re.search(rf"SONAME\s+{re.escape(library.name)}\.\d+\.\d+\b", soname),
              f"{library.name}: no SONAME {library.name}.MAJOR.MINOR")
        symbols = run(["nm", "-D", "-C", "--defined-only", library]).splitlines()
        exported = [line.split(" ", 2)[2] for line in symbols
                    if len(line.split(" ", 2)) == 3 and line.split(" ", 2)[1] in "TWV"]
        names = [s for s in exported if s.startswith("switchboard::")]
        check(names, f"{library.name} exports nothing of switchboard")
        leaked = set()
        for symbol in names:
            # switchboard::<layer>::<name>... (before any argument list)
            parts = symbol.split("(", 1)[0].split("::")
            for part in parts[1:3]:
                part = part.split("<", 1)[0].split("[", 1)[0].strip()
                if (part and part != "detail" and not part.startswith(("~", "operator"))
                        and part not in words):
                    leaked.add(symbol)
        check(not leaked, f"{library.name} exports symbols no public header declares "
                          f"(a SWITCHBOARD_<LAYER>_EXPORT on a src/ type?):\n" +
                          "\n".join(sorted(leaked)[:20]))


def entry():
    if len(sys.argv) != 4:
        raise Failure("usage: install_test.py BUILD_DIR SOURCE_DIR VERSION")
    build_dir, source_dir, version = sys.argv[1:]
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="switchboard-install-"))
    try:
        test(build_dir, pathlib.Path(source_dir), version, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(entry)
