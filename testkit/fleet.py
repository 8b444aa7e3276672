"""A real site to hang QuestDB under: gunicorn with N workers, staff clients, and the hangs.

``Fleet`` runs the site as a deployment does (gunicorn, several workers, Redis
for the shared breaker and copies) with its own var/ directory, migrated, and
a staff login made by the product's own ``demo_login``. ``StaffLoad`` is a
crowd of logged-in staff clients, each in its own thread, that request their
pages in turn and record every answer, timed on the client's side. ``hangs()``
are the ways QuestDB hangs, each with the way it ends.

Used by tests/test_hangs.py (the ``fleet`` fixture of tests/conftest.py) and by
benchmarks/outage_latency.py. Only the standard library at import: the gunicorn
workers import this module for ``worker_pid_middleware``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .processes import group_alive, pause_process, terminate

if TYPE_CHECKING:
    from .toxiproxy import Proxy

ROOT = Path(__file__).resolve().parent.parent
PID_HEADER = "X-Worker-Pid"
API = "/api/dashboard/{}/"
DASHBOARD = "/admin/questdash/dashboard/"
HEALTH = "/ht/?format=json"
API_SECTIONS = ("active-sessions", "latest-prices", "positions")


def worker_pid_middleware(get_response: Callable) -> Callable:
    """Each response names the worker process that made it (fleet settings only)."""

    def middleware(request):
        response = get_response(request)
        response[PID_HEADER] = str(os.getpid())
        return response

    return middleware


# --- the site --------------------------------------------------------------------------


@dataclass
class Fleet:
    """gunicorn (or uvicorn: ``server``) serving the site on a free port: ``workers``
    processes, Redis shared.

    ``settings`` is the Django settings module: tests.fleet_settings is the
    product's own settings with the test ports (the default timeouts, not the
    in-process tests' shorter ones); benchmarks/naive swaps in the story's design.
    ``prefix`` runs gunicorn under another command: ``faketime -f +600s`` makes
    a host whose clock is ten minutes fast.
    """

    workdir: Path
    questdb_port: int
    redis_url: str
    workers: int = 4
    settings: str = "tests.fleet_settings"
    extra_env: dict[str, str] = field(default_factory=dict)
    prefix: list[str] = field(default_factory=list)
    server: str = "gunicorn"  # or "uvicorn"
    port: int = 0
    process: subprocess.Popen | None = field(default=None, repr=False)
    password: str = field(default="", repr=False)

    USERNAME = "staff"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.server}.log"

    def env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            # The product's own timeouts, not the ones tests/settings.py shortens.
            if key not in {"RESILIENCE_CONNECT_TIMEOUT", "RESILIENCE_QUERY_TIMEOUT",
                           "PROMETHEUS_MULTIPROC_DIR", "DJANGO_SETTINGS_MODULE"}
        }  # fmt: skip
        env.update(
            DJANGO_SETTINGS_MODULE=self.settings,
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            QUESTDASH_VAR_DIR=str(self.workdir),
            QUESTDB_PORT=str(self.questdb_port),
            REDIS_URL=self.redis_url,
            DJANGO_ALLOWED_HOSTS="127.0.0.1",
            # Every request asks QuestDB: the hardest case for the latency bound.
            DASHBOARD_FRESH_FOR="0",
        )
        env.update(self.extra_env)
        return env

    def prepare(self) -> None:
        """The Django tables and a staff login (the product's demo_login)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.manage("migrate", "--noinput", "-v", "0")
        made = self.manage("demo_login", "--username", self.USERNAME)
        found = re.search(rf"{self.USERNAME} / (\S+)", made.stdout)
        if found is None:
            raise RuntimeError(f"demo_login printed no login: {made.stdout!r}")
        self.password = found.group(1)

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env(),
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode:
            raise RuntimeError(f"manage.py {args[0]} failed: {done.stderr[-2000:]}")
        return done

    def start(self) -> None:
        from .ports import free_port

        if not self.password:
            self.prepare()
        self.port = free_port()
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [*self.prefix, *self.command()],
                cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        pids: set[int] = set()
        while len(pids) < self.workers:  # every worker has booted and answers
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"only workers {sorted(pids)} answered within 60 s")
            try:
                answer = request(self.base_url, "/ht/live/", timeout=5)
            except OSError:
                time.sleep(0.2)
                continue
            if answer.status == 200 and answer.pid:
                pids.add(answer.pid)

    def command(self) -> list[str]:
        """gunicorn (WSGI, gunicorn.conf.py's threaded workers) or uvicorn (ASGI)."""
        bindir = Path(sys.executable).parent
        if self.server == "uvicorn":
            # uvicorn's own lines are plain text: only its warnings and errors are kept.
            return [str(bindir / "uvicorn"), "questdash.asgi:application",
                    "--host", "127.0.0.1", "--port", str(self.port),
                    "--workers", str(self.workers), "--lifespan", "off",
                    "--log-level", "warning", "--no-access-log"]  # fmt: skip
        return [str(bindir / "gunicorn"), "questdash.wsgi:application",
                "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers),
                "--timeout", "30"]  # fmt: skip

    def stop(self) -> None:
        """The whole process group: under a prefix (faketime) gunicorn is a child, not us."""
        if self.process is None:
            return
        group = self.process.pid  # start_new_session: the group is named after it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)  # graceful: workers finish their requests
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self.process.poll()  # reap our own child, or it lingers in the group as a zombie
            if not group_alive(group):
                break
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def login(self) -> str:
        """A new staff session through the admin's login form; returns the session cookie."""
        first = request(self.base_url, "/admin/login/", timeout=10)
        csrf = first.cookies["csrftoken"]
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', first.body)
        form = urllib.parse.urlencode(
            {"username": self.USERNAME, "password": self.password,
             "csrfmiddlewaretoken": token.group(1).decode(), "next": DASHBOARD}
        )  # fmt: skip
        done = request(self.base_url, "/admin/login/", timeout=10, cookie=f"csrftoken={csrf}",
                       form=form)  # fmt: skip
        if done.status != 302 or "sessionid" not in done.cookies:
            raise RuntimeError(f"staff login failed: HTTP {done.status}")
        return f"sessionid={done.cookies['sessionid']}"

    def load(self, clients: int = 12, *, pause: float = 0.1, timeout: float = 60) -> StaffLoad:
        """``clients`` staff sessions: two thirds on the API, the rest on the page and /ht/."""
        api = clients - clients // 3
        paths = [[API.format(s) for s in rotate(API_SECTIONS, i)] for i in range(api)]
        paths += [[DASHBOARD] if i % 2 == 0 else [HEALTH] for i in range(clients - api)]
        cookies = [self.login() for _ in paths]
        return StaffLoad(self.base_url, cookies, paths, pause=pause, timeout=timeout)


@dataclass
class CeleryWorker:
    """`celery -A questdash worker -B` beside a ``Fleet``: its settings, Redis and QuestDB."""

    site: Fleet
    concurrency: int = 1
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def log(self) -> Path:
        return self.site.workdir / "celery.log"

    def start(self) -> None:
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).parent / "celery"), "-A", "questdash", "worker", "-B",
                 "--loglevel", "INFO", "--concurrency", str(self.concurrency),
                 "--without-gossip", "--without-mingle"],
                cwd=ROOT, env=self.site.env(), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process, 20)  # warm shutdown: the worker and its beat
            self.process = None


@dataclass
class PriceFeedProcess:
    """`manage.py price_feed` beside a ``Fleet``, as `make run` runs it (the Procfile's feed)."""

    site: Fleet
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def log(self) -> Path:
        return self.site.workdir / "price_feed.log"

    def start(self) -> None:
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "price_feed"], cwd=ROOT, env=self.site.env(),
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def stop(self) -> int | None:
        """Ctrl-C's signal; its exit code (None when it had to be killed)."""
        if self.process is None:
            return None
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            terminate(self.process, 1)
            return None
        finally:
            self.process = None


def rotate(items: tuple[str, ...], by: int) -> list[str]:
    by %= len(items)
    return [*items[by:], *items[:by]]


# --- one request -----------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One request as the client saw it; status 0 when no answer came (``error`` says why)."""

    path: str
    started: float  # time.monotonic()
    ended: float
    status: int
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    cookies: dict[str, str] = field(default_factory=dict, repr=False)
    body: bytes = field(default=b"", repr=False)
    error: str = ""

    @property
    def elapsed(self) -> float:
        return self.ended - self.started

    @property
    def pid(self) -> int | None:
        value = self.headers.get(PID_HEADER.lower())
        return int(value) if value else None

    @property
    def breaker(self) -> str:
        """The questdb breaker's state as the X-Circuit-Breaker header said it ("" if absent)."""
        header = self.headers.get("x-circuit-breaker", "")
        states = dict(part.strip().split("=", 1) for part in header.split(",") if "=" in part)
        return states.get("questdb", "")

    @property
    def is_api(self) -> bool:
        return self.path.startswith("/api/")

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    base_url: str, path: str, *, timeout: float, cookie: str = "", form: str | None = None
) -> Answer:
    """GET (or POST ``form``) on a new connection, as a browser's first request would."""
    parsed = urllib.parse.urlsplit(base_url)
    headers = {"Cookie": cookie} if cookie else {}
    if form is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        headers["Referer"] = base_url + path
    started = time.monotonic()
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
    try:
        connection.request("GET" if form is None else "POST", path, body=form, headers=headers)
        response = connection.getresponse()
        body = response.read()
    except OSError as exc:
        return Answer(path, started, time.monotonic(), 0, error=f"{type(exc).__name__}: {exc}")
    finally:
        connection.close()
    cookies = {}
    for name, value in response.getheaders():
        if name.lower() == "set-cookie":
            key, _, rest = value.partition("=")
            cookies[key.strip()] = rest.split(";", 1)[0]
    return Answer(
        path,
        started,
        time.monotonic(),
        response.status,
        {k.lower(): v for k, v in response.getheaders()},
        cookies,
        body,
    )


# --- the crowd -------------------------------------------------------------------------


class StaffLoad:
    """Staff clients in threads, each requesting its paths in turn until stopped.

    Every answer is kept: ``answers`` grows while the load runs. A client
    waits ``pause`` between its requests (a dashboard polls; it does not flood).
    """

    def __init__(
        self,
        base_url: str,
        cookies: list[str],
        paths: list[list[str]],
        *,
        pause: float = 0.1,
        timeout: float = 60,
    ) -> None:
        self.base_url = base_url
        self.pause = pause
        self.timeout = timeout
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(cookie, client_paths), daemon=True)
            for cookie, client_paths in zip(cookies, paths, strict=True)
        ]

    def __enter__(self) -> StaffLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)

    def _client(self, cookie: str, paths: list[str]) -> None:
        turn = 0
        while not self._stop.is_set():
            path = paths[turn % len(paths)]
            turn += 1
            self.answers.append(request(self.base_url, path, timeout=self.timeout, cookie=cookie))
            self._stop.wait(self.pause)

    def since(self, moment: float) -> list[Answer]:
        """Answers to requests started at or after ``moment``."""
        return [a for a in list(self.answers) if a.started >= moment]

    def during(self, start: float, end: float) -> list[Answer]:
        """Answers to requests in flight at any time between ``start`` and ``end``."""
        return [a for a in list(self.answers) if a.started < end and a.ended > start]

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> float:
        """Poll ``condition`` while the load runs; the moment it held."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return time.monotonic()
            time.sleep(0.1)
        seen = Counter(answer_summary(a) for a in self.since(time.monotonic() - self.WINDOW))
        raise AssertionError(f"not within {timeout:g} s: {what}; the last answers: {seen}")

    WINDOW = 1.5  # seconds of fresh answers from every worker that say the site is well

    def fresh_everywhere(self, workers: int, since: float = 0.0) -> bool:
        """The API answers of the last ``WINDOW`` seconds (started after ``since``) are all
        fresh, and every worker gave some."""
        api = [a for a in self.since(max(since, time.monotonic() - self.WINDOW)) if a.is_api]
        if not api or any(a.status != 200 or a.json()["status"] != "ok" for a in api):
            return False
        return len({a.pid for a in api}) >= workers

    def warm(self, workers: int, timeout: float = 30) -> dict[str, list]:
        """Wait for fresh data from every worker and a whole dashboard page, so that every
        section has a last good copy; the data of each API section."""
        self.wait_for(lambda: self.fresh_everywhere(workers), timeout, "fresh data everywhere")
        self.wait_for(lambda: any(map(whole_page, self.answers)), timeout, "a dashboard page")
        return {
            a.path.split("/")[-2]: a.json()["data"]
            for a in list(self.answers)
            if a.is_api and a.status == 200 and a.json()["status"] == "ok"
        }

    def ride_out(
        self, hang: Hang, seconds: float, workers: int, recovery: float
    ) -> tuple[float, float, float]:
        """QuestDB hangs for ``seconds`` under this load; then wait (up to ``recovery``
        seconds) until every worker answers fresh again. The moments the hang began and
        ended, and the moment from which every answer was fresh."""
        began = hang.begin()
        try:
            time.sleep(seconds)
        finally:
            hang.end()
        ended = time.monotonic()
        fresh = lambda: self.fresh_everywhere(workers, since=ended)  # noqa: E731
        confirmed = self.wait_for(fresh, recovery, f"fresh data after {hang.name}")
        return began, ended, max(ended, confirmed - self.WINDOW)


def answer_summary(answer: Answer) -> str:
    """What one answer said, in a few words: for an assertion's message."""
    if not answer.is_api or answer.status != 200:
        return f"{answer.path} {answer.status}"
    body = answer.json()
    return f"{answer.path} {body['status']} {body['reason'] or ''}".strip()


def whole_page(answer: Answer) -> bool:
    """A dashboard page with every section fresh."""
    body = answer.body
    return (
        answer.path == DASHBOARD
        and answer.status == 200
        and b"status-ok" in body
        and not (b"status-degraded" in body or b"status-error" in body)
    )


def first_open_in_every_worker(answers: list[Answer], since: float, workers: int) -> float | None:
    """Seconds from ``since`` until every worker had answered with the breaker open."""
    first: dict[int, float] = {}
    for answer in sorted(answers, key=lambda a: a.ended):
        if answer.ended >= since and answer.pid and answer.breaker == "open":
            first.setdefault(answer.pid, answer.ended)
    if len(first) < workers:
        return None
    return max(first.values()) - since


# --- the hangs -------------------------------------------------------------------------


@dataclass
class Hang:
    """A way QuestDB hangs: ``begin()`` returns the moment it began; ``end()`` ends it.

    ``degrades``: whether staff should see the last good copy (and the breaker
    open) while it lasts, or fresh data throughout.
    """

    name: str
    begin: Callable[[], float]
    end: Callable[[], None]
    degrades: bool = True


def hangs(proxy: Proxy, questdb_pid: Callable[[], int]) -> dict[str, Hang]:
    """Every hang of issue 8, on this proxy to QuestDB and this QuestDB process."""

    def at(action: Callable[[], object]) -> Callable[[], float]:
        def begin() -> float:
            moment = time.monotonic()
            action()
            return moment

        return begin

    def blackhole_new_connections() -> None:
        proxy.set_enabled(False)  # the live connections are closed...
        proxy.blackhole()  # ...and every new one hangs before the handshake ends
        proxy.set_enabled(True)

    def blackhole_mid_query() -> float:
        proxy.latency(300)  # queries in flight on every busy connection...
        time.sleep(0.6)
        moment = time.monotonic()
        proxy.blackhole()  # ...and their answers never come
        return moment

    stopped: list[int] = []

    def sigstop() -> None:
        stopped.append(questdb_pid())
        pause_process(stopped[-1])

    def sigcont() -> None:
        while stopped:
            os.kill(stopped.pop(), signal.SIGCONT)

    return {
        hang.name: hang
        for hang in [
            Hang("sigstop", at(sigstop), sigcont),
            Hang("blackhole_at_connect", at(blackhole_new_connections), proxy.heal),
            Hang("blackhole_mid_query", blackhole_mid_query, proxy.heal),
            Hang("latency_150ms", at(lambda: proxy.latency(150)), proxy.heal, degrades=False),
            Hang("latency_2s", at(lambda: proxy.latency(2000)), proxy.heal),
            Hang("reset_peer", at(proxy.reset_peer), proxy.heal),
        ]
    }


@dataclass
class Percentiles:
    count: int
    p50: float
    p99: float
    max: float

    @classmethod
    def of(cls, seconds: list[float]) -> Percentiles:
        ordered = sorted(seconds) or [float("nan")]

        def at(q: float) -> float:
            return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

        return cls(len(seconds), at(0.5), at(0.99), ordered[-1])


def slowest(answers: list[Answer], n: int = 5) -> Iterator[str]:
    for answer in sorted(answers, key=lambda a: -a.elapsed)[:n]:
        yield f"{answer.path} {answer.elapsed:.2f}s HTTP {answer.status} {answer.error}"
