#!/usr/bin/env bash
# The app's own suite (resilience/tests, on resilience/tests/settings.py) on the newest
# Django release: a virtualenv on the newest Python here, with requirements.txt's pins
# except Django, which pip takes at its newest. scripts/test.sh runs the same suite on
# requirements.txt's Django (5.2 LTS). Arguments go to pytest.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

NEWEST=var/venv-django-newest
python=$(newest_python)
if [ ! -x "$NEWEST/bin/python" ]; then
    log "Creating $NEWEST with $("$python" --version)"
    "$python" -m venv "$NEWEST"
fi
log "Installing the newest Django and the test requirements into $NEWEST"
grep -v '^Django==' requirements.txt > "$NEWEST/requirements.txt"
"$NEWEST/bin/pip" install -q --disable-pip-version-check --upgrade -r "$NEWEST/requirements.txt" Django
log "The app's suite on Django $("$NEWEST/bin/python" -m django --version), $("$NEWEST/bin/python" --version)"
export TOXIPROXY_SERVER="${TOXIPROXY_SERVER:-$PWD/var/bin/toxiproxy-server}"
exec "$NEWEST/bin/pytest" resilience/tests "$@"
