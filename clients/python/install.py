#!/usr/bin/env python3
"""Installs the gatehouse Python package for this user, with nothing but the standard library:

    python3 clients/python/install.py              # into your user site-packages (~/.local/lib/python3.X/site-packages)
    python3 clients/python/install.py --target DIR # into DIR (put it on PYTHONPATH, or use a venv's site-packages)
    python3 clients/python/install.py --uninstall

It copies clients/python/gatehouse/ (plain .py files) and says where; no package registry, no pip.
Run it with the python3 your notebooks use (in a venv: that venv's python, which installs into it).
"""

import argparse
import os
import shutil
import site
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = os.path.join(HERE, "gatehouse")


def default_target():
    # Inside a virtual environment the user site is off: its own site-packages is where imports look.
    if sys.prefix != sys.base_prefix:
        return next(p for p in site.getsitepackages() if p.endswith("site-packages"))
    return site.getusersitepackages()


def main():
    parser = argparse.ArgumentParser(description="Install the gatehouse Python client (standard library only).")
    parser.add_argument("--target", help="the folder to install into (default: your user site-packages)")
    parser.add_argument("--uninstall", action="store_true", help="remove it from there")
    options = parser.parse_args()
    target = os.path.abspath(options.target or default_target())
    dest = os.path.join(target, "gatehouse")
    if options.uninstall:
        if os.path.isdir(dest):
            shutil.rmtree(dest)
            print("removed %s" % dest)
        else:
            print("nothing to remove: %s does not exist" % dest)
        return 0
    os.makedirs(target, exist_ok=True)
    # Copied beside the destination, then renamed over it: an import never sees half a package.
    staging = tempfile.mkdtemp(prefix=".gatehouse-install-", dir=target)
    try:
        files = sorted(f for f in os.listdir(PACKAGE) if f.endswith(".py"))
        for name in files:
            shutil.copy2(os.path.join(PACKAGE, name), os.path.join(staging, name))
        os.chmod(staging, 0o755)
        if os.path.isdir(dest):
            shutil.rmtree(dest)
        os.rename(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    print("installed gatehouse (%d files) into %s" % (len(files), dest))
    on_path = any(os.path.abspath(p) == target for p in sys.path)
    if not on_path:
        if target == site.getusersitepackages() and not site.ENABLE_USER_SITE:
            print("note: this Python ignores the user site-packages (python3 -s or PYTHONNOUSERSITE); use --target and PYTHONPATH")
        elif target == site.getusersitepackages():
            print("note: %s did not exist when this python3 started; python3 processes started from now on see it" % target)
        else:
            print("note: %s is not on this Python's path: add it to PYTHONPATH" % target)
    print("try it: python3 -c 'import gatehouse; print(gatehouse.whoami())'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
