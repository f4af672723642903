"""One login for the CLI and Python: the same file, folder and modes, refreshed the same way."""

import json
import os
import re
import stat

import pytest

import gatehouse
from gatehouse import credentials

ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def mode(path):
    return stat.S_IMODE(os.stat(str(path)).st_mode)


def test_a_login_the_cli_saved_is_used_by_python(url):
    me = gatehouse.whoami()
    assert me["user"] == "alice"
    assert "analysts" in me["groups"]
    assert gatehouse.default_client().url == url


def test_a_python_login_is_saved_where_the_cli_finds_it(tmp_path, use_home, approve, cli, saved, url, capsys):
    home = use_home(tmp_path / "bob-home")
    me = gatehouse.login(browser=approve("bob"))
    assert me["user"] == "bob"
    out = capsys.readouterr().out
    assert re.search(r"^To log in, open https?://\S+ and enter the code \S+$", out, re.M)
    assert re.search(r"^  or open https?://\S+$", out, re.M)
    assert "logged in to %s as bob (platform-admins) with oidc" % url in out
    folder = home / "gatehouse"
    assert mode(folder) == 0o700
    assert mode(folder / "credentials.json") == 0o600
    logins = saved(home)
    assert list(logins) == [url]
    entry = logins[url]
    assert entry["user"] == "bob" and entry["auth_method"] == "oidc"
    assert entry["url"] == url  # the gateway these tokens belong to, as the CLI records it
    assert entry["access_token"] and entry["refresh_token"]
    assert ISO_MS.fullmatch(entry["expires_at"])
    # Byte for byte what the CLI writes: JSON.stringify(all, null, 2) and a newline.
    assert (folder / "credentials.json").read_text() == json.dumps(logins, indent=2) + "\n"
    who = cli(["whoami", "--json"], home)
    assert who.returncode == 0, who.stderr
    assert json.loads(who.stdout)["user"] == "bob"


def test_an_expiring_token_is_refreshed_and_the_new_pair_saved_for_the_cli(tmp_path, use_home, approve, cli, saved, raw, url):
    home = use_home(tmp_path / "carol-home")
    gatehouse.login(browser=approve("carol"), out=open(os.devnull, "w"))
    logins = saved(home)
    before = dict(logins[url])
    # The access token is about to end (within the CLI's 30 s margin); another gateway's entry rides along.
    logins[url]["expires_at"] = credentials.iso_in(10)
    logins["https://other.example:9443"] = {"user": "someone", "auth_method": "ldap", "access_token": "a", "refresh_token": "r",
                                            "expires_at": "2030-01-01T00:00:00.000Z"}
    credentials.write_private(str(home / "gatehouse" / "credentials.json"), json.dumps(logins, indent=2) + "\n")

    assert gatehouse.whoami()["user"] == "carol"

    after = saved(home)
    assert after[url]["refresh_token"] != before["refresh_token"]
    assert after[url]["access_token"] != before["access_token"]
    assert credentials.seconds_left(after[url]["expires_at"]) > 60
    assert after[url]["user"] == "carol" and after[url]["auth_method"] == "oidc"
    assert after["https://other.example:9443"] == logins["https://other.example:9443"]
    assert mode(home / "gatehouse" / "credentials.json") == 0o600
    # The CLI goes on with the pair Python saved...
    who = cli(["whoami", "--json"], home)
    assert who.returncode == 0, who.stderr
    assert json.loads(who.stdout)["user"] == "carol"
    # ...and the refresh token it replaced is spent at the gateway.
    status, _, body = raw("/v1/auth/token", method="POST", token="", body={"grant_type": "refresh_token", "refresh_token": before["refresh_token"]})
    assert status == 401, body


def test_a_refresh_the_cli_made_is_used_by_python(use_home, approve, cli, saved, url, tmp_path):
    home = use_home(tmp_path / "dave-home")
    gatehouse.login(browser=approve("dave"), out=open(os.devnull, "w"))
    logins = saved(home)
    logins[url]["expires_at"] = credentials.iso_in(-5)
    credentials.write_private(str(home / "gatehouse" / "credentials.json"), json.dumps(logins, indent=2) + "\n")
    assert cli(["whoami"], home).returncode == 0  # the CLI refreshes and saves
    refreshed = saved(home)[url]
    assert refreshed["refresh_token"] != logins[url]["refresh_token"]
    assert gatehouse.whoami()["user"] == "dave"
    assert saved(home)[url] == refreshed  # still fresh: Python did not need to refresh again


def test_no_login_is_unauthenticated_and_says_how_to_log_in(tmp_path, use_home, url):
    use_home(tmp_path / "nobody")
    with pytest.raises(gatehouse.Unauthenticated) as raised:
        gatehouse.datasets()
    assert raised.value.code == "not_logged_in"
    assert raised.value.status is None
    assert str(raised.value) == "not logged in to %s: run gatehouse.login() (or gatehouse login --sso)" % url


def test_a_logout_ends_the_login_for_both(tmp_path, use_home, approve, cli, saved, url):
    home = use_home(tmp_path / "bob-again")
    gatehouse.login(browser=approve("bob"), out=open(os.devnull, "w"))
    token = saved(home)[url]["access_token"]
    # Logged out by the CLI: Python's next call needs a login again.
    assert cli(["logout"], home).returncode == 0
    with pytest.raises(gatehouse.Unauthenticated) as raised:
        gatehouse.whoami()
    assert raised.value.code == "not_logged_in"
    # Logged in and out by Python: the CLI is logged out, and the token no longer opens anything.
    gatehouse.login(browser=approve("bob"), out=open(os.devnull, "w"))
    assert gatehouse.logout() is True
    assert url not in saved(home)
    who = cli(["whoami"], home)
    assert who.returncode == 2 and "not logged in" in who.stderr
    client = gatehouse.Client()
    credentials.save_login(client.target, {"user": "bob", "auth_method": "oidc", "access_token": token, "refresh_token": "x",
                                 "expires_at": credentials.iso_in(3600)})
    with pytest.raises(gatehouse.Unauthenticated) as ended:
        client.whoami()
    assert ended.value.status == 401 and ended.value.code == "unauthenticated"
