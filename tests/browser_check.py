"""Load the built book in a real, headless Chromium and check what a reader would see.

    python tests/browser_check.py [_build/html]

Serves the built HTML on 127.0.0.1, opens the landing page, the prose pages and every
chapter page (one per ``notebooks/NN_topic.ipynb``), and checks on each:

- the page title and the page's heading are there (a chapter's heading is its notebook's title);
- every image on the page loaded (non-zero natural width);
- no console error or uncaught exception comes from our own pages;
- no ``Units.`` artefact and no traceback appears in the page's text;
- the page works with the network off: Chromium resolves no host but 127.0.0.1, and any request
  that leaves the book's own server is a failure (MathJax must come from ``_static/mathjax``);
- every formula rendered: each Sphinx ``.math`` element holds MathJax's output
  (``mjx-container``) and no ``mjx-merror``, and at least one page of the book has a formula;
- no code cell's input scrolls sideways: a ``pre`` wider than its column (scrollWidth >
  clientWidth) would hide the end of its lines from a reader (solutions are opened to measure),
  and no text output either (a printed line of more than about 78 characters);

and on a chapter page also:

- its "Open in Colab" link points at the chapter's ``.ipynb`` in the repository named in
  ``_config.yml``, on its branch;
- its sidebar entry starts with the chapter's number (``02_darknet19`` -> "2. ");
- the setup cell is not on the page, and every solution cell is there but collapsed.

Screenshots go to ``.ci/screenshots/`` (git-ignored). Chromium is driven through the Chrome
DevTools Protocol over a websocket (``websocket-client``), so nothing but Debian's ``chromium``
package and requirements.txt is needed. Without Chromium the check skips with a message,
unless ``BROWSER_CHECK_REQUIRED=1`` (set by ``.ci/run``), where it fails.

This file is a script, not a pytest module (its name does not start with ``test_``).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from book_sources import ROOT, chapters, repository_url

SCREENSHOTS = ROOT / ".ci" / "screenshots"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
    "--hide-scrollbars",
    "--window-size=1280,900",
    "--remote-debugging-port=0",
    # The network is off: every host name but the local server's fails to resolve.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)
BOOK_TITLE = "YOLO from Scratch"
PROSE_PAGES = {  # built page -> words its heading must contain
    "book/how_to_use.html": "How to use this book",
    "book/errata.html": "Errata",
    "book/bibliography.html": "Bibliography",
}
FORBIDDEN_TEXT = [
    (re.compile(r"Units\."), "torchinfo's 'Units.' artefact"),
    (re.compile(r"Traceback \(most recent call last\)"), "a traceback"),
]
PAGE_TIMEOUT_S = 30


class CheckFailed(AssertionError):
    pass


@dataclasses.dataclass(frozen=True)
class Page:
    path: str  # relative to _build/html
    heading: str  # what its <h1> must say
    screenshot: str  # file name under .ci/screenshots/
    lands_on: str = ""  # where it must end up after redirects; path itself when empty
    colab: str | None = None  # for a chapter: the Colab link it must carry
    solutions: int = 0  # for a chapter: its solution cells, all collapsed on the page


# --------------------------------------------------------------------------------------------
# What the book should contain, read from the repository


def tagged_cells(path: Path, tag: str) -> int:
    cells = json.loads(path.read_text())["cells"]
    return sum(tag in cell.get("metadata", {}).get("tags", []) for cell in cells)


def notebook_title(path: Path) -> str:
    """The first markdown heading of a notebook: the chapter's heading on its page."""
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        for line in "".join(cell["source"]).splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    raise CheckFailed(f"{path.name} has no '# ' title")


def plain(text: str) -> str:
    """Markdown heading -> the words a browser shows (no markup, single spaces)."""
    text = re.sub(r"\{[a-z]+\}`([^`<]*?)(?:\s*<[^>]*>)?`", r"\1", text)  # {role}`text <target>`
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # [text](link)
    text = re.sub(r"[*_`$\\]", "", text)
    text = text.replace("'", "\u2019")  # Sphinx's smart quotes show an apostrophe as ’
    return " ".join(text.split())


# --------------------------------------------------------------------------------------------
# A static server for _build/html and a tiny DevTools-protocol client


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the signature is the base class's
        pass


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        """Chromium may hang up before a reply (e.g. a 404 for /favicon.ico) is sent: not our error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def serve(directory: Path) -> tuple[ThreadingHTTPServer, str]:
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = QuietServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def find_chromium() -> str | None:
    for candidate in CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


class Browser:
    """One headless Chromium with one tab, driven over the DevTools protocol."""

    def __init__(self, executable: str):
        import websocket  # websocket-client, pinned in requirements.txt

        self.profile = tempfile.mkdtemp(prefix="book-chromium-")  # a fresh --user-data-dir
        self.process = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port = self._devtools_port()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            tabs = [t for t in json.load(response) if t["type"] == "page"]
        self.ws = websocket.create_connection(
            tabs[0]["webSocketDebuggerUrl"], timeout=PAGE_TIMEOUT_S, suppress_origin=True
        )
        self.ids = itertools.count(1)
        self.events: list[dict] = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)

    def _devtools_port(self) -> int:
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise CheckFailed(f"Chromium exited with status {self.process.returncode} at start")
            if port_file.exists() and port_file.read_text().strip():
                return int(port_file.read_text().split()[0])
            time.sleep(0.1)
        raise CheckFailed("Chromium did not open its DevTools port within 30 s")

    def _receive(self) -> dict:
        message = json.loads(self.ws.recv())
        if "method" in message:
            self.events.append(message)
        return message

    def call(self, method: str, **params) -> dict:
        call_id = next(self.ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = self._receive()
            if message.get("id") == call_id:
                if "error" in message:
                    raise CheckFailed(f"{method}: {message['error']}")
                return message.get("result", {})

    def wait_for(self, event: str, timeout: float = PAGE_TIMEOUT_S) -> dict:
        deadline = time.monotonic() + timeout
        seen = len(self.events)
        while time.monotonic() < deadline:
            for message in self.events[seen:]:
                if message["method"] == event:
                    return message
            seen = len(self.events)
            self._receive()
        raise CheckFailed(f"no {event} within {timeout} s")

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise CheckFailed(f"page script failed: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def open(self, url: str, lands_on: str) -> list[dict]:
        """Navigate, wait until the page at ``lands_on`` (after redirects) has loaded with every
        image; return the events that caused."""
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")
        deadline = time.monotonic() + PAGE_TIMEOUT_S
        while not self.evaluate(f"location.href === {json.dumps(lands_on)} && document.readyState === 'complete'"):
            if time.monotonic() > deadline:
                raise CheckFailed(f"{url} did not land on {lands_on} (it is at {self.evaluate('location.href')})")
            time.sleep(0.1)
        # Images below the fold may be lazy: ask for all of them and wait until each settles.
        self.evaluate("""Promise.all([...document.images].map(img => {
            img.loading = 'eager';
            return img.complete ? null : new Promise(done => {
                img.addEventListener('load', done); img.addEventListener('error', done);
                setTimeout(done, 10000);
            });
        }))""")
        self.call("Runtime.evaluate", expression="1")  # drain events that arrived meanwhile
        return list(self.events)

    def screenshot(self, path: Path, max_height: int = 6000) -> None:
        """The whole page (up to max_height): the window is made as tall as the page, then restored."""
        height = min(int(self.evaluate("document.documentElement.scrollHeight")), max_height)
        self.call("Emulation.setDeviceMetricsOverride", width=1280, height=height, deviceScaleFactor=1, mobile=False)
        self.evaluate("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
        shot = self.call("Page.captureScreenshot", format="png")
        self.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            shutil.rmtree(self.profile, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# The checks


def outside_requests(events: list[dict], origin: str) -> list[str]:
    """URLs the page asked for that are not on the book's own server (the network is off)."""
    urls = []
    for event in events:
        if event["method"] == "Network.requestWillBeSent":
            url = event["params"]["request"]["url"]
            if not url.startswith((origin, "data:", "blob:", "about:")) and url not in urls:
                urls.append(url)
    return urls


def own_errors(events: list[dict], origin: str) -> list[str]:
    """Console errors and uncaught exceptions whose source is one of our own pages or files."""
    errors = []
    for event in events:
        method, params = event["method"], event["params"]
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            frames = params.get("stackTrace", {}).get("callFrames", [])
            url = frames[0]["url"] if frames else ""
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            url = details.get("url", "")
            text = details.get("exception", {}).get("description") or details.get("text", "")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            url = params["entry"].get("url", "")
            text = params["entry"]["text"]
        else:
            continue
        if url.endswith("/favicon.ico"):  # the browser's own guess on the root redirect page, not a link of ours
            continue
        if not url or url.startswith(origin):  # outside requests are reported by outside_requests()
            errors.append(f"{text} ({url or 'inline'})")
    return errors


PAGE_STATE = """(() => ({
    title: document.title,
    heading: (document.querySelector('main h1, article h1, h1') || {}).textContent || '',
    text: document.body.innerText,
    images: [...document.images].map(img => ({src: img.currentSrc || img.src,
                                              width: img.naturalWidth, complete: img.complete})),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    sidebar: Object.fromEntries([...document.querySelectorAll('.bd-sidebar-primary nav a[href]')]
                                .map(a => [a.href.replace(/#$/, ''), a.textContent.trim()])),
    location: location.href,
    solutions: document.querySelectorAll('.cell.tag_solution').length,
    // a solution's code must sit in a closed <details> and not be rendered
    shownSolutions: [...document.querySelectorAll('.cell.tag_solution .cell_input')]
        .filter(code => !code.closest('details:not([open])') || code.checkVisibility()).length,
}))()"""
# Wait for MathJax (if the page loads it) to finish typesetting, then count the formulas.
MATH_STATE = """(async () => {
    const formulas = [...document.querySelectorAll('.math')];
    if (formulas.length && window.MathJax && MathJax.startup && MathJax.startup.promise) {
        await MathJax.startup.promise;
    }
    return {
        formulas: formulas.length,
        mathjax: Boolean(window.MathJax && MathJax.version),
        unrendered: formulas.filter(f => !f.querySelector('mjx-container')).map(f => f.textContent.slice(0, 60)),
        errors: document.querySelectorAll('mjx-merror').length,
    };
})()"""
# Open every collapsed cell input (solutions), measure each code cell's <pre> (input and text
# output), close them again.
WIDE_CODE = """(() => {
    const closed = [...document.querySelectorAll('.cell details:not([open])')];
    closed.forEach(d => { d.open = true; });
    const wide = [...document.querySelectorAll('.cell .cell_input pre, .cell .cell_output pre')]
        .filter(pre => pre.scrollWidth > pre.clientWidth + 1)
        .map(pre => {
            const longest = pre.textContent.split('\\n').reduce((a, b) => (b.length > a.length ? b : a), '');
            return {output: Boolean(pre.closest('.cell_output')),
                    text: `${pre.scrollWidth}px in ${pre.clientWidth}px: ${longest.trim().slice(0, 70)}`};
        });
    closed.forEach(d => { d.open = false; });
    return wide;
})()"""
SETUP_CELL_TEXT = "google.colab"  # only the setup cell mentions it; the page must not show it


def check_page(browser: Browser, origin: str, page: Page) -> tuple[list[str], int]:
    """The problems found on one page, and how many formulas it rendered."""
    events = browser.open(f"{origin}/{page.path}", f"{origin}/{page.lands_on or page.path}")
    state = browser.evaluate(PAGE_STATE)
    math = browser.evaluate(MATH_STATE)
    wide_code = browser.evaluate(WIDE_CODE)
    events += browser.events[len(events):]
    browser.screenshot(SCREENSHOTS / page.screenshot)
    problems = []
    if BOOK_TITLE not in state["title"]:
        problems.append(f"title {state['title']!r} does not name the book")
    shown = " ".join(state["heading"].replace("#", " ").split())
    if plain(page.heading).lower() not in shown.lower():
        problems.append(f"heading {shown!r} is not {plain(page.heading)!r}")
    for image in state["images"]:
        if not image["complete"] or image["width"] == 0:
            problems.append(f"image did not load: {image['src']}")
    if page.colab is not None:  # a chapter
        if page.colab not in state["links"]:
            colab_links = [link for link in state["links"] if "colab" in link]
            problems.append(f"no Colab link to {page.colab} (Colab links: {colab_links})")
        number = f"{int(Path(page.path).stem.split('_')[0])}. "  # 02_darknet19 -> "2. "
        entry = state["sidebar"].get(f"{origin}/{page.path}", "")
        if not entry.startswith(number):
            problems.append(f"sidebar entry {entry!r} does not start with {number!r}")
        if SETUP_CELL_TEXT in state["text"]:
            problems.append("the setup cell is visible (tag it remove-cell)")
        if state["solutions"] != page.solutions:
            problems.append(f"{state['solutions']} solution cells on the page, {page.solutions} in the notebook")
        if state["shownSolutions"]:
            problems.append(f"{state['shownSolutions']} solution(s) not collapsed (tag them hide-input)")
    problems += [f"console: {error}" for error in own_errors(events, origin)]
    problems += [f"request outside the book (the network is off): {url}" for url in outside_requests(events, origin)]
    if math["formulas"] and not math["mathjax"]:
        problems.append(f"{math['formulas']} formulas but MathJax did not load (mathjax_path in _config.yml?)")
    problems += [f"formula not rendered: {text!r}" for text in math["unrendered"][:5]]
    if math["errors"]:
        problems.append(f"{math['errors']} MathJax error(s) in formulas")
    problems += [f"{'text output' if w['output'] else 'code cell'} wider than its column ({w['text']})"
                 for w in wide_code]
    for pattern, what in FORBIDDEN_TEXT:
        if pattern.search(state["text"]):
            problems.append(f"page text contains {what}")
    return [f"{page.path}: {p}" for p in problems], math["formulas"] - len(math["unrendered"])


def run(html: Path) -> int:
    if not (html / "index.html").exists():
        raise CheckFailed(f"{html}/index.html does not exist: build the book first (make book)")
    executable = find_chromium()
    if executable is None:
        message = "Chromium not found (Debian: apt-get install chromium)"
        if os.environ.get("BROWSER_CHECK_REQUIRED") == "1":
            raise CheckFailed(message + "; BROWSER_CHECK_REQUIRED=1, so this is a failure")
        print(f"browser check SKIPPED: {message}")
        return 0

    repository = repository_url()
    match = re.match(r"https://github\.com/(.+)$", repository)
    assert match, f"repository url {repository} is not on GitHub, so Colab cannot open it"
    branch = re.search(r"^\s*branch:\s*(\S+)", (ROOT / "_config.yml").read_text(), re.M)
    colab_base = f"https://colab.research.google.com/github/{match.group(1)}/blob/{branch.group(1)}"

    pages = [Page("index.html", BOOK_TITLE, "index.png", lands_on="book/index.html")]  # a redirect
    pages += [Page(path, words, f"{Path(path).stem}.png") for path, words in PROSE_PAGES.items()]
    found = chapters()
    if not found:
        raise CheckFailed("no chapter notebooks in notebooks/")
    for notebook in found:
        path = f"notebooks/{notebook.stem}.html"
        if not (html / path).exists():
            raise CheckFailed(f"{notebook.name} has no page in the book: is it in the toc?")
        colab = f"{colab_base}/notebooks/{notebook.name}"
        solutions = tagged_cells(notebook, "solution")
        pages.append(Page(path, notebook_title(notebook), f"{notebook.stem}.png", colab=colab, solutions=solutions))

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    server, origin = serve(html)
    browser = Browser(executable)
    problems: list[str] = []
    rendered_formulas = 0
    try:
        for page in pages:
            found_problems, formulas = check_page(browser, origin, page)
            print(f"{'ok  ' if not found_problems else 'FAIL'} {page.path}")
            problems += found_problems
            rendered_formulas += formulas
    finally:
        browser.close()
        server.shutdown()
    print(f"formulas rendered offline by MathJax: {rendered_formulas}")
    if not rendered_formulas:
        problems.append("book: no page rendered a formula, so the offline math check tested nothing")
    print(f"screenshots: {SCREENSHOTS.relative_to(ROOT)}/")
    for problem in problems:
        print(f"  {problem}")
    passed = len(pages) - len({p.split(":")[0] for p in problems})
    print(f"browser: {passed} passed, {len(pages) - passed} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    try:
        sys.exit(run(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "_build" / "html"))
    except CheckFailed as error:
        print(f"browser check FAILED: {error}")
        sys.exit(1)
