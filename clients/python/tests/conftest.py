"""The stack these cases run against is started by test/python-client.test.ts (npx vitest run
--project sqlite test/python-client.test.ts), which passes it in the environment:

    GATEHOUSE_URL, GATEHOUSE_CA      the gateway and its CA (what a notebook's environment would hold)
    XDG_CONFIG_HOME                  alice's config folder, where `gatehouse login --sso` saved her login
    GATEHOUSE_TEST_HOME_ALICE/_DAVE  the CLI's config folders for alice (analyst) and dave (contractor)
    GATEHOUSE_TEST_APPROVER          POST {url, user}: approves a device login in the development provider
    GATEHOUSE_TEST_NODE/_CLI         node and bin/gatehouse.js, to check what the CLI makes of our files
    GATEHOUSE_TEST_OTHER_CA          a CA that signed nothing of the gateway's
    GATEHOUSE_TEST_INSTALLED         where install.py put the package (the cases import that copy)
"""

import http.client
import json
import os
import shutil
import ssl
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
STACK = "GATEHOUSE_TEST_APPROVER" in os.environ

if not os.environ.get("GATEHOUSE_TEST_INSTALLED"):
    sys.path.insert(0, os.path.dirname(HERE))  # run by hand: the package beside the tests

import gatehouse  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if STACK:
        return
    skip = pytest.mark.skip(reason="no stack: run through test/python-client.test.ts (npx vitest run test/python-client.test.ts)")
    for item in items:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def url():
    return os.environ["GATEHOUSE_URL"]


@pytest.fixture(scope="session")
def ca():
    return os.environ["GATEHOUSE_CA"]


@pytest.fixture(autouse=True)
def as_alice(monkeypatch, tmp_path):
    """Every case starts as alice with the CLI's login, in a folder of its own (no gatehouse.yaml)."""
    if STACK:
        monkeypatch.setenv("XDG_CONFIG_HOME", os.environ["GATEHOUSE_TEST_HOME_ALICE"])
    monkeypatch.chdir(tmp_path)
    gatehouse.configure()


@pytest.fixture
def use_home(monkeypatch):
    """Switch to another config folder (another person's login, or none)."""
    def use(home):
        monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
        return home
    return use


@pytest.fixture
def as_dave(use_home):
    use_home(os.environ["GATEHOUSE_TEST_HOME_DAVE"])


@pytest.fixture
def approve():
    """browser= for login(): the test's approver signs the device in as `user`, as a person would in a browser."""
    def for_user(user):
        def browser(verification_url):
            base = os.environ["GATEHOUSE_TEST_APPROVER"].split("//", 1)[1]
            conn = http.client.HTTPConnection(base, timeout=60)
            conn.request("POST", "/", body=json.dumps({"url": verification_url, "user": user}), headers={"content-type": "application/json"})
            answer = json.loads(conn.getresponse().read())
            conn.close()
            assert answer["outcome"] == "approved", answer
        return browser
    return for_user


@pytest.fixture
def cli():
    """Runs the Node CLI with a config folder: what it makes of the files Python wrote."""
    def run(args, home):
        env = dict(os.environ, XDG_CONFIG_HOME=str(home))
        return subprocess.run([os.environ["GATEHOUSE_TEST_NODE"], os.environ["GATEHOUSE_TEST_CLI"]] + list(args),
                              env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    return run


@pytest.fixture
def saved(url):
    """The saved login entry for the gateway in a config folder, straight from the file."""
    def read(home):
        with open(os.path.join(str(home), "gatehouse", "credentials.json"), encoding="utf-8") as f:
            return json.load(f)
    return read


@pytest.fixture
def raw(url, ca):
    """The API itself, without the client: (status, headers, body bytes) with a home's saved access token."""
    def get(path, home=None, method="GET", body=None, token=None):
        if token is None:
            home = home or os.environ["XDG_CONFIG_HOME"]
            with open(os.path.join(str(home), "gatehouse", "credentials.json"), encoding="utf-8") as f:
                token = json.load(f)[url]["access_token"]
        host_port = url.split("//", 1)[1]
        conn = http.client.HTTPSConnection(host_port, context=ssl.create_default_context(cafile=ca), timeout=60)
        headers = {"authorization": "Bearer " + token} if token else {}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, dict(response.getheaders()), data
    return get


@pytest.fixture
def copy_home(tmp_path):
    def copy(home, name="home"):
        dest = tmp_path / name
        shutil.copytree(str(home), str(dest))
        return dest
    return copy
