"""Which gateway to talk to and which CA to trust, in the CLI's order (src/cli/client/target.ts).

    url=/ca= given to Client  >  GATEHOUSE_URL / GATEHOUSE_CA  >  the local gatehouse.yaml
    (GATEHOUSE_CONFIG, else ./gatehouse.yaml: its server and certs/ca.crt)  >  https://127.0.0.1:8443

and last, for the CA, the one `gatehouse cert` saved for that gateway under the config folder, so a
notebook works from any folder. No CA at all means the system's CAs. A Target also names the key its
login is saved under in credentials.json (the gateway's origin).
"""

import os
import urllib.parse

from . import credentials
from .errors import GatehouseError

DEFAULT_URL = "https://127.0.0.1:8443"


class Target:
    __slots__ = ("url", "ca_file", "hostname", "port", "key", "context")

    def __init__(self, url, ca_file, hostname, port, key, context=None):
        self.url = url
        self.ca_file = ca_file
        self.hostname = hostname
        self.port = port
        self.key = key
        self.context = context

    def __repr__(self):
        return "Target(url=%r, ca_file=%r)" % (self.url, self.ca_file)


def origin(url, what="url"):
    """(origin, hostname, port) of an https URL, the origin as JavaScript's URL.origin spells it."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        raise GatehouseError("%s %s is not a URL (expected https://host:port)" % (what, url), code="invalid_url")
    if parts.scheme.lower() != "https":
        raise GatehouseError("%s %s: the gateway speaks HTTPS only" % (what, url), code="invalid_url")
    host = parts.hostname
    if not host:
        raise GatehouseError("%s %s is not a URL (expected https://host:port)" % (what, url), code="invalid_url")
    shown = "[%s]" % host if ":" in host else host
    port = None if port in (None, 443) else port
    return ("https://%s%s" % (shown, "" if port is None else ":%d" % port)), host, port


def resolve(url=None, ca=None, context=None, env=None):
    env = os.environ if env is None else env
    if context is not None:
        # Contexts (contexts.json) are not in this version of Gatehouse: say so rather than guess.
        raise GatehouseError("context=%r: this gateway's CLI has no contexts yet; pass url= and ca=" % context,
                             code="invalid_context")
    url = url or env.get("GATEHOUSE_URL") or None
    ca = ca or env.get("GATEHOUSE_CA") or None
    if not url or not ca:
        local_url, local_ca = local_defaults(env)
        url = url or local_url or DEFAULT_URL
        ca = ca or local_ca
    key, hostname, port = origin(url)
    ca = ca or credentials.saved_ca_file(hostname, port)
    if ca is not None:
        ca = os.fspath(ca)
        if not os.access(ca, os.R_OK):
            raise GatehouseError("cannot read the CA file %s (ca= or GATEHOUSE_CA)" % ca, code="invalid_ca")
    return Target(key, ca, hostname, port, key)


def local_defaults(env):
    """(url, ca file) from the local gatehouse.yaml, or (None, None); a broken file is not the client's concern."""
    path = env.get("GATEHOUSE_CONFIG") or "gatehouse.yaml"
    try:
        with open(path, encoding="utf-8") as f:
            server, certs = _sections(f.read(), ("server", "certs"))
    except (OSError, UnicodeDecodeError):
        return None, None
    # GATEHOUSE_<SECTION>_<KEY> overrides the file, as for the gateway itself.
    public_url = env.get("GATEHOUSE_SERVER_PUBLIC_URL", server.get("public_url", ""))
    host = env.get("GATEHOUSE_SERVER_HOST", server.get("host", "127.0.0.1"))
    port = env.get("GATEHOUSE_SERVER_PORT", server.get("port", "8443"))
    if public_url:
        url = public_url
    elif host == "0.0.0.0":
        url = "https://127.0.0.1:%s" % port
    elif host == "::":
        url = "https://[::1]:%s" % port
    else:
        url = "https://%s:%s" % ("[%s]" % host if ":" in host else host, port)
    certs_dir = env.get("GATEHOUSE_CERTS_DIR", certs.get("dir", "certs"))
    ca = os.path.join(os.path.dirname(os.path.abspath(path)), certs_dir, "ca.crt")
    return url, (ca if os.path.exists(ca) else None)


def _sections(text, wanted):
    """The scalar keys of a few top-level sections of a YAML file: just enough of YAML for two keys.

    The standard library has no YAML reader; gatehouse.yaml's server and certs sections are flat
    `key: value  # comment` lines, which is all this reads.
    """
    found = {name: {} for name in wanted}
    current = None
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            name = line.split(":", 1)[0].strip()
            current = found.get(name)
            continue
        if current is None or ":" not in line:
            continue
        key, value = line.strip().split(":", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        current[key.strip()] = value
    return tuple(found[name] for name in wanted)
