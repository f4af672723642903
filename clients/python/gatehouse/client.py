"""Client: one gateway, the caller's saved login, and what a notebook does with them."""

import http.client
import re
import urllib.parse

from . import rows as rowlib
from . import session
from . import source as sourcelib
from .errors import GatehouseError, NotFound, Unreachable
from .jobs import Job
from .target import resolve
from .transport import TIMEOUT_S, Transport


class Client:
    """A client of one gateway.

    Which gateway, in the CLI's order: url= (with ca=) > context= > GATEHOUSE_URL / GATEHOUSE_CA >
    GATEHOUSE_CONTEXT > the current context (`gatehouse config use-context`) > the local
    gatehouse.yaml > https://127.0.0.1:8443; the CA last from the one `gatehouse cert` saved (see
    gatehouse.target). The login is the one `gatehouse login` saved for it (or login() here).
    """

    def __init__(self, url=None, ca=None, context=None, timeout=TIMEOUT_S):
        self.target = resolve(url=url, ca=ca, context=context)
        self.transport = Transport(self.target, timeout=timeout)

    def __repr__(self):
        return "Client(url=%r, ca=%r)" % (self.target.url, self.target.ca_file)

    @property
    def url(self):
        return self.target.url

    # --- plumbing ---------------------------------------------------------------------------

    def _call(self, method, path, body=None):
        return self.transport.call(method, path, token=session.access_token(self.transport), body=body)

    def _open(self, method, path, headers=None, quiet_ok=False):
        return self.transport.open(method, path, token=session.access_token(self.transport), headers=headers, quiet_ok=quiet_ok)

    # --- identity ---------------------------------------------------------------------------

    def login(self, browser=True, out=None):
        """Logs in with your SSO (the device flow): prints a URL and a code and opens a browser when it
        can; saved where `gatehouse login` saves, so the CLI is logged in too. Returns whoami."""
        return session.device_login(self.transport, browser=browser, out=out)

    def logout(self):
        """Ends the login (its tokens stop working) and forgets it, for the CLI too."""
        return session.logout(self.transport)

    def whoami(self):
        return self._call("GET", "/v1/whoami")

    # --- datasets ---------------------------------------------------------------------------

    def datasets(self):
        """The datasets you may use, each with your actions on it (a list of dicts)."""
        return self._call("GET", "/v1/datasets").get("datasets", [])

    def dataset(self, name):
        """One dataset's manifest: format, columns, owner, labels, produced_by, partitions, etag."""
        return self._call("GET", "/v1/datasets/%s" % _name_path(name))

    def partition_bytes(self, name, partition, etag=None):
        """Partition ``partition``'s bytes exactly as stored."""
        response = self._partition(name, partition, etag)
        try:
            return self.transport.read_all(response)
        finally:
            response.close()

    def iter_rows(self, name, partition=None):
        """Rows as dicts, streamed partition by partition (one partition's bytes at a time at most).

        partition: None for all, a number, or a list of numbers."""
        manifest = self.dataset(name)
        for n in _partitions(manifest, partition, name):
            response = self._partition(name, n, manifest.get("etag"))
            try:
                yield from _guarded(rowlib.iter_rows(response, manifest.get("format")), self.target.url)
            finally:
                response.close()

    def read(self, name, partition=None, as_frame=None):
        """A dataset's rows: a pandas DataFrame when pandas is installed (as_frame=None) or asked for
        (as_frame=True), else a list of dicts (CSV values as strings, as the preview gives them)."""
        manifest = self.dataset(name)
        want_frame = rowlib.pandas_or_none() is not None if as_frame is None else bool(as_frame)
        if want_frame and rowlib.pandas_or_none() is None:
            raise ImportError("as_frame=True needs pandas, which is not installed here; read() without it gives a list of dicts")
        rows = []
        for n in _partitions(manifest, partition, name):
            response = self._partition(name, n, manifest.get("etag"))
            try:
                rows.extend(_guarded(rowlib.iter_rows(response, manifest.get("format")), self.target.url))
            finally:
                response.close()
        return rowlib.frame(rows, manifest.get("columns")) if want_frame else rows

    def _partition(self, name, n, etag):
        path = "/v1/datasets/%s/partitions/%d" % (_name_path(name), int(n))
        response = self._open("GET", path, headers={"accept": "text/csv, application/x-ndjson, application/json"})
        served = (response.getheader("etag") or "").strip('"')
        if etag and served and served != etag:
            response.close()
            raise GatehouseError("dataset %s changed while it was being read (version %s, then %s): read it again" % (name, etag[:12], served[:12]),
                                 code="changed")
        return response

    # --- jobs -------------------------------------------------------------------------------

    def submit(self, fn_or_file, input, output, cores=1, memory=1024, time=3600, name=None, partitions=None,
               overwrite=False, labels=None, backend=None, output_format=None, max_attempts=None, entrypoint=None,
               helpers=()):
        """Submits a job over ``input`` writing ``output`` and returns its Job.

        fn_or_file: a function defined in the notebook, shipped as its source (see gatehouse.source:
        fn(input_path, output_path, ctx) per partition, or fn(row) -> dict | list | None per row),
        or a path to a .py file defining process(input_path, output_path, ctx).
        memory: megabytes per worker, or a size such as "512m" or "4g"; time: seconds, or "30m", "2h".
        """
        text, entry, runtime, default_name = sourcelib.build(fn_or_file, entrypoint=entrypoint, helpers=helpers,
                                                              output_format=output_format)
        spec = {
            "name": name or default_name,
            "input": input,
            "output": output,
            "runtime": runtime,
            "source": text,
            "entrypoint": entry,
            "resources": {"cores": _whole(cores, "cores"), "memory_mb": memory_mb(memory), "time_limit_s": seconds(time)},
        }
        if partitions is not None:
            spec["partitions"] = sorted(set([partitions] if isinstance(partitions, int) else partitions))
        if overwrite:
            spec["mode"] = "overwrite"
        if labels:
            spec["labels"] = list(labels)
        if backend:
            spec["backend"] = backend
        if output_format:
            spec["output_format"] = output_format
        if max_attempts is not None:
            spec["max_attempts"] = max_attempts
        answer = self._call("POST", "/v1/jobs", body=spec)
        return Job(self, answer["id"], answer)

    def job(self, job_id):
        """A job of yours by id, with its status now."""
        job = Job(self, job_id)
        job.status()
        return job

    def jobs(self, state=None, limit=None, all=False):
        """Your jobs, newest first (all=True: everyone's, where policy lets you)."""
        query = {k: v for k, v in (("state", state), ("limit", limit), ("all", "1" if all else None)) if v is not None}
        path = "/v1/jobs" + ("?" + urllib.parse.urlencode(query) if query else "")
        return [Job(self, info["id"], info) for info in self._call("GET", path).get("jobs", [])]

    def quota(self):
        """Your limits (each with the policy line it comes from), what is in use, your pending jobs."""
        return self._call("GET", "/v1/quota")


def _name_path(name):
    if not isinstance(name, str) or not name:
        raise GatehouseError("a dataset name is a non-empty string such as words or scratch/words_norm", code="invalid_request")
    return urllib.parse.quote(name, safe="/")


def _partitions(manifest, wanted, name):
    present = [p["index"] for p in manifest.get("partitions", [])]
    if wanted is None:
        return present
    chosen = [wanted] if isinstance(wanted, int) else list(wanted)
    missing = [n for n in chosen if n not in present]
    if missing:
        raise NotFound("dataset %s has partitions 0 to %d; there is no %s" % (name, len(present) - 1, ", ".join(map(str, missing))),
                             code="not_found", status=None)
    return chosen


def _guarded(rows, url):
    """Rows, with a connection that breaks mid-partition said as such rather than as a parse error."""
    try:
        yield from rows
    except (OSError, http.client.HTTPException) as exc:
        raise Unreachable("the connection to %s ended early (%s)" % (url, exc), code="unreachable") from None


def _whole(value, what):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GatehouseError("%s=%r: expected a whole number, at least 1" % (what, value), code="invalid_request")
    return value


def memory_mb(value):
    """Megabytes: a number is MB (as memory_mb is), "512m" or "4g" say the unit (4g = 4096)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _whole(value, "memory")
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(m|mb|g|gb)?", str(value).strip(), re.IGNORECASE)
    mb = float(match.group(1)) * (1024 if (match.group(2) or "").lower().startswith("g") else 1) if match else -1
    if mb < 1 or mb != int(mb):
        raise GatehouseError("memory=%r: expected megabytes (1024) or a size such as 512m or 4g" % (value,), code="invalid_request")
    return int(mb)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(value):
    """Seconds: a number is seconds (as time_limit_s is), else a duration such as "30m", "2h" or "1d"."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _whole(value, "time")
    match = re.fullmatch(r"([1-9][0-9]*)\s*(s|m|h|d)?", str(value).strip())
    if not match:
        raise GatehouseError("time=%r: expected seconds (3600) or a duration such as 30m or 2h" % (value,), code="invalid_request")
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]
