"""ckpt from Python: version control for machine-learning checkpoints.

Every function calls the ckpt command line with --json and returns its JSON document as Python
objects; a failure raises CkptError carrying ckpt's error code. `cwd` names the folder the
repository is found from (default: the current directory).
"""
import json
import os
import tempfile

from ._cli import CkptError, find_cli, run

__all__ = ["CkptError", "find_cli", "init", "commit", "checkout", "log", "show", "diff"]


def _paths(paths):
    if isinstance(paths, (str, os.PathLike)):
        return [os.fspath(paths)]
    return [os.fspath(p) for p in paths]


def init(path="."):
    """Creates a ckpt store for the work tree at `path`."""
    return run(["init"], cwd=os.fspath(path))


def commit(paths, message=None, step=None, metrics=None, params=None, epoch=None, branch=None, root=None, cwd=None):
    """Stores checkpoint files (a folder commits as one tree) as a new commit; returns it.

    `metrics` (numbers) and `params` (str, int, float or bool) keep their types. `root` stores
    paths relative to that folder, so a checkpoint folder checks out as itself."""
    meta = {}
    if step is not None:
        meta["step"] = step
    if epoch is not None:
        meta["epoch"] = epoch
    if metrics:
        meta["metrics"] = {str(k): float(v) for k, v in metrics.items()}
    if params:
        meta["params"] = dict(params)
    args = ["commit", *_paths(paths), "-m", message if message is not None else (f"step {step}" if step is not None else "commit")]
    if branch:
        args += ["--branch", branch]
    if root is not None:
        args += ["--root", os.fspath(root)]
    fd, meta_file = tempfile.mkstemp(prefix="ckpt-meta-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(meta, f)
        return run(args + ["--meta-file", meta_file], cwd=cwd)
    finally:
        os.unlink(meta_file)


def checkout(rev, out=None, tensors=None, paths=None, cwd=None):
    """Writes a commit's files back, byte-exact and verified (to `out` when given); with
    `tensors` (a glob) writes just those tensors as one safetensors file `out`."""
    args = ["checkout", rev, *(_paths(paths) if paths else [])]
    if out is not None:
        args += ["-o", os.fspath(out)]
    if tensors is not None:
        args += ["--tensors", tensors]
    return run(args, cwd=cwd)


def log(rev=None, cwd=None):
    """The history (newest first) as a list of commits."""
    return run(["log"] + ([rev] if rev else []), cwd=cwd)


def show(rev="HEAD", cwd=None):
    """A commit with its files and tensors."""
    return run(["show", rev], cwd=cwd)


def diff(a, b, cwd=None):
    """What changed between two revisions, tensor by tensor."""
    return run(["diff", a, b], cwd=cwd)
