"""The CLI's named gateways, read from contexts.json beside the saved logins (src/cli/client/contexts.ts):

    {"current": "prod" | null, "contexts": {"prod": {"url": "https://gw:8443", "ca": "/abs/ca.crt"}, ...}}

Read only: contexts are made with `gatehouse config set-context NAME --url URL [--ca FILE]` and
`gatehouse config use-context NAME`.
"""

import json
import os
import re

from .credentials import config_home
from .errors import GatehouseError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def contexts_file():
    return os.path.join(config_home(), "contexts.json")


def read():
    """(current, {name: context}); no file is no contexts, a damaged one an error (it would send calls elsewhere)."""
    path = contexts_file()
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None, {}
    except (OSError, ValueError):
        raise GatehouseError("%s is not valid JSON: fix it, or remove it and set the contexts again" % path, code="invalid_context") from None
    data = data if isinstance(data, dict) else {}
    found = data.get("contexts") if isinstance(data.get("contexts"), dict) else {}
    usable = {name: c for name, c in found.items() if isinstance(c, dict) and isinstance(c.get("url"), str)}
    current = data.get("current") if isinstance(data.get("current"), str) else None
    return current, usable


def source(name, where):
    """(url, ca, where, name) of a context that must exist: named by context= or GATEHOUSE_CONTEXT."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise GatehouseError("context name %s: letters, digits, . _ - (at most 63, starting with a letter or digit)" % json.dumps(name),
                             code="invalid_context")
    _, known = read()
    context = known.get(name)
    if context is None:
        names = ", ".join(known)
        hint = "known: %s" % names if names else "none is set: gatehouse config set-context NAME --url URL"
        raise GatehouseError("no context %s (%s); %s" % (json.dumps(name), where, hint), code="invalid_context")
    return _source(name, context)


def current_source():
    """The current context, when there is one still defined (a deleted one is no longer current)."""
    current, known = read()
    if current is None or current not in known:
        return None
    return _source(current, known[current])


def _source(name, context):
    ca = context.get("ca") if isinstance(context.get("ca"), str) else None
    return context["url"], ca, 'context "%s"' % name, name
