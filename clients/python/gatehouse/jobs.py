"""A submitted job: its status, a wait with progress, its log, cancelling it."""

import codecs
import http.client
import math
import sys
import time
from urllib.parse import quote

from .errors import GatehouseError, InvalidRequest, Unreachable
from .progress import Progress

FINAL_STATES = ("succeeded", "failed", "cancelled")
# How long the gateway may hold one wait (its cap is 25 s; under the transport's 30 s time-out).
WAIT_S = 25
# How long a followed log waits for a place among the person's held reads (a queued job's handover
# may take minutes), and the bounds on the gateway's Retry-After between asks.
PLACE_WAIT_S = 300
RETRY_BOUNDS_S = (0.2, 30.0)


class Job:
    """One job of the caller's. ``info`` is the last status seen (the gateway's Job object)."""

    def __init__(self, client, job_id, info=None):
        self.client = client
        self.id = job_id
        self.info = dict(info or {})

    def __repr__(self):
        return "Job(id=%r, state=%r)" % (self.id, self.info.get("state"))

    @property
    def state(self):
        return self.info.get("state")

    def status(self):
        """The job's state, progress, rows and cost now (GET /v1/jobs/:id), as a dict."""
        self.info = self.client._call("GET", "/v1/jobs/%s" % self.id)
        return self.info

    def done(self):
        return self.status().get("state") in FINAL_STATES

    def changed(self, seen=None, wait_s=WAIT_S):
        """The job once it differs from the answer that gave ``seen`` (its ``info["seen"]``), or after
        wait_s seconds as it is: the gateway holds the request meanwhile (GET /v1/jobs/:id?wait_s=).
        Without seen it answers at once."""
        path = "/v1/jobs/%s?wait_s=%d" % (self.id, wait_s)
        if seen:
            path += "&seen=" + quote(seen, safe="")
        self.info = self.client._call("GET", path)
        return self.info

    def wait(self, progress=True, timeout=None, poll_s=1.0, out=None, use_tqdm=None):
        """Follows the job until it ends and returns its final status (check ``["state"]``: a failed
        job is not an exception, its ``error`` says why). Each request is held by the gateway until the
        job changes, so the end is seen the moment the gateway knows it (an older gateway, which does
        not hold requests, is polled every poll_s at most). progress: a tqdm bar when tqdm is
        installed, else a line rewritten in place on stderr. timeout (seconds) raises TimeoutError;
        the job goes on. Ctrl-C (KeyboardInterrupt) stops watching; the job goes on too."""
        bar = Progress(self.id, enabled=progress, out=out, use_tqdm=use_tqdm)
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = min(0.25, poll_s)
        held, seen = True, None
        try:
            while True:
                holding = held
                if holding:
                    left = WAIT_S if deadline is None else max(0, min(WAIT_S, math.ceil(deadline - time.monotonic())))
                    try:
                        info = self.changed(seen, left)
                    except InvalidRequest as exc:
                        if seen and "seen" in str(exc.body.get("field") or ""):
                            seen = None  # a token this gateway does not take: held again, without it
                            continue
                        held = False  # a gateway from before held waits refuses wait_s: poll it
                        continue
                    except GatehouseError as exc:
                        if exc.status != 429:
                            raise
                        # The gateway holds all the waits it may (this person's 16, or its 1024): a
                        # plain look this time, then, after the pause, a held one again.
                        holding = False
                        info = self.status()
                else:
                    info = self.status()
                bar.update(info)
                if info.get("state") in FINAL_STATES:
                    return info
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError("job %s is still %s after %g s; it goes on" % (self.id, info.get("state"), timeout))
                if holding and info.get("seen"):
                    seen = info["seen"]
                    continue  # answered because it changed (or the wait ran out): ask again at once
                time.sleep(pause if deadline is None else max(0.0, min(pause, deadline - time.monotonic())))
                pause = min(poll_s, pause * 1.5)
        except KeyboardInterrupt:
            bar.close()  # the bar's line ends before the note
            print("stopped watching; job %s keeps running" % self.id, file=sys.stderr)
            raise
        finally:
            bar.close()

    def logs(self, follow=False, out=None, place_wait_s=PLACE_WAIT_S):
        """The job's log as text. follow=True also writes each piece to ``out`` (stdout) as it arrives,
        until the job ends, and then returns the whole text. A follow refused because you hold all your
        waits on jobs (429) is asked again as the gateway's Retry-After says, for up to place_wait_s
        seconds (one line on stderr says so), then raises the refusal."""
        pieces = []
        sink = out or sys.stdout
        for piece in self.iter_logs(follow=follow, place_wait_s=place_wait_s):
            pieces.append(piece)
            if follow:
                sink.write(piece)
                sink.flush()
        return "".join(pieces)

    def iter_logs(self, follow=False, place_wait_s=PLACE_WAIT_S):
        """The log in pieces as the gateway sends them (followed until the job ends when follow=True;
        a refusal for want of a place among your held waits is waited out as logs() says)."""
        path = "/v1/jobs/%s/logs%s" % (self.id, "?follow=1" if follow else "")
        response = self._open_log(path, follow, place_wait_s)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            while True:
                try:
                    chunk = response.read1(65536)
                except (OSError, http.client.HTTPException) as exc:
                    raise Unreachable("the log of job %s ended early (%s)" % (self.id, exc), code="unreachable") from None
                if not chunk:
                    break
                text = decoder.decode(chunk)
                if text:
                    yield text
            tail = decoder.decode(b"", final=True)
            if tail:
                yield tail
        finally:
            response.close()

    def _open_log(self, path, follow, place_wait_s):
        # A followed log of a job not yet on its backend holds a place as a held wait does; the 17th is
        # refused 429 naming the bound (`waits`) before any of the log is sent, so asking again repeats
        # nothing. Only that 429 is waited out; each ask is counted anew, so none holds a 17th place.
        started = time.monotonic()
        said = False
        while True:
            try:
                return self.client._open("GET", path, headers={"accept": "text/plain, application/json"}, quiet_ok=follow)
            except GatehouseError as exc:
                if not (follow and exc.status == 429 and exc.body.get("waits") in ("user", "gateway")):
                    raise
                hint = exc.retry_after if exc.retry_after is not None else exc.body.get("retry_after")
                after = min(RETRY_BOUNDS_S[1], max(RETRY_BOUNDS_S[0], hint if isinstance(hint, (int, float)) else 1))
                waited = time.monotonic() - started
                if waited + after > place_wait_s:
                    exc.message = "following job %s's log: gave up after waiting %.0f s for a place: %s" % (self.id, waited, exc.message)
                    exc.args = (exc.message,)
                    raise
                if not said:
                    print("following job %s's log: %s; waiting for a place (asking again every %g s, for up to %g s)"
                          % (self.id, exc.message, after, place_wait_s), file=sys.stderr)
                    said = True
                time.sleep(after)

    def cancel(self):
        """Cancels the job (pending or running) and returns its final status; Conflict if it had already ended."""
        self.info = self.client._call("DELETE", "/v1/jobs/%s" % self.id)
        return self.info
