"""Shared fixtures: an isolated kit environment, a loopback HTTP server, a tiny IMDB-layout archive, a built site."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import http.server
import io
import json
import os
import shutil
import tarfile
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from kitlib import _fs, runtime
from kitlib.data import downloads, manifest
from kitlib.models import hub
from kitlib import course
from kitlib.course import runner, site


def kit_environment(root: Path) -> dict[str, str]:
    """The kit's cache and results in `root`, offline, with no data dir (not the checkout's data/)."""
    return {"KITLIB_CACHE": str(root / "cache"), "KITLIB_RESULTS": str(root / "results"), "KITLIB_OFFLINE": "1",
            "KITLIB_DATA_DIR": ""}


@pytest.fixture
def kit_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the kit's cache and results at a temp folder, offline, with no data dir."""
    for name, value in kit_environment(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("KITLIB_PROFILE", raising=False)
    return tmp_path


@contextlib.contextmanager
def smoke_kit(root: Path, exported: Path) -> Iterator[None]:
    """For a module's fixture: the kit environment in `root` in the smoke profile, its cache seeded with the
    exported stand-ins (`exported_stand_ins`), restored on exit."""
    seed_stand_ins(exported, root / "cache")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**kit_environment(root), "KITLIB_PROFILE": "smoke"}.items():
            patch.setenv(name, value)
        yield


def smoke() -> runtime.Config:
    """The smoke profile's config, read from the environment as it is now (tests set the environment first)."""
    return runtime.setup("smoke", verbose=False)


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on 127.0.0.1 (a free port); yields (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """A static file handler that does not log every request to stderr."""

    def log_message(self, *args: object) -> None:
        """Stay quiet."""


# A route: (status, Location for redirects or None, body). Paths include any query string.
Route = tuple[int, str | None, bytes]


class RoutedHandler(http.server.BaseHTTPRequestHandler):
    """Answers each path from the server's `routes` table: redirects, errors or bodies; 404 for the rest."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        """Answer from the table."""
        status, location, body = self.server.routes.get(self.path, (404, None, b"no such route"))
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Stay quiet."""


@pytest.fixture
def routed_http() -> Iterator[tuple[dict[str, Route], str]]:
    """A loopback server answering from a table the test fills in; yields (table, base URL)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RoutedHandler)
    server.routes = {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.routes, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


REVIEWS = {
    "pos": ["a wonderful moving film", "great acting and a great story", "I loved every minute", "brilliant and funny"],
    "neg": ["a dull boring mess", "terrible acting, awful plot", "I hated every minute", "the worst film this year"],
}


def make_imdb_tree(root: Path, per_class: int = 10) -> Path:
    """Write a tiny folder in the official aclImdb layout; returns the aclImdb folder."""
    top = root / "aclImdb"
    for split in ("train", "test"):
        for folder, texts in REVIEWS.items():
            (top / split / folder).mkdir(parents=True)
            for i in range(per_class):
                rating = 9 if folder == "pos" else 2
                text = f"{texts[i % len(texts)]}<br />review {split} {i}"
                (top / split / folder / f"{i}_{rating}.txt").write_text(text, encoding="utf-8")
    return top


def http_json(url: str, body: Any = None, method: str | None = None, headers: dict | None = None) -> tuple[int, dict]:
    """Send `body` (bytes as they are, anything else as JSON; None: a GET) to a kit server: (status, JSON answer).

    Error answers must be JSON too, as TF Serving's are.
    """
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json", **(headers or {})}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        assert exc.headers["Content-Type"] == "application/json", exc.headers
        return exc.code, json.loads(exc.read())


def make_tar(path: Path, members: dict[str, bytes]) -> Path:
    """Write a .tar.gz with the given member names and contents (names are not sanitised)."""
    with tarfile.open(path, "w:gz") as tf:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    return path


@pytest.fixture
def imdb_archive(tmp_path: Path) -> Path:
    """A tiny aclImdb_v1.tar.gz in the official layout."""
    make_imdb_tree(tmp_path / "src")
    archive = tmp_path / "aclImdb_v1.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(tmp_path / "src" / "aclImdb", arcname="aclImdb")
    return archive


@pytest.fixture
def served_imdb(http_root: tuple[Path, str], imdb_archive: Path, monkeypatch: pytest.MonkeyPatch) -> manifest.ArchiveSpec:
    """Serve the tiny archive on loopback and point the IMDB spec's URL and checksum at it."""
    root, base = http_root
    (root / imdb_archive.name).write_bytes(imdb_archive.read_bytes())
    spec = dataclasses.replace(
        manifest.IMDB,
        url=f"{base}/{imdb_archive.name}",
        sha256=downloads.sha256_of(imdb_archive),
        size=imdb_archive.stat().st_size,
    )
    monkeypatch.setitem(manifest.ARCHIVES, "imdb", spec)
    return spec


def shared_session_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temp folder both xdist workers of one `make test` share (pytest-N/popen-gwK: one session)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def exported_stand_ins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kit cache holding the text and image stand-ins, exported once per test session (the export is the same
    code whichever test asks; tests of the export itself start from an empty cache instead)."""
    cache = shared_session_folder(tmp_path_factory) / "stand-ins"
    cfg = dataclasses.replace(runtime.setup("smoke", verbose=False), cache_dir=cache, offline=True)
    for name in ("bert_en_uncased", "resnet_v2_50"):
        hub.resolve_model(name, cfg)  # exports under a lock: the other worker waits, then finds it
    return cache


def seed_stand_ins(exported: Path, cache: Path) -> None:
    """Copy the exported stand-ins into a test's own kit cache, so its run resolves them as a learner's second run
    does (from the cache) without paying for the export again."""
    for folder in (exported / "models").iterdir():
        shutil.copytree(folder, cache / "models" / folder.name, dirs_exist_ok=True)


# The two fastest lessons, executed once per session in the smoke profile by the bench runner, then built into the site.
SITE_LESSONS = ("00_start_here.ipynb", "01_word_embeddings.ipynb")


@dataclasses.dataclass
class BuiltSite:
    """Executed copies (folder) and the HTML site built from them."""

    executed: Path
    html: Path
    pages: list[str]


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> BuiltSite:
    """Run SITE_LESSONS through `bench --executed` (smoke, offline, own cache) and build the site (--partial).

    Built once per test session: under `make test`'s two xdist workers, in their shared session folder, by
    whichever worker needs it first while the other waits.
    """
    work = shared_session_folder(tmp_path_factory) / "built-site"
    with _fs.one_at_a_time(work):
        if not (work / "pages.json").is_file():
            pages = _build_site(work)
            (work / "pages.json").write_text(json.dumps(pages))
    return BuiltSite(work / "executed", work / "html", json.loads((work / "pages.json").read_text()))


def _build_site(work: Path) -> list[str]:
    """Execute SITE_LESSONS into `work`/executed and build their pages into `work`/html."""
    notebooks = work / "notebooks"
    notebooks.mkdir(parents=True, exist_ok=True)
    for name in SITE_LESSONS:  # a copy, so what the lessons write at run time stays out of the checkout
        (notebooks / name).write_bytes((course.checkout() / "notebooks" / name).read_bytes())
    env = {"KITLIB_OFFLINE": "1", "KITLIB_PROFILE": "smoke", "KITLIB_DATA_DIR": "",
           "KITLIB_CACHE": str(work / "cache"), "KITLIB_RESULTS": str(work / "results")}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        _, runs = runner.bench([notebooks / n for n in SITE_LESSONS], timeout=600, executed=work / "executed")
    assert not [run.error for run in runs if run.error]
    return site.build(work / "executed", work / "html", partial=True)


CHROMIUM = Path("/usr/bin/chromium")  # Debian's package (`make browser`); no test tool downloads a browser
CHROMEDRIVER = Path("/usr/bin/chromedriver")  # given explicitly, so Selenium Manager never runs


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    """The headless browser the end-to-end tests (tests/e2e) drive: Debian's Chromium through its own chromedriver.

    Here rather than in tests/e2e/conftest.py: two modules named `conftest` would shadow each other for the
    tests that import helpers from this one.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: run `make browser` (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1800", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(params=runtime.POLICIES)
def policy(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each precision policy the kit supports (KITLIB_PRECISION's values), set globally for a test, restored after."""
    import keras

    before = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy(before)
