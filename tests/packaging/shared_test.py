"""shared_test.py BUILD_DIR SOURCE_DIR VERSION CXX — the shared-library build.

Configures SOURCE_DIR a second time into BUILD_DIR/shared-check with
-DBUILD_SHARED_LIBS=ON (the libraries, the binary and the examples only; -O0
because only linking and visibility are under test), builds it with warnings
as errors, and runs install_test.py's checks on it: besides everything the
static install is held to, each libswitchboard_*.so must carry a
MAJOR.MINOR SONAME and export only names the public headers declare (a
missing SWITCHBOARD_<LAYER>_EXPORT fails the link of the binary or an
example; a leaked src/ symbol fails the export check).
"""

import pathlib
import shutil
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import install_test  # noqa: E402
from support import Failure, main, run, step  # noqa: E402


def entry():
    if len(sys.argv) != 5:
        raise Failure("usage: shared_test.py BUILD_DIR SOURCE_DIR VERSION CXX")
    build_dir, source_dir, version, cxx = sys.argv[1:]
    shared_dir = pathlib.Path(build_dir) / "shared-check"
    with step(f"configure {shared_dir} with BUILD_SHARED_LIBS=ON"):
        run(["cmake", "-S", source_dir, "-B", shared_dir, "-G", "Ninja",
             f"-DCMAKE_CXX_COMPILER={cxx}", "-DBUILD_SHARED_LIBS=ON", "-DCMAKE_BUILD_TYPE=",
             "-DCMAKE_CXX_FLAGS=-O0", "-DSWITCHBOARD_BUILD_TESTS=OFF",
             "-DSWITCHBOARD_BUILD_BENCH=OFF", "-DSWITCHBOARD_BUILD_FUZZ=OFF",
             "-DSWITCHBOARD_WERROR=ON", "-Wno-dev"], timeout=300)
    with step("build the shared libraries, the binary and the examples"):
        run(["cmake", "--build", shared_dir, "-j2"], timeout=1200)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="switchboard-shared-"))
    try:
        install_test.test(shared_dir, pathlib.Path(source_dir), version, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(entry)
