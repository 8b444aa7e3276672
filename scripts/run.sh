#!/usr/bin/env bash
# The local demo from nothing: packages, QuestDB with demo data, the Django
# database, a demo staff login, then web + Celery worker + beat + the demo price feed
# (Ctrl-C stops all).
# Needs only Python 3.11+ and Java 17+: SQLite, a database cache and an
# embedded Celery broker stand in for PostgreSQL and Redis.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ensure_venv
manage questdb fetch
manage questdb start
manage questdb seed
manage migrate --noinput -v 0  # creates the database cache's table too
manage collectstatic --noinput -v 0
manage demo_login
log "Dashboard: http://127.0.0.1:${PORT:-8000}/admin/questdash/dashboard/  (Ctrl-C stops everything; QuestDB keeps running: manage.py questdb stop)"
export PORT="${PORT:-8000}"
# gunicorn's workers and the Celery worker count into one place that /metrics adds up.
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-$PWD/var/prometheus}"
exec "$VENV/bin/python" scripts/supervise.py Procfile
