"""Which gateway, and which CA: the CLI's order, and a certificate nobody trusted is refused."""

import os
import shutil

import pytest

import gatehouse
from gatehouse import credentials


def test_a_ca_that_is_not_the_gateways_is_refused(url, monkeypatch):
    other = os.environ["GATEHOUSE_TEST_OTHER_CA"]
    with pytest.raises(gatehouse.Unreachable) as raised:
        gatehouse.Client(url=url, ca=other).datasets()
    assert raised.value.code == "untrusted"
    assert str(raised.value) == "the gateway's certificate at %s is not trusted by %s: pass ca='certs/ca.crt' (or GATEHOUSE_CA)" % (url, other)
    monkeypatch.setenv("GATEHOUSE_CA", other)
    with pytest.raises(gatehouse.Unreachable):
        gatehouse.datasets()


def test_without_a_ca_the_systems_cas_do_not_know_ours(monkeypatch):
    monkeypatch.delenv("GATEHOUSE_CA")
    with pytest.raises(gatehouse.Unreachable) as raised:
        gatehouse.whoami()
    assert raised.value.code == "untrusted"
    assert "not trusted by the system's CAs" in str(raised.value)


def test_the_ca_gatehouse_cert_saved_is_trusted_from_any_folder(copy_home, use_home, cli, monkeypatch, url):
    home = use_home(copy_home(os.environ["GATEHOUSE_TEST_HOME_ALICE"]))
    made = cli(["cert"], home)  # with GATEHOUSE_CA: it saves the CA under the config folder
    assert made.returncode == 0, made.stderr
    monkeypatch.delenv("GATEHOUSE_CA")
    client = gatehouse.Client()
    assert client.target.ca_file.startswith(str(home / "gatehouse" / "certs"))
    assert client.whoami()["user"] == "alice"


def test_an_explicit_url_wins_over_the_environment(url, ca, monkeypatch, copy_home, use_home):
    home = use_home(copy_home(os.environ["GATEHOUSE_TEST_HOME_ALICE"]))
    monkeypatch.setenv("GATEHOUSE_URL", "https://127.0.0.1:1")
    # Logins are kept per gateway: there is none for this one...
    with pytest.raises(gatehouse.Unauthenticated) as raised:
        gatehouse.whoami()
    assert str(raised.value).startswith("not logged in to https://127.0.0.1:1:")
    # ...and with one, nothing answers there.
    saved = credentials.load_login(gatehouse.Client(url=url).target)
    credentials.save_login(gatehouse.Client().target, dict(saved, url="https://127.0.0.1:1"))
    with pytest.raises(gatehouse.Unreachable) as raised:
        gatehouse.whoami()
    assert raised.value.code == "unreachable"
    assert "(connection refused)" in str(raised.value)
    assert home.exists()
    assert gatehouse.Client(url=url, ca=ca).whoami()["user"] == "alice"
    gatehouse.configure(url=url, ca=ca)
    assert gatehouse.whoami()["user"] == "alice"


def test_the_local_gatehouse_yaml_is_read_as_the_cli_reads_it(url, ca, monkeypatch, tmp_path):
    monkeypatch.delenv("GATEHOUSE_URL")
    monkeypatch.delenv("GATEHOUSE_CA")
    port = url.rsplit(":", 1)[1]
    os.makedirs(str(tmp_path / "here-certs"))
    shutil.copy(ca, str(tmp_path / "here-certs" / "ca.crt"))
    (tmp_path / "gatehouse.yaml").write_text(
        "# a gateway's own config\nserver:\n  host: 127.0.0.1   # listener\n  port: %s\n  public_url: \"\"\n"
        "engine:\n  port: 1\ncerts:\n  dir: here-certs\n" % port)
    client = gatehouse.Client()
    assert client.url == url
    assert client.target.ca_file == str(tmp_path / "here-certs" / "ca.crt")
    assert client.whoami()["user"] == "alice"


def test_only_https_urls(monkeypatch):
    with pytest.raises(gatehouse.GatehouseError) as raised:
        gatehouse.Client(url="http://127.0.0.1:8443")
    assert raised.value.code == "invalid_url"
    assert "the gateway speaks HTTPS only" in str(raised.value)


def test_the_local_ca_is_not_trusted_for_another_gateway_named_by_url(monkeypatch, tmp_path):
    monkeypatch.delenv("GATEHOUSE_URL")
    monkeypatch.delenv("GATEHOUSE_CA")
    os.makedirs(str(tmp_path / "certs"))
    (tmp_path / "certs" / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nlocal\n-----END CERTIFICATE-----\n")
    (tmp_path / "gatehouse.yaml").write_text("server:\n  host: 127.0.0.1\n  port: 9443\n")
    from gatehouse.target import resolve
    assert resolve(url="https://127.0.0.1:9443").ca_file == str(tmp_path / "certs" / "ca.crt")
    assert resolve().ca_file == str(tmp_path / "certs" / "ca.crt")
    for other in ("https://gatehouse.example:8443", "https://127.0.0.1:9444"):
        assert resolve(url=other).ca_file is None
