#!/usr/bin/env bash
# The distribution as a new user gets it: build the wheel of django-resilience, check what
# it holds (the app, its templates and static files, LICENSE; no tests), install it with
# its extras into a clean virtualenv on the newest Python here (so pip picks the newest
# Django), and run scripts/smoke_project.py there: a fresh `django-admin startproject`, a
# guarded `requests` call to a refused port that opens the breaker, and the breaker page
# showing it. Prints each step with the seconds since `pip install` began.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ensure_venv

log "Building the wheel"
mkdir -p "$work/src" var/dist
cp -r pyproject.toml LICENSE resilience "$work/src/"  # a clean tree: no build/ left here
"$VENV/bin/pip" wheel -q --disable-pip-version-check --no-deps -w "$work/dist" "$work/src"
wheel=$(ls "$work"/dist/django_resilience-*.whl)
cp "$wheel" var/dist/
"$VENV/bin/python" - "$wheel" <<'PY'
import re, sys, zipfile
wheel = zipfile.ZipFile(sys.argv[1])
names = wheel.namelist()
problems = []
tests = [n for n in names if "/tests/" in n or n.startswith(("tests/", "testkit/"))]
if tests:
    problems.append(f"tests in the wheel: {tests[:5]}")
import pathlib
# Every template and static file the app has (the timeline's .svg template too), and the command.
shipped = [str(p) for d in ("resilience/templates", "resilience/static") for p in pathlib.Path(d).rglob("*")
           if p.is_file()]
for needed in [*shipped, "resilience/management/commands/breaker.py"]:
    if needed not in names:
        problems.append(f"{needed} is missing")
meta = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
if not any(n.endswith("licenses/LICENSE") for n in names) or "License-Expression: BSD-3-Clause" not in meta:
    problems.append("no LICENSE, or a license that is not BSD-3-Clause")
version = re.search(r"^Version: (\S+)", meta, re.M).group(1)
source = re.search(r'__version__ = "([^"]+)"', open("resilience/__init__.py").read()).group(1)
if version != source:
    problems.append(f"the wheel says {version}, resilience.__version__ {source}")
if f"## {version}" not in open("CHANGELOG.md").read():
    problems.append(f"CHANGELOG.md has no section for {version}")
if re.search(r"^Requires-Dist: Django.*<", meta, re.M):
    problems.append("Django has an upper bound: installing the app could downgrade a project")
for extra in ("redis", "health", "metrics", "celery"):
    if f"Provides-Extra: {extra}" not in meta:
        problems.append(f"no [{extra}] extra")
if problems:
    sys.exit("The wheel is not right:\n- " + "\n- ".join(problems))
print(f"{sys.argv[1].rsplit('/', 1)[1]}: {len(names)} files, no tests, LICENSE, version {version}")
PY

python=$(newest_python)
log "A clean virtualenv ($("$python" --version)), the wheel installed with its extras"
since=$(date +%s.%N)
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check "${wheel}[redis,health,metrics,celery]" requests
log "A fresh project, a guarded requests call, the breaker page"
"$work/venv/bin/python" scripts/smoke_project.py "$work/project" --since "$since"
