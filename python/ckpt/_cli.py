"""Running the ckpt command line: finding it, calling it with --json, turning failures into
exceptions that carry ckpt's error code."""
import json
import os
import shutil
import subprocess
import sys


class CkptError(Exception):
    """A ckpt command failed. `code` is ckpt's error code (E_NOT_FOUND, E_FORMAT, ...),
    `exit_code` the process's exit status, `data` the rest of ckpt's JSON error."""

    def __init__(self, code, message, exit_code=None, data=None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.exit_code = exit_code
        self.data = data or {}


def _own_clone_bin():
    # python/ckpt/_cli.py -> python/ -> ../bin/ckpt
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(os.path.dirname(here), "bin", "ckpt")


def find_cli():
    """The ckpt executable: $CKPT_BIN, else `ckpt` on PATH, else this package's own clone."""
    env = os.environ.get("CKPT_BIN")
    if env:
        if not os.path.exists(env):
            raise CkptError("E_NOT_FOUND", f"CKPT_BIN={env} does not exist")
        return env
    on_path = shutil.which("ckpt")
    if on_path:
        return on_path
    clone = _own_clone_bin()
    if os.path.exists(clone):
        return clone
    raise CkptError("E_NOT_FOUND", "cannot find the ckpt command: set CKPT_BIN, put ckpt on PATH, or install from a clone of ckpt")


def _argv(binary):
    # a JavaScript entry point runs under node even where it is not executable
    if binary.endswith(".js") or (not os.access(binary, os.X_OK)):
        return [shutil.which("node") or "node", binary]
    return [binary]


def start(args, cwd=None):
    """Starts `ckpt ARGS --json` without waiting (a Popen); `finish` collects it."""
    return subprocess.Popen(
        _argv(find_cli()) + list(args) + ["--json"],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"},
    )


def finish(proc, args=()):
    out, err = proc.communicate()
    text = out.decode("utf-8", "replace")
    doc = None
    if text.strip():
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
    if proc.returncode != 0:
        if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
            e = doc["error"]
            data = {k: v for k, v in e.items() if k not in ("code", "message")}
            raise CkptError(e.get("code", "E_INTERNAL"), e.get("message", ""), proc.returncode, data)
        raise CkptError("E_INTERNAL", (err.decode("utf-8", "replace").strip() or f"ckpt {' '.join(args)} exited {proc.returncode}"), proc.returncode)
    return doc


def run(args, cwd=None):
    """Runs `ckpt ARGS --json` and returns its JSON document; raises CkptError on failure."""
    return finish(start(args, cwd), args)
