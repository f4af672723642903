"""A job's progress while waiting: a tqdm bar when tqdm is installed (tqdm.auto: a widget in a
notebook, text in a terminal), else one text line rewritten in place."""

import sys


def tqdm_or_none():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


class Progress:
    def __init__(self, job_id, enabled=True, out=None, use_tqdm=None):
        self.job_id = job_id
        self.enabled = enabled
        self.out = out or sys.stderr
        tqdm = tqdm_or_none() if use_tqdm in (None, True) else None
        if use_tqdm is True and tqdm is None:
            raise ImportError("use_tqdm=True needs tqdm, which is not installed here")
        self.tqdm = tqdm if enabled else None
        self.bar = None
        self.last = ""
        self.width = 0

    def update(self, status):
        if not self.enabled:
            return
        parts = status.get("partitions") or {}
        total, done = int(parts.get("total") or 0), int(parts.get("done") or 0)
        state = status.get("state", "?")
        if self.tqdm is not None:
            if self.bar is None:
                self.bar = self.tqdm(total=total or None, desc="job %s" % self.job_id, unit="partition")
            if total and self.bar.total != total:
                self.bar.total = total
                self.bar.refresh()
            if done > self.bar.n:
                self.bar.update(done - self.bar.n)
            self.bar.set_postfix_str(self.words(status, state), refresh=True)
            return
        line = "job %s %s" % (self.job_id, self.words(status, state))
        if total:
            line += " partitions %d/%d (%d%%)" % (done, total, 100 * done // total)
        if line != self.last:
            # One line rewritten with \r, padded over a longer previous one: a notebook shows \r as a terminal does.
            self.out.write("\r" + line.ljust(self.width))
            self.out.flush()
            self.width = max(self.width, len(line))
            self.last = line

    @staticmethod
    def words(status, state):
        reason = status.get("reason")
        return "%s (%s)" % (state, reason) if reason and state in ("pending", "queued") else state

    def close(self):
        """Ends the bar or the line; a second call does nothing."""
        if not self.enabled:
            return
        self.enabled = False
        if self.bar is not None:
            self.bar.close()
        elif self.last:
            self.out.write("\n")
            self.out.flush()
