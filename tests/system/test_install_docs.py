"""docs/install.md and docs/tutorial.md, run from their own code blocks (issue 15 §3, §5), so that they cannot
drift from the code: a new project in a temporary directory gets each file block (a first line naming the
file, "add at the end" to append), runs each shell line with this environment's python, ``check`` must find
no issues, ``runbus`` starts on a free port and must print the lines the page shows, and the page's script
sends its requests. Then the server side of what the pages' templates do, through BusClient: the topic, the
deferred job with its progress, the bound form's validation errors, and the rendered pages themselves."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import http.cookiejar
import os
import re
import subprocess
import sys
import tomllib
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from channelbus.client import BusClient, RequestFailed
from tests.servers import ROOT, free_port, wait_for_port

DOCS = ROOT / "docs"
PASSWORD = "a password for the docs test"
#: ```lang ... ``` blocks: the language, and the text.
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
#: The first line of a file block: ``# path`` or ``{# path #}``, maybe with ": add at the end" (or with
#: ": replace the file", which a block without it does too).
NAMED = re.compile(
    r"^(?:#|\{#)\s*(?P<path>[\w./-]+\.\w+)(?::\s*(?P<how>add at the end|replace the file))?\s*(?:#\})?$"
)


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    lang: str
    text: str


def blocks(page: str) -> list[Block]:
    """The fenced code blocks of ``docs/<page>``, in order."""
    return [Block(lang, text) for lang, text in FENCE.findall((DOCS / page).read_text())]


class Project:
    """A project built from pages' blocks in ``path``; ``server`` once runbus runs (``host:port``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.port = free_port()
        self.server: str | None = None
        self.runbus: subprocess.Popen | None = None
        self.log = path / "runbus.log"
        #: Each shell line run, with its output.
        self.outputs: list[tuple[str, str]] = []
        bin_dir = str(Path(sys.executable).parent)
        self.env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "PYTHONPATH"}}
        self.env.update(
            PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            PYTHONUNBUFFERED="1",
            DJANGO_SUPERUSER_PASSWORD=PASSWORD,
        )

    def here(self, text: str) -> str:
        """``text`` with the pages' address (127.0.0.1:8000) replaced by this project's server's."""
        return text.replace("127.0.0.1:8000", f"127.0.0.1:{self.port}")

    def replay(self, page: str, *, serve: bool = True) -> None:
        """Every block of ``page``: files written, shell lines run, runbus started (or, without ``serve``,
        the page stops there) and the output blocks after it found in its output."""
        after_runbus = False
        for block in blocks(page):
            if block.lang in ("sh", "shell"):
                for line in block.text.splitlines():
                    if line.strip() and not line.lstrip().startswith("#"):
                        if "manage.py runbus" in line and not serve:
                            return
                        after_runbus = self.run(line) or after_runbus
            elif block.lang == "text" and after_runbus:
                output = self.log.read_text()
                for line in self.here(block.text).splitlines():
                    assert line in output, f"{page}: runbus did not print {line!r}:\n{output}"
            elif block.lang in ("python", "django", "html", "toml"):
                self.write(page, block)

    def write(self, page: str, block: Block) -> None:
        first, _, rest = block.text.partition("\n")
        named = NAMED.match(first.strip())
        assert named, f"{page}: a {block.lang} block that names no file: {first!r}"
        target = self.path / named["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        if named["how"] == "add at the end":
            assert target.exists(), f"{page}: {named['path']} must exist before something is added to it"
            with target.open("a") as file:
                file.write("\n\n" + self.here(rest))
        else:
            target.write_text(self.here(rest))

    def run(self, line: str) -> bool:
        """Run one shell line of a page; True when it started runbus."""
        if line.startswith("pip install"):
            self.check_extras(line)
            return False
        if "manage.py runbus" in line:
            self.start(line)
            return True
        if "createsuperuser" in line:
            line += " --noinput --email admin@example.com"  # the password from the environment
        done = subprocess.run(
            ["bash", "-ec", self.here(line)],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        if line.endswith("manage.py check"):
            assert "System check identified no issues" in done.stdout, done.stdout + done.stderr
            assert not done.stderr.strip(), done.stderr
        self.outputs.append((line, done.stdout))
        return False

    @staticmethod
    def check_extras(line: str) -> None:
        """``pip install 'channelbus[a,b]'`` names extras that pyproject.toml has (nothing is installed:
        this environment has them all)."""
        extras = set(re.findall(r"channelbus\[([\w,]+)\]", line)[0].split(","))
        declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
        assert extras <= set(declared), extras - set(declared)

    def start(self, line: str) -> None:
        """``python manage.py runbus``, on this project's port, its output in :attr:`log`."""
        args = line.split()
        with self.log.open("w") as output:
            self.runbus = subprocess.Popen(
                [sys.executable, *args[1:], "--port", str(self.port)],
                cwd=self.path,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
            )
        wait_for_port(self.port, self.runbus)
        self.server = f"127.0.0.1:{self.port}"

    def stop(self) -> str:
        """Stop runbus; its output."""
        if self.runbus is not None:
            self.runbus.terminate()
            try:
                self.runbus.wait(10)
            except subprocess.TimeoutExpired:
                self.runbus.kill()
                self.runbus.wait()
            self.runbus = None
        return self.log.read_text() if self.log.exists() else ""

    def output_of(self, command: str) -> str:
        """The output of the shell line of a page that contains ``command``."""
        return next(out for line, out in self.outputs if command in line)

    def token(self) -> str:
        """A connection token of ``admin``, made as the pages make one."""
        done = subprocess.run(
            [sys.executable, "manage.py", "channelbus_token", "admin"],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def get(self, path: str) -> str:
        """GET ``path`` from runbus, signed out."""
        with urllib.request.urlopen(f"http://{self.server}{path}", timeout=10) as response:
            return response.read().decode()

    def signed_in_page(self, path: str) -> tuple[str, dict[str, str]]:
        """GET ``path`` as a browser signed in as ``admin`` through the admin's sign-in form; the page and
        the cookies."""
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        base = f"http://{self.server}"
        with opener.open(f"{base}{path}", timeout=10) as response:  # redirected to the sign-in form
            form = response.read().decode()
            login = response.url
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)[1]
        data = urllib.parse.urlencode(
            {"csrfmiddlewaretoken": csrf, "username": "admin", "password": PASSWORD, "next": path}
        ).encode()
        request = urllib.request.Request(login, data=data, headers={"Referer": login})
        with opener.open(request, timeout=10) as response:
            assert urllib.parse.urlparse(response.url).path == path, response.url
            page = response.read().decode()
        return page, {cookie.name: cookie.value for cookie in jar}


@contextlib.contextmanager
def project(tmp_path: Path) -> Iterator[Project]:
    built = Project(tmp_path / "site")
    built.path.mkdir()
    try:
        yield built
    finally:
        output = built.stop()
        print(output)  # shown when the test fails


@pytest.mark.timeout(90)
async def test_the_install_page_builds_a_project_that_answers(tmp_path):
    with project(tmp_path) as site:
        await asyncio.to_thread(site.replay, "install.md")
        assert site.server is not None, "install.md starts runbus"
        # The page's script: talk.py, with a token, printed the echo, the count's states and its result.
        talked = site.output_of("talk.py").splitlines()
        assert talked[0] == "{'text': 'hi'}"
        assert talked[-1] == "{'total': 3}"
        assert [ast.literal_eval(line)["s"] for line in talked[1:-1]] == ["q", "r", "r", "r", "r"]

        # What the page's template does, through BusClient on the session of the signed-in page.
        page, cookies = await asyncio.to_thread(site.signed_in_page, "/")
        assert "Signed in as admin." in page
        assert 'data-bus-type="myapp.announce"' in page
        assert '<script src="/static/channelbus/channelbus.js" defer></script>' in page
        script = await asyncio.to_thread(site.get, "/static/channelbus/channelbus.js")
        assert "NO_RECONNECT_CODES" in script  # runbus serves the browser client with DEBUG
        async with BusClient(f"ws://{site.server}/ws/", cookies=cookies) as bus:
            assert await bus.request("myapp.echo", {"text": "hi"}) == {"text": "hi"}
            subscribed = await bus.request("topic.subscribe", {"topic": "myapp.news"})
            assert subscribed["topic"] == "myapp.news"
            assert await bus.request("myapp.announce", {"text": "hello"}) is None
            assert (await bus.receive("myapp.news_item", timeout=10))["p"] == {"text": "hello"}
            states = []
            counted = await bus.request("myapp.count", {"to": 2}, on_state=states.append, timeout=20)
            assert counted == {"total": 2}
            assert [s["p"] for s in states if s.get("p")] == [
                {"done": 1, "total": 2},
                {"done": 2, "total": 2},
            ]
            with pytest.raises(RequestFailed) as bad:
                await bus.request("myapp.announce", {"text": ""})
            assert bad.value.payload["errors"][0]["loc"] == ["text"]  # shown next to the form's field

        # A script with a stale token is told why it was refused.
        async with BusClient(f"ws://{site.server}/ws/", token="stale~token~x") as refused:
            closing = await refused.receive("s.closing", timeout=10)
        assert closing["p"] == {"code": 4401, "reason": "Sign in to use this connection: token invalid."}


@pytest.mark.timeout(90)
async def test_the_tutorial_builds_a_live_notes_app_on_the_install_project(tmp_path):
    with project(tmp_path) as site:
        await asyncio.to_thread(site.replay, "install.md", serve=False)
        await asyncio.to_thread(site.replay, "tutorial.md")
        assert site.server is not None, "tutorial.md starts runbus"
        page, cookies = await asyncio.to_thread(site.signed_in_page, "/notes/")
        assert 'data-bus-type="notes.add"' in page
        assert '<textarea name="text"' in page
        assert 'data-bus-type="notes.export"' in page
        url = f"ws://{site.server}/ws/"
        async with BusClient(url, cookies=cookies) as tab, BusClient(url, token=site.token()) as script:
            assert (await tab.request("topic.subscribe", {"topic": "notes.board"}))["state"] == []
            await script.request("topic.subscribe", {"topic": "notes.board"})

            # Request and reply; the note reaches both followers of the board, after the commit.
            added = await tab.request("notes.add", {"text": "Buy milk"})
            note = {"id": added["id"], "author": "admin", "text": "Buy milk"}
            for follower in (tab, script):
                frame = await follower.receive("notes.added", timeout=10)
                assert (frame["c"], frame["p"]) == ("notes.board", note)

            # The bound form's error, for its field.
            with pytest.raises(RequestFailed) as empty:
                await tab.request("notes.add", {"text": ""})
            assert empty.value.type == "error.validation"
            assert [e["loc"] for e in empty.value.payload["errors"]] == [["text"]]

            # The deferred export, with its progress.
            for n in range(2, 13):
                await script.request("notes.add", {"text": f"note {n}"})
            states = []
            exported = await tab.request("notes.export", on_state=states.append, timeout=30)
            assert exported["count"] == 12
            rows = exported["csv"].splitlines()
            assert rows[0] == "id,author,text"
            assert rows[1] == f"{added['id']},admin,Buy milk"
            assert len(rows) == 13
            assert [s["s"] for s in states[:2]] == ["q", "r"]
            assert [s["p"] for s in states if s.get("p")] == [
                {"done": 10, "total": 12, "text": "10 of 12 notes"},
                {"done": 12, "total": 12, "text": "12 of 12 notes"},
            ]

        # A page opened now gets the board's state: the notes, oldest first.
        async with BusClient(url, cookies=cookies) as later:
            state = (await later.request("topic.subscribe", {"topic": "notes.board"}))["state"]
        assert [n["text"] for n in state] == ["Buy milk", *(f"note {n}" for n in range(2, 13))]
        check = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "manage.py", "check"],
            cwd=site.path,
            env=site.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "System check identified no issues" in check.stdout, check.stdout + check.stderr
