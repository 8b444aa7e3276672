# Shared by scripts/run.sh and scripts/test.sh: a virtualenv with the pinned requirements.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
VENV=.venv

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

ensure_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "Creating $VENV with $($PY --version)"
        "$PY" -m venv "$VENV"
    fi
    # Reinstall only when requirements.txt changed since the last install.
    local stamp="$VENV/.requirements.sha"
    local want
    want=$(sha256sum requirements.txt | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        log "Installing Python packages"
        "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements.txt
        echo "$want" > "$stamp"
    fi
}

manage() { "$VENV/bin/python" manage.py "$@"; }

# The newest CPython on this machine (3.12 or later: Django 6 needs it), for the runs on
# the newest Django. pyenv's versions count; a missing one is an error, never a skip.
newest_python() {
    local candidate
    for candidate in python3.14 python3.13 python3.12 \
        "$HOME"/.pyenv/versions/3.14*/bin/python3 "$HOME"/.pyenv/versions/3.13*/bin/python3 \
        "$HOME"/.pyenv/versions/3.12*/bin/python3; do
        if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null; then
            command -v "$candidate"
            return
        fi
    done
    echo "No Python 3.12 or later found (Django 6 needs one): install python3.12 or newer" >&2
    return 1
}
