"""Which gateway to talk to, which CA to trust there, and under which key its login is kept, in the
CLI's order (src/cli/client/target.ts; README "Which gateway: contexts"). No CA at all means the
system's CAs. The login key is `context:NAME` when a context named the gateway, else its origin.
"""

import os
import urllib.parse

from . import contexts, credentials
from .errors import GatehouseError

DEFAULT_URL = "https://127.0.0.1:8443"


class Target:
    __slots__ = ("url", "ca_file", "hostname", "port", "key", "context")

    # key: where the login is kept in credentials.json; context: the context that named the gateway, if one did

    def __init__(self, url, ca_file, hostname, port, key, context=None):
        self.url = url
        self.ca_file = ca_file
        self.hostname = hostname
        self.port = port
        self.key = key
        self.context = context

    def __repr__(self):
        return "Target(url=%r, ca_file=%r, context=%r)" % (self.url, self.ca_file, self.context)

    @property
    def where(self):
        """`https://gw:8443 (context prod)`: the gateway, and the context that named it."""
        return self.url if self.context is None else "%s (context %s)" % (self.url, self.context)


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
    """The CLI's order (src/cli/client/target.ts); the first source that names a URL wins:

        1. url= (and ca=)                    2. context=NAME
        3. GATEHOUSE_URL (and GATEHOUSE_CA)  4. GATEHOUSE_CONTEXT
        5. the current context (contexts.json, `gatehouse config use-context`)
        6. ./gatehouse.yaml, else https://127.0.0.1:8443

    The CA is the first one named in the same order (a context's only with its own URL), then
    GATEHOUSE_CA; else, when the gateway is the local one (or none was named), the local certs/ca.crt; else the one
    `gatehouse cert` saved (the context's certs/@NAME/ first, then the gateway's certs/HOST_PORT/).
    """
    env = os.environ if env is None else env
    sources = [
        lambda: (url or None, ca or None, "ca=", None),
        lambda: None if context is None else contexts.source(context, "context="),
        lambda: (env.get("GATEHOUSE_URL") or None, env.get("GATEHOUSE_CA") or None, "GATEHOUSE_CA", None),
        lambda: contexts.source(env["GATEHOUSE_CONTEXT"], "GATEHOUSE_CONTEXT") if env.get("GATEHOUSE_CONTEXT") else None,
        contexts.current_source,
    ]
    ca_file, ca_where = None, ""
    chosen_url, chosen_context = None, None
    for next_source in sources:
        found = next_source()
        if found is None:
            continue
        found_url, found_ca, where, found_context = found
        if ca_file is None and found_ca is not None:
            ca_file, ca_where = found_ca, where
        if found_url is not None:
            chosen_url, chosen_context = found_url, found_context
            break
    # GATEHOUSE_CA also serves a URL named above it (url=, a context without a CA of its own).
    if ca_file is None and env.get("GATEHOUSE_CA"):
        ca_file, ca_where = env["GATEHOUSE_CA"], "GATEHOUSE_CA"
    if chosen_url is None or chosen_context is None:
        # This machine's gatehouse.yaml and its CA; never for a context, which names its own gateway.
        local_url, local_ca = local_defaults(env)
        named = chosen_url
        chosen_url = chosen_url or local_url or DEFAULT_URL
        # The local CA vouches for the local gateway only, not for another one named by url=.
        if ca_file is None and local_ca is not None and (named is None or same_origin(named, local_url)):
            ca_file, ca_where = local_ca, "the local certs/ca.crt"
    what = 'context "%s":' % chosen_context if chosen_context is not None else "url"
    key, hostname, port = origin(chosen_url, what)
    if ca_file is None:
        ca_file = credentials.saved_ca_file(hostname, port, chosen_context)
        ca_where = "saved by gatehouse cert"
    if ca_file is not None:
        ca_file = os.fspath(ca_file)
        if not os.access(ca_file, os.R_OK):
            raise GatehouseError("cannot read the CA file %s (%s)" % (ca_file, ca_where), code="invalid_ca")
    login_key = key if chosen_context is None else "context:%s" % chosen_context
    return Target(key, ca_file, hostname, port, login_key, chosen_context)


def same_origin(a, b):
    if b is None:
        return False
    try:
        return origin(a, "url")[0] == origin(b, "url")[0]
    except GatehouseError:
        return False


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
