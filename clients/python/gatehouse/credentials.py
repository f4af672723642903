"""The CLI's saved logins, read and written the way src/cli/client/credentials.ts does.

One file, ``$XDG_CONFIG_HOME/gatehouse/credentials.json`` (default ``~/.config/gatehouse``): an object
keyed ``context:NAME`` for a login made through a context, else by the gateway's origin
(``https://host:port``), each entry ``{user, auth_method, access_token, refresh_token, expires_at, url,
...}`` (``url``: the gateway the tokens belong to). The folder is 0700 and the file 0600, written atomically (a
temporary file of mode 0600 renamed over it), so the CLI and this client share one login: either
may log in, refresh or log out, and the other sees it.
"""

import datetime
import json
import os
import secrets

from .errors import GatehouseError


def config_home(env=None):
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "gatehouse")


def credentials_file(env=None):
    return os.path.join(config_home(env), "credentials.json")


def _ensure_home():
    home = config_home()
    os.makedirs(home, mode=0o700, exist_ok=True)
    os.chmod(home, 0o700)
    return home


def read_all():
    """Every saved login; a missing or damaged file is no login (the user logs in again), as in the CLI."""
    try:
        with open(credentials_file(), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_private(path, text):
    """Never a moment where the file exists with a wider mode: a 0600 temporary renamed into place."""
    # A fresh name, opened exclusively without following links: a link planted at a guessable
    # temporary name cannot receive the login.
    tmp = "%s.%s.tmp" % (path, secrets.token_hex(6))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _write_all(logins):
    # JSON.stringify(all, null, 2) + "\n": the same bytes the CLI writes.
    write_private(credentials_file(), json.dumps(logins, indent=2, ensure_ascii=False) + "\n")


def load_login(target):
    """The login kept for a target (under ``target.key``), unless it records another gateway's URL:
    tokens go only to the gateway that issued them, even when a context now names another one."""
    login = read_all().get(target.key)
    if not isinstance(login, dict):
        return None
    if login.get("url") is not None and login.get("url") != target.url:
        return None
    return login


def save_login(target, login):
    _ensure_home()
    logins = read_all()
    saved = dict(login)
    saved["url"] = target.url
    logins[target.key] = saved
    _write_all(logins)


def forget_login(target):
    logins = read_all()
    if target.key not in logins:
        return False
    del logins[target.key]
    _write_all(logins)
    return True


def iso_in(seconds):
    """Now + seconds as JavaScript's toISOString writes it: 2026-12-03T06:44:23.000Z."""
    at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (at.microsecond // 1000)


def seconds_left(expires_at):
    """Seconds until an ISO time; -inf when it cannot be read (the token is then refreshed)."""
    try:
        text = expires_at[:-1] + "+00:00" if expires_at.endswith("Z") else expires_at
        at = datetime.datetime.fromisoformat(text)
    except (AttributeError, TypeError, ValueError):
        return float("-inf")
    if at.tzinfo is None:
        at = at.replace(tzinfo=datetime.timezone.utc)
    return (at - datetime.datetime.now(datetime.timezone.utc)).total_seconds()


def saved_from(answer, who):
    """The entry a login or a refresh saves: who (kept whole, as the CLI spreads it) plus the new tokens."""
    try:
        saved = dict(who)
        saved.update(access_token=answer["access_token"], refresh_token=answer["refresh_token"],
                     expires_at=iso_in(int(answer["expires_in"])))
    except (KeyError, TypeError, ValueError):
        raise GatehouseError("the gateway's token answer lacks access_token, refresh_token or expires_in",
                             code="bad_response")
    return saved


def certificate_folder_name(hostname, port):
    """certs/<host>_<port>, as the CLI names it (a JavaScript URL's hostname keeps IPv6 brackets)."""
    host = "[%s]" % hostname if ":" in hostname else hostname
    safe = "".join(c if (c.isascii() and c.isalnum()) or c in ".-" else "_" for c in host)
    return "%s_%s" % (safe, port or 443)


def saved_ca_file(hostname, port, context=None):
    """The CA `gatehouse cert` saved, when there is one: the context's own certs/@NAME/ first, then the gateway's."""
    folders = ([] if context is None else ["@" + context]) + [certificate_folder_name(hostname, port)]
    for folder in folders:
        path = os.path.join(config_home(), "certs", folder, "ca.crt")
        if os.path.exists(path):
            return path
    return None
