#!/usr/bin/env bash
# Build the deployment zip of ghr's Lambda functions: one binary, `ghr-lambda`, packaged as the `bootstrap` of
# every function (the `provided.al2023` runtime); the environment variable GHR_FUNCTION picks its role.
#
#   scripts/lambda-build.sh [--arm64] [--debug]
#
#   --arm64   build for Graviton (aarch64-unknown-linux-gnu) instead of x86_64
#   --debug   a debug build (fast to compile, large and slow: for trying the packaging, never for deploying)
#
# What it needs:
#   - the Rust toolchain of this repository (rustc >= 1.94.1, for the AWS SDK);
#   - cargo-lambda: installed with pip into the Python venv GHR_MOTO_VENV (default: .venv in the repository root,
#     the venv scripts/moto.sh uses) when it is missing. The PyPI package ships a prebuilt cargo-lambda and zig
#     (the `ziglang` package, ~400 MB), which cargo-lambda uses as the linker: no other C toolchain is needed and
#     the binary links against glibc 2.30 or older (Amazon Linux 2023 has 2.34);
#   - for --arm64 only: Rust's standard library for aarch64-unknown-linux-gnu, added once with
#     `rustup target add aarch64-unknown-linux-gnu` (a download from static.rust-lang.org); without it the script
#     stops and says so. zig links the aarch64 binary: no cross gcc is needed.
#
# A release build compiles the AWS SDK (EC2, SSM, DynamoDB, SQS) with optimisations: about 16 minutes on two
# cores and 8 GB of memory at its peak; later builds recompile only ghr's crates.
#
# Output: target/lambda/ghr-lambda/bootstrap.zip (the zip the Terraform module deploys; under CARGO_TARGET_DIR
# when it is set), whose only member is the executable `bootstrap`, and that binary unpacked beside it
# (target/lambda/ghr-lambda/bootstrap, what the benches run). The last line printed is the zip's path.
#
# Environment:
#   GHR_MOTO_VENV          Python venv holding cargo-lambda (default: .venv in the repository root)
#   GHR_CARGO_LAMBDA_SPEC  pip requirement of cargo-lambda (default: cargo-lambda>=1.9,<2)
#   CARGO_TARGET_DIR       cargo's target directory (default: target in the repository root)
#   PYTHON                 interpreter used to create the venv (default: python3)
set -euo pipefail

readonly PACKAGE="ghr-lambda"
readonly BINARY="ghr-lambda"
readonly ARM64_TARGET="aarch64-unknown-linux-gnu"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${GHR_MOTO_VENV:-$repo_root/.venv}"
spec="${GHR_CARGO_LAMBDA_SPEC:-cargo-lambda>=1.9,<2}"
python="${PYTHON:-python3}"
target_dir="${CARGO_TARGET_DIR:-$repo_root/target}"

say() { printf 'lambda-build.sh: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}
# shellcheck source=lib/venv.sh
source "$repo_root/scripts/lib/venv.sh"
usage() {
    say "usage: $0 [--arm64] [--debug]"
    exit 2
}

arm64=0
release=1
for argument in "$@"; do
    case "$argument" in
    --arm64) arm64=1 ;;
    --debug) release=0 ;;
    -h | --help) usage ;;
    *)
        say "unknown argument: $argument"
        usage
        ;;
    esac
done

# cargo-lambda from PyPI, with zig beside it in the venv.
ensure_cargo_lambda() {
    # The PyPI package brings zig (the `ziglang` package) with it.
    venv_install "$venv/bin/cargo-lambda" "$spec"
    # cargo finds `cargo-lambda` on PATH; cargo-lambda finds zig (python-zig) in the same directory.
    export PATH="$venv/bin:$PATH"
    cargo lambda --version >/dev/null 2>&1 || die "cargo lambda does not run from $venv/bin"
    if ! command -v zig >/dev/null && ! command -v python-zig >/dev/null; then
        die "cargo-lambda's linker, zig, is missing: $venv/bin/python -m pip install ziglang"
    fi
}

ensure_arm64_std() {
    command -v rustup >/dev/null ||
        die "--arm64 needs Rust's standard library for $ARM64_TARGET; without rustup, install it with your toolchain"
    if rustup target list --installed | grep -qx "$ARM64_TARGET"; then
        return 0
    fi
    # Not added behind the operator's back (cargo-lambda would): it is a download into the shared toolchain.
    die "--arm64 needs Rust's standard library for $ARM64_TARGET, which this toolchain lacks. Add it once with
    rustup target add $ARM64_TARGET
(a download of rust-std-$ARM64_TARGET from static.rust-lang.org), then run this again. Everything else an arm64
build needs is here: cargo-lambda and zig, its cross linker, are in $venv"
}

ensure_cargo_lambda
arguments=(lambda build -p "$PACKAGE" --bin "$BINARY" --output-format zip)
profile="release"
if ((release)); then
    arguments+=(--release)
else
    profile="debug"
fi
architecture="x86_64"
if ((arm64)); then
    ensure_arm64_std
    arguments+=(--arm64)
    architecture="arm64"
elif [[ "$(uname -m)" != "x86_64" ]]; then
    # On an x86_64 host cargo-lambda builds for x86_64 by itself (the same flags as a plain build, so its build
    # cache is shared); elsewhere it is asked explicitly.
    arguments+=(--x86-64)
fi

say "cargo ${arguments[*]}  ($architecture, $profile)"
started=$SECONDS
(cd "$repo_root" && cargo "${arguments[@]}") || die "cargo lambda build failed (see above)"
say "built in $((SECONDS - started)) s"

zip_path="$target_dir/lambda/$BINARY/bootstrap.zip"
[[ -f "$zip_path" ]] || die "cargo lambda reported success but $zip_path is missing"

# The zip must hold exactly one executable named `bootstrap`: the provided.al2023 runtime runs nothing else.
# Python reads the zip (no `unzip` needed): the member names and the Unix mode bits of `bootstrap`.
check="$("$venv/bin/python" - "$zip_path" <<'PYTHON'
import os, shutil, stat, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as archive:
    members = archive.infolist()
    names = [m.filename for m in members]
    if names != ["bootstrap"]:
        sys.exit(f"the zip holds {names}, not just 'bootstrap'")
    mode = members[0].external_attr >> 16
    if not stat.S_ISREG(mode) or not mode & 0o111:
        sys.exit(f"'bootstrap' is not an executable file in the zip (mode {oct(mode)})")
    with archive.open(members[0]) as binary:
        magic = binary.read(20)
    if magic[:4] != b"\x7fELF":
        sys.exit("'bootstrap' is not an ELF executable")
    machine = int.from_bytes(magic[18:20], "little")
    # The binary beside the zip, as Lambda unpacks it (the benches run it from there).
    target = os.path.join(os.path.dirname(sys.argv[1]), "bootstrap")
    with archive.open(members[0]) as binary, open(target, "wb") as out:
        shutil.copyfileobj(binary, out)
    os.chmod(target, mode & 0o777)
    print({0x3E: "x86_64", 0xB7: "arm64"}.get(machine, f"machine {machine:#x}"), members[0].file_size, oct(mode & 0o777))
PYTHON
)" || die "$zip_path is not a deployable Lambda zip"
read -r machine unpacked mode <<<"$check"
[[ "$machine" == "$architecture" ]] || die "bootstrap in $zip_path is built for $machine, not $architecture"

zip_bytes="$(stat -c %s "$zip_path")"
say "bootstrap: $machine executable (mode $mode), $unpacked bytes unpacked"
say "zip: $zip_bytes bytes ($(((zip_bytes + 1048575) / 1048576)) MiB rounded up)"
printf '%s\n' "$zip_path"
