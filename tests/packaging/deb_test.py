"""deb_test.py BUILD_DIR SOURCE_DIR VERSION — the Debian packages from CPack.

Builds the packages of BUILD_DIR with cpack into a temporary directory, then:

  1. metadata (dpkg-deb -f / -I): name, Version = VERSION, Architecture =
     dpkg's, Maintainer, Section, a synopsis and a long description, Depends
     computed by dpkg-shlibdeps (libc6, libssl3, ...) plus procps; the
     conffiles list and the maintainer scripts;
  2. contents (dpkg-deb -c): the server package holds /usr/bin/switchboard,
     /etc/switchboard/switchboard.toml, the systemd unit, the gzipped man page
     and /usr/share/doc/switchboard/copyright, and no headers or build paths;
     the -dev package holds the headers, libraries, CMake package and .pc;
  3. unpacks both (dpkg -x) into a temporary root and checks what is there:
     the unit's hardening and ExecReload, `systemd-analyze verify` of the unit
     (pointed at the unpacked binary), the man page (a roff page for this
     version with a section per subcommand);
  4. runs the unpacked binary: `--version` prints VERSION; `serve` with the
     packaged configuration refuses to start without a JWT secret (the one
     thing it asks of the admin), and with SWITCHBOARD_JWT_SECRET, a port
     chosen at run time and the snapshot in the temporary directory it serves
     /healthz, survives SIGHUP (systemctl reload), and exits 0 on SIGTERM
     having written its snapshot;
  5. builds examples/sans_io against the unpacked -dev package with pkg-config
     and runs it.
"""

import gzip
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from support import Failure, Process, check, http_get, main, run, step  # noqa: E402

CXX = os.environ.get("CXX", "c++")


def fields(deb):
    """The control fields of a .deb as a dict (continuation lines joined with \\n)."""
    out = run(["dpkg-deb", "-f", deb])
    result, key = {}, None
    for line in out.splitlines():
        if line.startswith(" ") and key:
            result[key] += "\n" + line[1:]
        else:
            key, _, value = line.partition(":")
            result[key] = value.strip()
    return result


def contents(deb):
    """The paths in a .deb's data archive, as "/usr/bin/switchboard" (dirs end in /)."""
    return [line.split()[-1].lstrip(".") for line in run(["dpkg-deb", "-c", deb]).splitlines()]


def test(build_dir, source_dir, version, tmp):
    arch = run(["dpkg", "--print-architecture"]).strip()
    with step("cpack builds switchboard and libswitchboard-dev"):
        run(["cpack", "--config", f"{build_dir}/CPackConfig.cmake", "-B", tmp / "out"],
            timeout=300)
        server_deb = tmp / "out" / f"switchboard_{version}_{arch}.deb"
        dev_deb = tmp / "out" / f"libswitchboard-dev_{version}_{arch}.deb"
        check(server_deb.is_file() and dev_deb.is_file(),
              f"expected {server_deb.name} and {dev_deb.name}, got "
              f"{sorted(p.name for p in (tmp / 'out').glob('*.deb'))}")

    with step("metadata (dpkg-deb -f, -I)"):
        for deb, name, section in [(server_deb, "switchboard", "net"),
                                   (dev_deb, "libswitchboard-dev", "libdevel")]:
            f = fields(deb)
            check(f.get("Package") == name, f"{deb.name}: Package {f.get('Package')!r}")
            check(f.get("Version") == version, f"{deb.name}: Version {f.get('Version')!r}")
            check(f.get("Architecture") == arch, f"{deb.name}: Architecture {f.get('Architecture')!r}")
            check(f.get("Section") == section, f"{deb.name}: Section {f.get('Section')!r}")
            check(re.fullmatch(r".+ <[^@ ]+@[^> ]+>", f.get("Maintainer", "")),
                  f"{deb.name}: Maintainer {f.get('Maintainer')!r}")
            synopsis, _, long_text = f.get("Description", "").partition("\n")
            check(synopsis and len(long_text) > 100,
                  f"{deb.name}: Description needs a synopsis and a long text: {f.get('Description')!r}")
        depends = fields(server_deb).get("Depends", "")
        for needed in ["libc6", "libssl3", "zlib1g", "libjwt", "libsimdjson", "procps"]:
            check(needed in depends, f"switchboard: Depends lacks {needed}: {depends!r}")
        dev_depends = fields(dev_deb).get("Depends", "")
        for needed in ["libssl-dev", "zlib1g-dev", "libsimdjson-dev", "libjwt-dev"]:
            check(needed in dev_depends, f"libswitchboard-dev: Depends lacks {needed}: {dev_depends!r}")
        info = run(["dpkg-deb", "-I", server_deb])
        for script in ["postinst", "prerm", "postrm", "conffiles"]:
            check(re.search(rf"\s{script}\s", info), f"switchboard: no {script} in\n{info}")
        conffiles = run(["dpkg-deb", "-I", server_deb, "conffiles"]).split()
        check(conffiles == ["/etc/switchboard/switchboard.toml"], f"conffiles: {conffiles}")

    with step("contents (dpkg-deb -c)"):
        files = contents(server_deb)
        for path in ["/usr/bin/switchboard", "/etc/switchboard/switchboard.toml",
                     "/usr/lib/systemd/system/switchboard.service",
                     "/usr/share/man/man1/switchboard.1.gz",
                     "/usr/share/doc/switchboard/copyright"]:
            check(path in files, f"switchboard: {path} missing from\n" + "\n".join(files))
        check(not [p for p in files if p.startswith("/usr/include") or p.endswith(".a")],
              "switchboard: development files in the server package")
        dev_files = contents(dev_deb)
        for path in ["/usr/include/switchboard/version.hpp",
                     "/usr/include/switchboard/server/server.hpp",
                     "/usr/lib/cmake/switchboard/switchboardConfig.cmake",
                     "/usr/lib/pkgconfig/switchboard.pc", "/usr/lib/libswitchboard_protocol.a"]:
            check(path in dev_files, f"libswitchboard-dev: {path} missing")
        for path in files + dev_files:
            check(path.startswith(("/usr/", "/etc/switchboard/")) or path in ("/", "/etc/"),
                  f"unexpected path {path}")
            check(str(build_dir) not in path and "/local/" not in path, f"build path {path}")

    root = tmp / "root"
    with step(f"dpkg -x into {root}; the unit and the man page"):
        run(["dpkg", "-x", server_deb, root])
        run(["dpkg", "-x", dev_deb, root])
        unit = (root / "usr/lib/systemd/system/switchboard.service").read_text()
        for line in ["ExecStart=/usr/bin/switchboard serve --config /etc/switchboard/switchboard.toml",
                     "ExecReload=/bin/kill -HUP $MAINPID", "DynamicUser=yes",
                     "LimitNOFILE=65536", "ProtectSystem=strict", "ProtectHome=yes",
                     "NoNewPrivileges=yes", "PrivateTmp=yes", "StateDirectory=switchboard",
                     "WantedBy=multi-user.target"]:
            check(re.search(rf"^{re.escape(line)}$", unit, re.M), f"unit lacks {line!r}")
        # systemd's own check, with ExecStart pointed at the unpacked binary.
        verify_copy = tmp / "switchboard.service"
        verify_copy.write_text(unit.replace("/usr/bin/switchboard", f"{root}/usr/bin/switchboard"))
        run(["systemd-analyze", "verify", "--man=no", verify_copy])
        with gzip.open(root / "usr/share/man/man1/switchboard.1.gz", "rt") as f:
            page = f.read()
        check(re.search(rf'^\.TH SWITCHBOARD "1" .*"switchboard {re.escape(version)}"', page, re.M),
              "man page: no .TH line for this version")
        for section in ["SERVE", "ECHO", "CONNECT", "FILES"]:
            check(re.search(rf'^\.SH "?[^\n]*{section}', page, re.M), f"man page: no {section} section")
        check("--config" in page.replace("\\-", "-"), "man page: serve's options missing")

    binary = root / "usr/bin/switchboard"
    with step("the unpacked binary: --version, serve with the packaged config"):
        out = run([binary, "--version"]).strip()
        check(out == f"switchboard {version}", f"--version printed {out!r}")

        packaged = (root / "etc/switchboard/switchboard.toml").read_text()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        refused = subprocess.run([str(binary), "serve", "--config", str(root / "etc/switchboard/switchboard.toml")],
                                 capture_output=True, text=True, timeout=30, env=env)
        check(refused.returncode == 2 and "auth" in refused.stderr,
              f"the packaged config without a secret: exit {refused.returncode}, {refused.stderr!r}")

        # The packaged file with two changes: a port the kernel picks and the
        # snapshot here. Everything else as shipped.
        config = re.sub(r"(?m)^port = 8080$", "port = 0", packaged)
        config = config.replace('"/var/lib/switchboard/snapshot.json"', f'"{tmp}/snapshot.json"')
        check(config.count("port = 0") == 1 and str(tmp) in config,
              "the packaged config no longer has port = 8080 and the snapshot path")
        (tmp / "serve.toml").write_text(config)
        env["SWITCHBOARD_JWT_SECRET"] = "packaging-test-secret-of-at-least-32-bytes"
        server = Process([binary, "serve", "--config", tmp / "serve.toml"], tmp / "serve.log", env=env)
        try:
            status, body = http_get(server.port, "/healthz")
            check(status == 200, f"/healthz: {status} {body!r}")
            status, _ = http_get(server.port, "/")
            check(status == 404, f"/ with demo = false: {status}")
            # systemctl reload: SIGHUP must not stop a server without TLS.
            server.proc.send_signal(signal.SIGHUP)
            time.sleep(0.3)
            check(server.proc.poll() is None, f"SIGHUP stopped the server\n{server.stderr()}")
            status, _ = http_get(server.port, "/healthz")
            check(status == 200, f"/healthz after SIGHUP: {status}")
            server.stop()
        finally:
            server.kill()
        check((tmp / "snapshot.json").is_file(), "no snapshot written at shutdown")

    with step("examples/sans_io against the unpacked -dev package with pkg-config"):
        pc_env = dict(os.environ, PKG_CONFIG_PATH=str(root / "usr/lib/pkgconfig"))
        flags = run(["pkg-config", "--cflags", "--libs", "switchboard"], env=pc_env).split()
        check(f"-I{root}/usr/lib/pkgconfig/../../include" in flags, f"pkg-config flags {flags}")
        output = tmp / "sans_io_echo"
        run([CXX, "-std=c++20", source_dir / "examples/sans_io/sans_io_echo.cpp", "-o", output, *flags],
            timeout=300)
        out = run([output])
        check("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in out and "peer closed: 1000" in out,
              f"sans_io_echo printed:\n{out}")


def entry():
    if len(sys.argv) != 4:
        raise Failure("usage: deb_test.py BUILD_DIR SOURCE_DIR VERSION")
    build_dir, source_dir, version = sys.argv[1:]
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="switchboard-deb-"))
    try:
        test(pathlib.Path(build_dir), pathlib.Path(source_dir), version, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(entry)
