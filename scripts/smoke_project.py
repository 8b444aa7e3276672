"""A new user's first ten minutes with django-resilience, timed step by step (CI's smoke test).

Run with the interpreter of a clean virtualenv into which the built wheel was
just installed (scripts/package.sh does that and passes the install's start):

    python scripts/smoke_project.py WORKDIR [--since EPOCH_SECONDS]

In WORKDIR it makes a fresh ``django-admin startproject``, adds the app as
the README's ten-minute start says (INSTALLED_APPS, the middleware, nothing
else: SQLite, the local-memory cache and the in-process store stay as
startproject made them), adds one view whose dependency is a refused port
called through ``requests`` under ``guarded()``, migrates, makes a superuser,
and serves it with ``manage.py runserver``. Then, over HTTP: the view is
called until the breaker opens (the next call fails fast, without trying),
and the breaker page, signed in, shows the breaker open with its failures.
Exits non-zero, saying which step failed, if any step does; prints each
step with the seconds since ``--since`` (the ``pip install``'s start).
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

PASSWORD = "smoke-test-password"
EMAIL = "admin@example.com"
THRESHOLD = 5  # the app's default FAILURE_THRESHOLD

SETTINGS_ADDITIONS = """
# --- django-resilience: the README's ten-minute start ---
INSTALLED_APPS += ["resilience"]
MIDDLEWARE += ["resilience.middleware.BreakerMiddleware"]
"""

VIEW = '''
import requests
from django.http import JsonResponse
from resilience import CircuitOpenError, OperationFailed, guarded


def payments(request):
    """Calls a payments API that is down (a port nothing listens on), guarded."""
    try:
        answer = guarded(
            "charge",
            lambda: requests.get("http://127.0.0.1:{port}/", timeout=1),
            breaker_name="payments",
        )
    except CircuitOpenError as exc:
        return JsonResponse({{"outcome": "rejected", "reason": str(exc)}}, status=503)
    except OperationFailed as exc:
        return JsonResponse({{"outcome": "failed", "reason": str(exc)}}, status=502)
    return JsonResponse({{"outcome": "ok", "status": answer.status_code}})
'''

URLS_ADDITION = """
from . import payments as _payments

urlpatterns += [path("payments/", _payments.payments)]
"""


class Smoke:
    def __init__(self, workdir: Path, since: float) -> None:
        self.workdir = workdir
        self.since = since
        self.step = 0

    def say(self, what: str) -> None:
        self.step += 1
        print(f"step {self.step}: {what} ({time.time() - self.since:.1f} s)", flush=True)

    def run(self, *args: str, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(args, cwd=self.workdir, capture_output=True, text=True,
                              env={**os.environ, **(env or {})})  # fmt: skip
        if done.returncode:
            raise SystemExit(f"FAILED: {' '.join(args)}\n{done.stdout}\n{done.stderr}")
        return done.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(port: int, path: str, *, cookie: str = "", form: dict | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Cookie": cookie} if cookie else {}
    body = None
    if form is not None:
        body = urllib.parse.urlencode(form)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        headers["Referer"] = f"http://127.0.0.1:{port}{path}"
    connection.request("GET" if form is None else "POST", path, body=body, headers=headers)
    response = connection.getresponse()
    content = response.read().decode()
    cookies = {}
    for name, value in response.getheaders():
        if name.lower() == "set-cookie":
            key, _, rest = value.partition("=")
            cookies[key.strip()] = rest.split(";", 1)[0]
    connection.close()
    return response.status, content, cookies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--since", type=float, default=time.time())
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    smoke = Smoke(args.workdir, args.since)
    import django

    python_version = sys.version.split()[0]
    smoke.say(f"the wheel is installed: Django {django.get_version()}, Python {python_version}")
    bin_dir = Path(sys.executable).parent
    smoke.run(str(bin_dir / "django-admin"), "startproject", "shop", ".")
    project = args.workdir / "shop"
    with (project / "settings.py").open("a") as settings:
        settings.write(SETTINGS_ADDITIONS)
    refused = free_port()  # nothing listens there: every call is refused
    (project / "payments.py").write_text(VIEW.format(port=refused))
    with (project / "urls.py").open("a") as urls:
        urls.write(URLS_ADDITION)
    smoke.say("django-admin startproject; resilience added to INSTALLED_APPS and MIDDLEWARE")
    python = sys.executable
    checked = smoke.run(python, "manage.py", "check")
    if "no issues" not in checked:
        raise SystemExit(f"FAILED: manage.py check said: {checked}")
    smoke.run(python, "manage.py", "migrate", "--noinput", "-v", "0")
    smoke.run(python, "manage.py", "createsuperuser", "--noinput", "--username", "admin",
              "--email", EMAIL, env={"DJANGO_SUPERUSER_PASSWORD": PASSWORD})  # fmt: skip
    smoke.say("manage.py check (no issues), migrate, createsuperuser")
    port = free_port()
    log = (args.workdir / "runserver.log").open("w")
    server = subprocess.Popen([python, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                              cwd=args.workdir, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                request(port, "/admin/login/")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("FAILED: runserver did not answer within 30 s") from None
                time.sleep(0.2)
        smoke.say(f"manage.py runserver answers on port {port}")
        outcomes = []
        for _ in range(THRESHOLD + 1):
            status, body, _ = request(port, "/payments/")
            outcomes.append((status, body[:300]))  # a debug page is long
        failed = [s for s, _ in outcomes[:THRESHOLD]]
        last_status, last_body = outcomes[-1]
        if failed != [502] * THRESHOLD or last_status != 503 or "rejected" not in last_body:
            raise SystemExit(f"FAILED: the breaker did not open after {THRESHOLD} refused "
                             f"calls: {outcomes}")  # fmt: skip
        smoke.say(f"{THRESHOLD} guarded requests calls to a refused port failed; the next was "
                  f"refused without trying: {last_body}")  # fmt: skip
        status, page, cookies = request(port, "/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        status, _, signed = request(
            port, "/admin/login/", cookie=f"csrftoken={cookies['csrftoken']}",
            form={"username": "admin", "password": PASSWORD, "csrfmiddlewaretoken": token,
                  "next": "/admin/"},
        )  # fmt: skip
        if status != 302 or "sessionid" not in signed:
            raise SystemExit(f"FAILED: the admin login answered {status}")
        status, page, _ = request(port, "/admin/resilience/circuitbreaker/",
                                  cookie=f"sessionid={signed['sessionid']}")  # fmt: skip
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
        shown = status == 200 and "payments" in text and re.search(r"\bOPEN\b", text, re.I)
        failures = re.search(r"Failed\s+(\d+)", text)
        if not shown or failures is None or int(failures.group(1)) < THRESHOLD:
            raise SystemExit(f"FAILED: the breaker page ({status}) does not show 'payments' open "
                             f"with its {THRESHOLD} failures: {text[:2000]}")  # fmt: skip
        smoke.say(f"the breaker page shows 'payments' open, Failed {failures.group(1)}")
    finally:
        server.terminate()
        server.wait(10)
        log.close()
    print(f"smoke: {smoke.step} steps, {(time.time() - args.since) / 60:.1f} minutes from "
          f"pip install to the breaker page")  # fmt: skip


if __name__ == "__main__":
    main()
