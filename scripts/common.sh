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
