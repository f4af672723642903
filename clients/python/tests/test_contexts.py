"""The CLI's contexts (gatehouse config set-context / use-context) decide for Python too, in the same order."""

import json

import pytest

import gatehouse


@pytest.fixture
def lab(tmp_path, use_home, cli, url, ca, monkeypatch):
    """A config folder with contexts lab and lab2 (same gateway) made by the CLI, lab current, and no GATEHOUSE_URL/CA."""
    home = use_home(tmp_path / "contexts-home")
    for args in (["config", "set-context", "lab", "--url", url, "--ca", ca], ["config", "set-context", "lab2", "--url", url, "--ca", ca],
                 ["config", "use-context", "lab"]):
        made = cli(args, home)
        assert made.returncode == 0, made.stderr
    monkeypatch.delenv("GATEHOUSE_URL")
    monkeypatch.delenv("GATEHOUSE_CA")
    return home


def test_the_current_context_is_used_and_its_login_shared_with_the_cli(lab, approve, cli, saved, url, ca):
    client = gatehouse.Client()
    assert (client.url, client.target.context, client.target.ca_file) == (url, "lab", ca)
    me = gatehouse.login(browser=approve("bob"), out=open("/dev/null", "w"))
    assert me["user"] == "bob"
    logins = saved(lab)
    assert list(logins) == ["context:lab"]
    assert logins["context:lab"]["url"] == url and logins["context:lab"]["user"] == "bob"
    who = cli(["whoami", "--json"], lab)
    assert who.returncode == 0, who.stderr
    assert json.loads(who.stdout)["user"] == "bob"
    # Another context on the same gateway is another login.
    with pytest.raises(gatehouse.Unauthenticated) as raised:
        gatehouse.Client(context="lab2").whoami()
    assert str(raised.value).startswith("not logged in to %s (context lab2):" % url)
    # A login the CLI makes through a context is Python's too.
    assert gatehouse.Client(context="lab").whoami()["user"] == "bob"


def test_the_order_url_then_context_then_environment_then_current(lab, approve, monkeypatch, url, ca):
    gatehouse.login(browser=approve("bob"), out=open("/dev/null", "w"))
    # url= beats every context: the login for that URL (none here), not lab's.
    assert gatehouse.Client(url=url, ca=ca).target.key == url
    # GATEHOUSE_URL beats the current context...
    monkeypatch.setenv("GATEHOUSE_URL", "https://127.0.0.1:1")
    assert gatehouse.Client().url == "https://127.0.0.1:1"
    # ...and context= beats GATEHOUSE_URL.
    assert gatehouse.Client(context="lab").whoami()["user"] == "bob"
    monkeypatch.delenv("GATEHOUSE_URL")
    # GATEHOUSE_CONTEXT beats the current context.
    monkeypatch.setenv("GATEHOUSE_CONTEXT", "lab2")
    assert gatehouse.Client().target.context == "lab2"
    monkeypatch.delenv("GATEHOUSE_CONTEXT")
    gatehouse.configure(context="lab")
    assert gatehouse.whoami()["user"] == "bob"


def test_a_context_that_is_not_defined_is_an_error_naming_the_known_ones(lab):
    with pytest.raises(gatehouse.GatehouseError) as raised:
        gatehouse.Client(context="nope")
    assert raised.value.code == "invalid_context"
    assert str(raised.value) == 'no context "nope" (context=); known: lab, lab2'


def test_tokens_never_go_to_the_gateway_a_context_was_moved_to(lab, approve, cli):
    gatehouse.login(browser=approve("bob"), out=open("/dev/null", "w"))
    moved = cli(["config", "set-context", "lab", "--url", "https://127.0.0.1:1"], lab)
    assert moved.returncode == 0, moved.stderr
    with pytest.raises(gatehouse.Unauthenticated) as raised:
        gatehouse.whoami()
    assert raised.value.code == "not_logged_in"
