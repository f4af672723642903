"""Gatehouse from Python: the gateway's datasets and jobs for notebooks, standard library only.

    import gatehouse
    gatehouse.login()                    # once; the CLI's `gatehouse login --sso` does the same
    gatehouse.datasets()
    rows = gatehouse.read("words")       # a DataFrame when pandas is installed
    job = gatehouse.submit(clean, input="words", output="scratch-alice/words_clean", cores=2)
    job.wait(); print(job.logs())

The module-level functions use a default Client(): the gateway and CA the CLI would use
(GATEHOUSE_URL, GATEHOUSE_CA, GATEHOUSE_CONTEXT, the current context, the local gatehouse.yaml, the CA
`gatehouse cert` saved) and the login the CLI saved for it. configure(url=, ca=, context=) fixes them for the session; Client() makes others.
"""

from .client import Client
from .errors import (Conflict, GatehouseError, InvalidRequest, NotFound, QuotaExceeded, Refused, Unauthenticated,
                     Unreachable)
from .jobs import Job

__version__ = "0.1.0"

__all__ = [
    "Client", "Job", "GatehouseError", "InvalidRequest", "Unauthenticated", "Refused", "QuotaExceeded", "NotFound",
    "Conflict", "Unreachable", "configure", "default_client", "login", "logout", "whoami", "datasets", "dataset",
    "read", "iter_rows", "submit", "job", "jobs", "quota",
]

_configured = None


def configure(url=None, ca=None, context=None):
    """Fixes the gateway the module-level functions use; configure() with nothing goes back to finding it."""
    global _configured
    _configured = Client(url=url, ca=ca, context=context) if (url or ca or context) else None
    return _configured


def default_client():
    """The configured client, else one found now (so GATEHOUSE_URL set after the import still counts)."""
    return _configured if _configured is not None else Client()


def login(browser=True, out=None):
    return default_client().login(browser=browser, out=out)


def logout():
    return default_client().logout()


def whoami():
    return default_client().whoami()


def datasets():
    return default_client().datasets()


def dataset(name):
    return default_client().dataset(name)


def read(name, partition=None, as_frame=None):
    return default_client().read(name, partition=partition, as_frame=as_frame)


def iter_rows(name, partition=None):
    return default_client().iter_rows(name, partition=partition)


def submit(fn_or_file, input, output, **options):
    return default_client().submit(fn_or_file, input=input, output=output, **options)


def job(job_id):
    return default_client().job(job_id)


def jobs(state=None, limit=None, all=False):
    return default_client().jobs(state=state, limit=limit, all=all)


def quota():
    return default_client().quota()


for _f in (login, logout, whoami, datasets, dataset, read, iter_rows, submit, job, jobs, quota):
    _f.__doc__ = getattr(Client, _f.__name__).__doc__
del _f
