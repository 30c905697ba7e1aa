"""Trainer callbacks that commit each checkpoint as it is saved, without blocking training.

Neither imports transformers or lightning: they work with the objects those libraries pass to
their callbacks (duck typing), so this module loads where the libraries are absent.

A save is snapshotted at once by hard links (so the trainer's own rotation cannot delete the
files under a commit still waiting its turn) and committed on one background thread, one commit
in flight at a time; the end of training waits for the last one.
"""
import os
import queue
import re
import shutil
import sys
import threading
import uuid

from ._cli import CkptError, finish, start

__all__ = ["CommitQueue", "HFCallback", "LightningCallback"]

_PAIR = re.compile(r"([A-Za-z_][A-Za-z0-9_/.]*?)=(-?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)(?=$|[-_ ,]|\.[A-Za-z])")


def _numbers(d, skip=("step", "epoch")):
    out = {}
    for k, v in (d or {}).items():
        if k in skip or isinstance(v, bool):
            continue
        try:
            f = float(v)  # plain numbers and 0-d tensors alike
        except (TypeError, ValueError):
            continue
        if f == f and f not in (float("inf"), float("-inf")):
            out[str(k)] = f
    return out


def _snapshot(src, staging_root):
    """Hard-links `src` (file or folder) under `staging_root`; copies where links cannot be made.
    Returns the snapshot's path, which has the same base name as `src`."""
    dest = os.path.join(staging_root, uuid.uuid4().hex, os.path.basename(os.path.normpath(src)))
    os.makedirs(os.path.dirname(dest))

    def link(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    if os.path.isdir(src):
        shutil.copytree(src, dest, copy_function=link)
    else:
        link(src, dest)
    return dest


class CommitQueue:
    """One background thread committing jobs in order, one `ckpt commit` in flight at a time."""

    def __init__(self, cwd=None, branch=None):
        self.cwd = cwd
        self.branch = branch
        self.results = []
        self.errors = []
        self._jobs = queue.Queue()
        self._thread = None
        self._lock = threading.Lock()
        #: the `ckpt commit` process running now, if any
        self.current = None

    def submit(self, path, step=None, metrics=None, message=None, root=None, cleanup=None):
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="ckpt-commit", daemon=True)
                self._thread.start()
        self._jobs.put((path, step, metrics, message, root, cleanup))

    def _work(self):
        while True:
            path, step, metrics, message, root, cleanup = self._jobs.get()
            try:
                args = ["commit", path, "-m", message or (f"step {step}" if step is not None else os.path.basename(path))]
                if step is not None:
                    args += ["--step", str(step)]
                for k, v in (metrics or {}).items():
                    args += ["--metric", f"{k}={v!r}"]
                if self.branch:
                    args += ["--branch", self.branch]
                if root is not None:
                    args += ["--root", root]
                self.current = start(args, cwd=self.cwd)
                try:
                    self.results.append(finish(self.current, args))
                finally:
                    self.current = None
            except Exception as e:  # a failed commit must not stop training
                self.errors.append(e)
                print(f"ckpt: could not commit {path}: {e}", file=sys.stderr)
            finally:
                if cleanup:
                    shutil.rmtree(cleanup, ignore_errors=True)
                self._jobs.task_done()

    def wait(self):
        """Blocks until every submitted commit has finished."""
        self._jobs.join()


class _Committer:
    def __init__(self, cwd=None, branch=None, snapshot=True):
        self.queue = CommitQueue(cwd=cwd, branch=branch)
        self.snapshot = snapshot
        self._seen = set()

    def _submit(self, path, step, metrics, message):
        st = os.stat(path)
        key = (os.path.abspath(path), st.st_ino, st.st_size, st.st_mtime_ns)
        if key in self._seen:
            return False
        self._seen.add(key)
        folder = os.path.isdir(path)
        target, cleanup = path, None
        if self.snapshot:
            staging = os.path.join(os.path.dirname(os.path.abspath(path)), ".ckpt-staging")
            target = _snapshot(path, staging)
            cleanup = os.path.dirname(target)
        # a folder is stored relative to itself: `ckpt checkout REV -o DIR` gives the folder back
        root = target if folder else os.path.dirname(target)
        self.queue.submit(target, step=step, metrics=metrics, message=message, root=root, cleanup=cleanup)
        return True

    @property
    def errors(self):
        return self.queue.errors

    def wait(self):
        self.queue.wait()


class HFCallback(_Committer):
    """A Hugging Face `TrainerCallback`: on each save, commits `output_dir/checkpoint-{global_step}`
    with the step and the metrics of the latest logged step; waits for the last commit when
    training ends.

        trainer = Trainer(..., callbacks=[ckpt.integrations.HFCallback()])
    """

    def __init__(self, cwd=None, branch=None, snapshot=True):
        super().__init__(cwd=cwd, branch=branch, snapshot=snapshot)

    @staticmethod
    def latest_metrics(log_history):
        entries = [e for e in (log_history or []) if isinstance(e, dict)]
        if not entries:
            return {}
        last_step = entries[-1].get("step")
        metrics = {}
        for e in entries:
            if e.get("step") == last_step:
                metrics.update(_numbers(e))
        return metrics

    def on_save(self, args, state, control, **kwargs):
        if not getattr(state, "is_world_process_zero", True):
            return control
        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if os.path.isdir(folder):
            metrics = self.latest_metrics(getattr(state, "log_history", None))
            best = getattr(state, "best_metric", None)
            if best is not None:
                metrics["best_metric"] = float(best)
            self._submit(folder, state.global_step, metrics, f"checkpoint-{state.global_step}")
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self.wait()
        return control

    def __getattr__(self, name):
        # every other TrainerCallback event: nothing to do
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)


class LightningCallback(_Committer):
    """Commits each file a Lightning `ModelCheckpoint` writes.

    As a callback, `callbacks=[ckpt.integrations.LightningCallback()]`: Lightning calls
    `on_save_checkpoint` while it builds the checkpoint, before the file exists, so the file is
    committed from the next hook (the next batch, validation or epoch end, or the end of training).
    As a logger, `logger=[..., LightningCallback()]`: Lightning calls `after_save_checkpoint(checkpoint_callback)`
    right after the file is written. Either way each file is committed once.
    """

    def __init__(self, cwd=None, branch=None, snapshot=True):
        super().__init__(cwd=cwd, branch=branch, snapshot=snapshot)
        self._pending = False

    # --- what the file's name and the ModelCheckpoint say about it
    @staticmethod
    def _meta(path, checkpoint_callback=None, trainer=None):
        stem = os.path.basename(path)
        stem = stem[: -len(".ckpt")] if stem.endswith(".ckpt") else os.path.splitext(stem)[0]
        step, metrics = None, {}
        for k, v in _PAIR.findall(stem):
            if k in ("step", "global_step"):
                step = int(float(v))
            elif k != "epoch":
                metrics[k] = float(v)
        if step is None and trainer is not None and getattr(trainer, "global_step", None) is not None:
            step = int(trainer.global_step)
        cb = checkpoint_callback
        if cb is not None and getattr(cb, "monitor", None):
            score = (getattr(cb, "best_k_models", None) or {}).get(path, getattr(cb, "current_score", None))
            if score is not None:
                metrics.setdefault(cb.monitor, float(score))
        return step, metrics

    def _paths_of(self, cb):
        seen = []
        for p in [getattr(cb, "_last_checkpoint_saved", None), getattr(cb, "last_model_path", None), getattr(cb, "best_model_path", None)] + list(
            (getattr(cb, "best_k_models", None) or {}).keys()
        ):
            if p and p not in seen and os.path.isfile(p):
                seen.append(p)
        return seen

    def _commit_from(self, cb, trainer=None):
        for p in self._paths_of(cb):
            step, metrics = self._meta(p, cb, trainer)
            self._submit(p, step, metrics, os.path.basename(p))

    @staticmethod
    def _checkpoint_callbacks(trainer):
        cbs = list(getattr(trainer, "checkpoint_callbacks", None) or [])
        one = getattr(trainer, "checkpoint_callback", None)
        if not cbs and one is not None:
            cbs = [one]
        return cbs

    def _sweep(self, trainer):
        if not self._pending:
            return
        self._pending = False
        for cb in self._checkpoint_callbacks(trainer):
            self._commit_from(cb, trainer)

    # --- Logger hook
    def after_save_checkpoint(self, checkpoint_callback):
        self._commit_from(checkpoint_callback)

    # --- Callback hooks
    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        self._pending = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *args):
        self._sweep(trainer)

    def on_validation_end(self, trainer, pl_module):
        self._sweep(trainer)

    def on_train_epoch_end(self, trainer, pl_module):
        self._sweep(trainer)

    def on_train_end(self, trainer, pl_module):
        self._sweep(trainer)
        self.wait()

    def on_fit_end(self, trainer, pl_module):
        self._sweep(trainer)
        self.wait()

    # --- the rest of the Logger interface, for use in `logger=[...]`
    name = "ckpt"
    version = "0"
    save_dir = None

    def log_metrics(self, metrics, step=None):
        pass

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def save(self):
        pass

    def finalize(self, status):
        self.wait()

    def __getattr__(self, name):
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)
