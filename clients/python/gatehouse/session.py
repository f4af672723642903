"""Logging in with the device flow and keeping the token fresh, as the CLI does
(src/cli/identity-commands.ts and src/cli/client/session.ts), in the same credentials file."""

import os
import sys
import time
import urllib.parse
import webbrowser

from . import credentials
from .errors import GatehouseError, Refused, Unauthenticated

# Refreshed when it has less than this left, as the CLI does: a call never starts with a token about to end.
REFRESH_MARGIN_S = 30


def access_token(transport):
    """A usable access token for the saved login, refreshed (and the new pair saved) when about to expire."""
    target = transport.target
    login = credentials.load_login(target)
    if login is None:
        raise Unauthenticated("not logged in to %s: run gatehouse.login() (or gatehouse login --sso)" % target.where,
                              code="not_logged_in")
    if credentials.seconds_left(login.get("expires_at")) - REFRESH_MARGIN_S > 0 and login.get("access_token"):
        return login["access_token"]
    try:
        answer = transport.call("POST", "/v1/auth/token",
                                body={"grant_type": "refresh_token", "refresh_token": login.get("refresh_token", "")})
    except GatehouseError as exc:
        if exc.status in (400, 401):
            raise Unauthenticated("your login to %s has ended (%s): run gatehouse.login() again" % (target.url, exc.message),
                                  code=exc.code, status=exc.status, body=exc.body) from None
        raise
    credentials.save_login(target, credentials.saved_from(answer, login))
    return answer["access_token"]


def device_login(transport, browser=True, out=None, sleep=time.sleep):
    """The device flow (RFC 8628): print the URL and code, open a browser when one can be opened,
    poll until the login is approved, then save it where the CLI keeps its own.

    browser: True opens one when this machine has a display; False never; a callable gets the URL
    (verification_uri_complete) instead, for a notebook that shows it its own way, or a test.
    """
    out = out or sys.stdout
    target = transport.target
    start = transport.call("POST", "/v1/auth/device", body={})
    print("To log in, open %s and enter the code %s" % (start["verification_uri"], start["user_code"]), file=out)
    print("  or open %s" % start["verification_uri_complete"], file=out, flush=True)
    if callable(browser):
        browser(start["verification_uri_complete"])
    elif browser:
        open_browser(start["verification_uri_complete"])
    interval = max(1, int(start.get("interval", 5)))
    deadline = time.monotonic() + int(start.get("expires_in", 600))
    answer = None
    while time.monotonic() < deadline:
        try:
            answer = transport.call("POST", "/v1/auth/device/token", body={"device_code": start["device_code"]})
            break
        except GatehouseError as exc:
            if exc.code == "authorization_pending":
                sleep(interval)
                continue
            if exc.code == "slow_down":
                interval += 5  # RFC 8628 section 3.5
                sleep(interval)
                continue
            if exc.code == "access_denied":
                raise Refused("the login was refused at the SSO provider", code=exc.code, status=exc.status, body=exc.body) from None
            if exc.code == "expired_token":
                break
            raise
    if answer is None:
        raise Unauthenticated("the login code expired before it was approved; run gatehouse.login() again", code="expired_token")
    me = transport.call("GET", "/v1/whoami", token=answer["access_token"])
    credentials.save_login(target, credentials.saved_from(answer, me))
    groups = ", ".join(me.get("groups") or []) or "no groups"
    print("logged in to %s as %s (%s) with %s" % (target.where, me.get("user"), groups, me.get("auth_method")), file=out, flush=True)
    return me


def logout(transport):
    """Ends the saved login at the gateway and forgets it here, even when the gateway cannot be reached."""
    target = transport.target
    saved = credentials.load_login(target)
    if saved is None:
        return False
    try:
        transport.call("POST", "/v1/auth/logout", body={"refresh_token": saved.get("refresh_token", "")})
    finally:
        credentials.forget_login(target)
    return True


def browsable(url):
    """Only a web address goes to a browser: never a file: URL or anything read as an option."""
    if not isinstance(url, str) or url.startswith("-"):
        return False
    return urllib.parse.urlsplit(url).scheme in ("https", "http")


def open_browser(url):
    """Opens the URL where there is a screen to show it on; over ssh (no display) the printed URL is enough.

    webbrowser alone would fall back to a text browser in the terminal (lynx, w3m) and take over a
    notebook server's console; the CLI's rule decides instead.
    """
    if not browsable(url):
        return False
    graphical = sys.platform in ("darwin", "win32") or any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER"))
    if not graphical:
        return False
    try:
        return webbrowser.open(url, new=2)
    except webbrowser.Error:
        return False
