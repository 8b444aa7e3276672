#!/usr/bin/env bash
# The app's own suite (resilience/tests, on resilience/tests/settings.py) on the newest
# Django release: a virtualenv on the newest Python here with what the app and its suite
# need, at requirements.txt's pins, and Django at its newest. scripts/test.sh runs the
# same suite on requirements.txt's Django (5.2 LTS). Arguments go to pytest.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

NEWEST=var/venv-django-newest
python=$(newest_python)
if [ ! -x "$NEWEST/bin/python" ]; then
    log "Creating $NEWEST with $("$python" --version)"
    "$python" -m venv "$NEWEST"
fi
# The app's dependencies with every extra, the clients whose errors it classifies, and its
# suite's tools (not the project's). A module missing here fails the run's collection.
APP_SUITE="tenacity redis django-health-check prometheus-client celery psycopg psycopg-binary
psycopg-pool requests httpx urllib3 hypothesis pytest pytest-django pytest-timeout"
log "Installing the newest Django and the app suite's requirements into $NEWEST"
awk -v names="$APP_SUITE" 'BEGIN { n = split(names, list, /[ \n]+/); for (i = 1; i <= n; i++) want[tolower(list[i])] = 1 }
    { name = tolower($0); sub(/==.*/, "", name); gsub(/_/, "-", name); if (name in want) print }' \
    requirements.txt > "$NEWEST/requirements.txt"
"$NEWEST/bin/pip" install -q --disable-pip-version-check --upgrade -r "$NEWEST/requirements.txt" Django
log "The app's suite on Django $("$NEWEST/bin/python" -m django --version), $("$NEWEST/bin/python" --version)"
export TOXIPROXY_SERVER="${TOXIPROXY_SERVER:-$PWD/var/bin/toxiproxy-server}"
# The fleet model explores in full once, on Django 5.2 (scripts/test.sh); here fewer examples.
MODEL_EXAMPLES=${MODEL_EXAMPLES:-150} exec "$NEWEST/bin/pytest" resilience/tests "$@"
