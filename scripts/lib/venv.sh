# Sourced by the scripts that need Python tools from PyPI (moto, the AWS CLI, checkov, python-hcl2): one venv per
# checkout, created on first use, each tool installed once (a venv that has it needs no network).
#
# The sourcing script defines `say` and `die`, and sets `venv` (the venv's directory) and `python` (the interpreter
# that creates it).

# Create the venv unless it exists.
venv_ensure() {
    if [[ ! -x "$venv/bin/python" ]]; then
        command -v "$python" >/dev/null || die "$python not found; install Python 3 or set PYTHON"
        say "creating Python venv in $venv"
        "$python" -m venv "$venv" || die "could not create a venv in $venv"
    fi
}

# venv_install MARKER SPEC [PIP ARGS...]: install the pip requirement SPEC into the venv (with PIP ARGS, e.g.
# `--target DIR`) unless the file MARKER exists.
venv_install() {
    local marker="$1" spec="$2"
    shift 2
    [[ -e "$marker" ]] && return 0
    venv_ensure
    say "installing '$spec' into ${*:-$venv}"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" "$spec" >&2 ||
        die "pip install '$spec' failed"
}
