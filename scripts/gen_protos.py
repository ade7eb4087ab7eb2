#!/usr/bin/env python3
"""Generate the Python gRPC stubs of the public API from proto/.

    python scripts/gen_protos.py                  # stubs, plus .pyi if mypy-protobuf is there
    python scripts/gen_protos.py --require-stubs  # fail instead of skipping the .pyi files

Output: authz_service/api/gen/authz/v1/{core,permissions,...}_pb2{,_grpc}.py{,i}, importable
as `authz_service.api.gen.authz.v1.permissions_pb2`. The output is not committed (it is in
.gitignore); run this after every change to proto/ and at install time. It needs only
grpcio-tools (and mypy-protobuf for the .pyi files), both installed in the venv.

The import path problem, and how it is solved
---------------------------------------------
protoc names Python modules after the .proto paths, so `permissions_pb2.py` imports
`from authz.v1 import core_pb2`, a top-level package `authz` that does not exist here. We
keep the .proto paths as they are (`authz/v1/core.proto` is what every other language and
server reflection see) and rewrite, after generation, every import of a module generated
from `authz/...` to its real package, `authz_service.api.gen.authz...`:

    from authz.v1 import core_pb2 as X
        -> from authz_service.api.gen.authz.v1 import core_pb2 as X
    import authz.v1.core_pb2
        -> import authz_service.api.gen.authz.v1.core_pb2
    BuildTopDescriptorsAndMessages(DESCRIPTOR, 'authz.v1.core_pb2', ...)
        -> the same with 'authz_service.api.gen.authz.v1.core_pb2' (the generated
           classes' __module__)

Only those three forms are rewritten (they are the whole of what protoc, grpcio-tools and
mypy-protobuf emit for cross-file references); the serialized descriptors are untouched,
so the descriptor pool still registers `authz/v1/core.proto` under its canonical name.
The script fails if anything that still looks like an `authz.` import is left over.

`google/rpc/status.proto` is vendored under proto/ for buf; its Python module comes from
googleapis-common-protos (`google.rpc.status_pb2`), so it is not generated here.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUR_PACKAGE = "authz"  # top-level proto package directory we generate (proto/authz/...)
OUT_PACKAGE = "authz_service.api.gen"
OUT_DIR = ROOT / Path(*OUT_PACKAGE.split("."))

_FROM_IMPORT = re.compile(rf"^(\s*)from {OUR_PACKAGE}((?:\.\w+)*) import ", re.MULTILINE)
_PLAIN_IMPORT = re.compile(rf"^(\s*)import {OUR_PACKAGE}((?:\.\w+)+)", re.MULTILINE)
_MODULE_NAME = re.compile(rf"(BuildTopDescriptorsAndMessages\(DESCRIPTOR, ')({OUR_PACKAGE}\.)")
_LEFTOVER = re.compile(rf"^\s*(?:from|import) {OUR_PACKAGE}[.\s]", re.MULTILINE)


def _proto_files() -> list[Path]:
    files = sorted((PROTO_ROOT / OUR_PACKAGE).rglob("*.proto"))
    if not files:
        sys.exit(f"gen_protos: no .proto files under {PROTO_ROOT / OUR_PACKAGE}")
    return files


def _well_known_include() -> Path:
    """The google/protobuf/*.proto files that ship inside grpcio-tools."""
    spec = importlib.util.find_spec("grpc_tools")
    if spec is None or spec.origin is None:
        sys.exit("gen_protos: grpcio-tools is not installed in this interpreter")
    return Path(spec.origin).parent / "_proto"


def _find_plugin(name: str) -> str | None:
    """A protoc plugin installed next to this interpreter (the venv's bin/), else on PATH.

    Looking next to sys.executable first makes `.venv/bin/python scripts/gen_protos.py`
    work without activating the venv.
    """
    for directory in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        for candidate in (directory / name, directory / f"{name}.exe"):
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return shutil.which(name)


def _run_protoc(files: list[Path], out: Path, mypy_plugins: tuple[str, str] | None) -> None:
    args = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--proto_path={_well_known_include()}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
    ]
    if mypy_plugins is not None:
        mypy, mypy_grpc = mypy_plugins
        args += [
            f"--plugin=protoc-gen-mypy={mypy}",
            f"--plugin=protoc-gen-mypy_grpc={mypy_grpc}",
            f"--mypy_out={out}",
            f"--mypy_grpc_out={out}",
        ]
    args += [str(path.relative_to(PROTO_ROOT)) for path in files]
    result = subprocess.run(args, cwd=PROTO_ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"gen_protos: protoc failed:\n{result.stderr or result.stdout}")


def _rewrite_imports(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    text = _FROM_IMPORT.sub(rf"\1from {OUT_PACKAGE}.{OUR_PACKAGE}\2 import ", text)
    text = _PLAIN_IMPORT.sub(rf"\1import {OUT_PACKAGE}.{OUR_PACKAGE}\2", text)
    text = _MODULE_NAME.sub(rf"\g<1>{OUT_PACKAGE}.\g<2>", text)
    leftover = _LEFTOVER.search(text)
    if leftover:
        # Fail loudly: a new protoc or plugin version emits a form we do not know.
        sys.exit(f"gen_protos: unrewritten import in {path}: {leftover.group(0).strip()}")
    path.write_text(text, encoding="utf-8")


def _add_init_files(out: Path) -> None:
    """Make every generated directory a regular package, so setuptools ships it too."""
    for directory in [out, *(p for p in out.rglob("*") if p.is_dir())]:
        if directory.name == "__pycache__":
            continue
        init = directory / "__init__.py"
        if not init.exists():
            init.write_text('"""Generated from proto/ by scripts/gen_protos.py; do not edit."""\n')


def generate(*, require_stubs: bool = False) -> list[Path]:
    """(Re)generate everything under OUT_DIR; returns the generated module files."""
    files = _proto_files()
    mypy, mypy_grpc = _find_plugin("protoc-gen-mypy"), _find_plugin("protoc-gen-mypy_grpc")
    if mypy is None or mypy_grpc is None:
        if require_stubs:
            sys.exit("gen_protos: mypy-protobuf is not installed (needed for the .pyi stubs)")
        print("gen_protos: mypy-protobuf not installed; skipping the .pyi stubs", file=sys.stderr)
    # Generate into a scratch directory and copy it in at the end, so a failed run leaves
    # the previous stubs, and modules of .proto files that were removed do not linger.
    with tempfile.TemporaryDirectory(prefix="gen_protos-") as scratch:
        staging = Path(scratch)
        _run_protoc(files, staging, (mypy, mypy_grpc) if mypy and mypy_grpc else None)
        for path in staging.rglob("*"):
            if path.suffix in (".py", ".pyi"):
                _rewrite_imports(path)
        _add_init_files(staging)
        shutil.rmtree(OUT_DIR, ignore_errors=True)
        shutil.copytree(staging, OUT_DIR)
    return sorted(p for p in OUT_DIR.rglob("*_pb2*") if p.suffix in (".py", ".pyi"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--require-stubs",
        action="store_true",
        help="fail if mypy-protobuf is missing instead of skipping the .pyi stubs",
    )
    options = parser.parse_args(argv)
    generated = generate(require_stubs=options.require_stubs)
    print(f"gen_protos: wrote {len(generated)} files to {OUT_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
