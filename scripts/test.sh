#!/usr/bin/env bash
# Runs the whole test suite from nothing: Python packages, Debian's redis-server,
# faketime, chromium and chromium-driver, Toxiproxy and axe-core (npm) are installed here; QuestDB
# (fetched from Maven Central), Redis, Toxiproxy, Celery, gunicorn and a headless
# chromium are started and stopped by the tests' fixtures.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
APT_UPDATED=""

apt_install() {
    if [ -z "$APT_UPDATED" ]; then $SUDO apt-get update -q && APT_UPDATED=1; fi
    $SUDO apt-get install -y -q "$@"
}

ensure_redis() {
    command -v redis-server >/dev/null && return
    log "Installing redis-server (Debian)"
    apt_install redis-server
    # The tests start their own redis-server; the packaged service is not needed.
    $SUDO service redis-server stop >/dev/null 2>&1 || true
}

# The guarded PostgreSQL alias's tests run their own clusters (initdb, pg_ctl).
ensure_postgresql() {
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && return
    log "Installing postgresql (Debian)"
    apt_install postgresql
    # The tests start their own clusters; the packaged one is not needed.
    $SUDO service postgresql stop >/dev/null 2>&1 || true
}

# A host whose clock is ten minutes off, for the shared breaker's tests (issue 9).
ensure_faketime() {
    command -v faketime >/dev/null && return
    log "Installing faketime (Debian)"
    apt_install faketime
}

ensure_chromium() {
    # tests/test_browser.py drives Debian's chromium through its matching chromedriver.
    [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && return
    log "Installing chromium and chromium-driver (Debian)"
    apt_install chromium chromium-driver
}

# axe-core, the accessibility engine the real-browser tests inject into each page (issue 18),
# from the npm registry into the git-ignored var/npm; pinned here, checked by the tests.
AXE_CORE_VERSION=4.14.1
ensure_axe() {
    command -v npm >/dev/null || apt_install npm
    local installed=var/npm/node_modules/axe-core/package.json
    if [ -f "$installed" ] && grep -q "\"version\": \"$AXE_CORE_VERSION\"" "$installed"; then return; fi
    log "Installing axe-core $AXE_CORE_VERSION (npm)"
    mkdir -p var/npm
    npm install --prefix var/npm --no-save --no-audit --no-fund --no-package-lock \
        "axe-core@$AXE_CORE_VERSION" >/dev/null
}

ensure_toxiproxy() {
    export TOXIPROXY_SERVER="$PWD/var/bin/toxiproxy-server"
    [ -x "$TOXIPROXY_SERVER" ] && return
    log "Building Toxiproxy with go install"
    mkdir -p var/bin
    GOBIN="$PWD/var/bin" go install github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0
    mv var/bin/server "$TOXIPROXY_SERVER"
}

ensure_venv
ensure_redis
ensure_postgresql
ensure_faketime
ensure_chromium
ensure_toxiproxy
ensure_axe
log "Linting"
"$VENV/bin/ruff" check .

# Two runs: the project's suite (tests/, questdash's settings) and the app's own
# (resilience/tests, on resilience/tests/settings.py through its pytest.ini, no questdash).
# With test paths among the arguments, one run on those paths.
paths=0
for arg in "$@"; do
    case "$arg" in -*) ;; *) paths=1 ;; esac
done
if [ "$paths" = 1 ]; then
    log "Running the tests"
    exec "$VENV/bin/pytest" "$@"
fi
log "Running the project's tests"
"$VENV/bin/pytest" "$@"
log "Running the app's own tests (resilience/tests/settings.py, Django $("$VENV/bin/python" -m django --version))"
exec "$VENV/bin/pytest" resilience/tests "$@"
