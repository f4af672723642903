"""HTTPS to one gateway with the CA the user trusts: JSON in and out, bodies streamed, and every
failure turned into one of the exceptions in errors.py with a sentence saying what to do."""

import http.client
import json
import socket
import ssl

from .errors import GatehouseError, Unreachable, from_answer

USER_AGENT = "gatehouse-python/0.1"
TIMEOUT_S = 30.0


class Transport:
    def __init__(self, target, timeout=TIMEOUT_S):
        self.target = target
        self.timeout = timeout
        self._ssl = None

    def ssl_context(self):
        if self._ssl is None:
            try:
                # With a CA file, only that CA is trusted (as the CLI's `ca` option does); else the system's.
                self._ssl = ssl.create_default_context(cafile=self.target.ca_file)
            except (ssl.SSLError, OSError) as exc:
                raise GatehouseError("cannot use the CA file %s: %s" % (self.target.ca_file, exc), code="invalid_ca")
        return self._ssl

    def open(self, method, path, token=None, body=None, headers=None, timeout=None, quiet_ok=False):
        """Sends a request and returns the http.client response once its status is 2xx; raises otherwise.

        quiet_ok: once the answer has started, the body may stay silent for as long as it likes (a
        followed log is quiet while the job is); only the wait for the answer times out.
        """
        sent = {"accept": "application/json", "user-agent": USER_AGENT}
        if token:
            sent["authorization"] = "Bearer " + token
        payload = None
        if body is not None:
            payload = json.dumps(body).encode("utf-8")
            sent["content-type"] = "application/json"
        sent.update(headers or {})
        conn = http.client.HTTPSConnection(self.target.hostname, self.target.port or 443,
                                           timeout=self.timeout if timeout is None else timeout,
                                           context=self.ssl_context())
        try:
            conn.request(method, path, body=payload, headers=sent)
            response = conn.getresponse()
            if quiet_ok and conn.sock is not None:
                conn.sock.settimeout(None)
        except Exception as exc:
            conn.close()
            raise self.unreachable(exc) from None
        if response.status >= 400:
            try:
                raise self.error_of(response)
            finally:
                conn.close()
        return response

    def call(self, method, path, token=None, body=None, timeout=None):
        """A JSON request and its JSON answer."""
        response = self.open(method, path, token=token, body=body, timeout=timeout)
        try:
            text = self.read_all(response)
        finally:
            response.close()
        if not text:
            return {}
        try:
            return json.loads(text)
        except ValueError:
            raise self.not_json(response.status) from None

    def read_all(self, response):
        try:
            return response.read()
        except Exception as exc:
            raise Unreachable("the connection to %s ended early (%s)" % (self.target.url, exc), code="unreachable") from None

    def error_of(self, response):
        try:
            text = response.read()
            body = json.loads(text) if text else {}
        except (ValueError, OSError, http.client.HTTPException):
            return self.not_json(response.status)
        return from_answer(response.status, body, response.getheader("retry-after"))

    def not_json(self, status):
        return GatehouseError("the gateway at %s answered %d with something that is not JSON" % (self.target.url, status),
                              code="bad_response", status=status)

    def unreachable(self, exc):
        url = self.target.url
        if isinstance(exc, ssl.SSLCertVerificationError):
            if getattr(exc, "verify_code", None) == 62:  # X509_V_ERR_HOSTNAME_MISMATCH
                return Unreachable("the gateway's certificate does not name %s: add it to server.hostnames" % self.target.hostname,
                                   code="untrusted")
            by = " by %s" % self.target.ca_file if self.target.ca_file else " by the system's CAs"
            return Unreachable("the gateway's certificate at %s is not trusted%s: pass ca='certs/ca.crt' (or GATEHOUSE_CA)" % (url, by),
                               code="untrusted")
        if isinstance(exc, ConnectionRefusedError):
            return Unreachable("cannot reach the gateway at %s (connection refused): is it running? (npm start), or pass url= / GATEHOUSE_URL" % url,
                               code="unreachable")
        if isinstance(exc, (socket.timeout, TimeoutError)):
            return Unreachable("cannot reach the gateway at %s: no answer within %g s" % (url, self.timeout), code="unreachable")
        if isinstance(exc, GatehouseError):
            return exc
        return Unreachable("cannot reach the gateway at %s: %s" % (url, exc), code="unreachable")
