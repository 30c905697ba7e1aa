"""HFCallback and LightningCallback driven by loops that call them exactly as the Hugging Face
Trainer and Lightning do, with argument objects carrying those libraries' documented fields."""
import json
import os
import random
import shutil
import time
import types
import unittest

import torch

from support import StoreTest, ckpt
from ckpt.integrations import HFCallback, LightningCallback


def training_arguments(output_dir):
    # transformers.TrainingArguments fields the Trainer and callbacks read
    return types.SimpleNamespace(output_dir=output_dir, save_total_limit=2, save_steps=10, logging_steps=10, should_save=True, local_rank=-1)


def trainer_state():
    # transformers.TrainerState's documented fields
    return types.SimpleNamespace(
        epoch=0.0, global_step=0, max_steps=50, logging_steps=10, eval_steps=10, save_steps=10, num_train_epochs=1,
        total_flos=0.0, log_history=[], best_metric=None, best_model_checkpoint=None,
        is_local_process_zero=True, is_world_process_zero=True, is_hyper_param_search=False, trial_name=None, trial_params=None,
    )


def trainer_control():
    # transformers.TrainerControl
    return types.SimpleNamespace(should_training_stop=False, should_epoch_stop=False, should_save=False, should_evaluate=False, should_log=False)


def tree(d):
    out = {}
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as h:
                out[os.path.relpath(p, d)] = h.read()
    return out


class HFCallbackTest(StoreTest):
    def hf_save(self, args, state, model, opt, big=0):
        """Trainer._save_checkpoint: the folder, trainer_state.json, then rotation by save_total_limit."""
        d = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        os.makedirs(d)
        torch.save(model.state_dict(), os.path.join(d, "pytorch_model.bin"))
        torch.save(opt.state_dict(), os.path.join(d, "optimizer.pt"))
        if big:
            with open(os.path.join(d, "extra_state.bin"), "wb") as f:
                for _ in range(big // (8 << 20)):
                    f.write(os.urandom(8 << 20))
        with open(os.path.join(d, "trainer_state.json"), "w") as f:
            json.dump({"global_step": state.global_step, "epoch": state.epoch, "log_history": state.log_history, "best_metric": state.best_metric}, f)
        return d

    def rotate(self, args):
        dirs = sorted((p for p in os.listdir(args.output_dir) if p.startswith("checkpoint-")), key=lambda p: int(p.split("-")[1]))
        for old in dirs[: -args.save_total_limit]:
            shutil.rmtree(os.path.join(args.output_dir, old))

    def trainer(self):
        """What a Trainer hands its callbacks, and the model and optimizer it trains."""
        args, state, control = training_arguments(self.path("out")), trainer_state(), trainer_control()
        os.makedirs(args.output_dir)
        model = torch.nn.Linear(8, 4)
        return args, state, control, model, torch.optim.SGD(model.parameters(), lr=0.1), HFCallback(cwd=self.dir)

    def test_commits_every_save_once_with_step_and_metrics(self):
        args, state, control, model, opt, cb = self.trainer()
        kept = {}
        for step in range(1, 51):
            state.global_step = step
            state.epoch = step / 50
            loss = model(torch.randn(16, 8)).pow(2).mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
            if step % 10 == 0:
                state.log_history.append({"loss": round(float(loss), 4), "learning_rate": 0.1, "epoch": state.epoch, "step": step})
                state.log_history.append({"eval_loss": round(float(loss) * 1.1, 4), "epoch": state.epoch, "step": step})
                state.best_metric = min(e["eval_loss"] for e in state.log_history if "eval_loss" in e)
                d = self.hf_save(args, state, model, opt)
                kept[step] = tree(d)
                self.rotate(args)
                # CallbackHandler.call_event passes these keywords
                cb.on_save(args, state, control, model=model, tokenizer=None, optimizer=opt, lr_scheduler=None, train_dataloader=None, eval_dataloader=None)
                cb.on_log(args, state, control, logs={"loss": float(loss)})
        cb.on_train_end(args, state, control, model=model)
        self.assertEqual(cb.errors, [])
        log = list(reversed(ckpt.log(cwd=self.dir)))
        self.assertEqual([c["meta"]["step"] for c in log], [10, 20, 30, 40, 50])
        for c in log:
            step = c["meta"]["step"]
            last = [e for e in state.log_history if e["step"] == step]
            self.assertAlmostEqual(c["meta"]["metrics"]["eval_loss"], last[1]["eval_loss"])
            self.assertAlmostEqual(c["meta"]["metrics"]["loss"], last[0]["loss"])
            out = self.path("co", str(step))
            ckpt.checkout(c["id"], out=out, cwd=self.dir)
            self.assertEqual(tree(out), kept[step])
        self.assertFalse(os.listdir(os.path.join(args.output_dir, ".ckpt-staging")))

    def test_on_save_returns_at_once_while_a_200mb_commit_runs(self):
        args, state, control, model, opt, cb = self.trainer()
        state.global_step = 1
        self.hf_save(args, state, model, opt, big=200 << 20)
        cb.on_save(args, state, control)
        deadline = time.time() + 30
        while cb.queue.current is None and time.time() < deadline:
            time.sleep(0.01)
        running = cb.queue.current
        self.assertIsNotNone(running, "the 200 MB commit never started")
        state.global_step = 2
        self.hf_save(args, state, model, opt)
        t0 = time.perf_counter()
        cb.on_save(args, state, control)
        took = time.perf_counter() - t0
        # the 200 MB commit was running before the call and is still running after it
        self.assertIs(cb.queue.current, running)
        self.assertIsNone(running.poll(), "the 200 MB commit finished too soon to prove anything")
        print(f"\non_save returned in {took * 1000:.1f} ms while a 200 MB commit was in flight")
        self.assertLess(took, 0.05)
        cb.on_train_end(args, state, control)
        self.assertEqual(cb.errors, [])
        self.assertEqual([c["meta"]["step"] for c in reversed(ckpt.log(cwd=self.dir))], [1, 2])


class FakeModelCheckpoint:
    """What lightning.pytorch.callbacks.ModelCheckpoint keeps (its documented attributes) and does
    on a save: build the checkpoint (calling every callback's on_save_checkpoint), write the file,
    keep the top k by the monitored value, tell the loggers."""

    def __init__(self, dirpath, monitor="val_loss", save_top_k=2):
        self.dirpath = dirpath
        self.monitor = monitor
        self.mode = "min"
        self.save_top_k = save_top_k
        self.best_k_models = {}
        self.kth_best_model_path = ""
        self.best_model_path = ""
        self.best_model_score = None
        self.last_model_path = ""
        self.current_score = None
        self._last_checkpoint_saved = ""

    def save(self, trainer, module, val_loss, callbacks, loggers):
        if len(self.best_k_models) >= self.save_top_k and val_loss >= max(self.best_k_models.values()):
            return None
        path = os.path.join(self.dirpath, f"epoch={trainer.current_epoch}-step={trainer.global_step}-val_loss={val_loss:.4f}.ckpt")
        checkpoint = {"epoch": trainer.current_epoch, "global_step": trainer.global_step, "state_dict": module.state_dict()}
        for cb in callbacks:
            cb.on_save_checkpoint(trainer, module, checkpoint)
        torch.save(checkpoint, path)
        self.current_score = torch.tensor(val_loss)
        self.best_k_models[path] = torch.tensor(val_loss)
        if len(self.best_k_models) > self.save_top_k:
            worst = max(self.best_k_models, key=lambda p: float(self.best_k_models[p]))
            del self.best_k_models[worst]
            os.remove(worst)
        self.kth_best_model_path = max(self.best_k_models, key=lambda p: float(self.best_k_models[p]))
        self.best_model_path = min(self.best_k_models, key=lambda p: float(self.best_k_models[p]))
        self.best_model_score = self.best_k_models[self.best_model_path]
        self._last_checkpoint_saved = path
        for lg in loggers:
            lg.after_save_checkpoint(self)
        return path


class LightningCallbackTest(StoreTest):
    def run_fit(self, as_logger):
        dirpath = self.path("lightning_logs", "checkpoints")
        os.makedirs(dirpath)
        mc = FakeModelCheckpoint(dirpath)
        ours = LightningCallback(cwd=self.dir)
        module = torch.nn.Linear(8, 2)
        trainer = types.SimpleNamespace(global_step=0, current_epoch=0, checkpoint_callback=mc, checkpoint_callbacks=[mc], callback_metrics={}, is_global_zero=True)
        callbacks = [] if as_logger else [ours]
        loggers = [ours] if as_logger else []
        rnd = random.Random(5)
        saved = {}
        for epoch in range(8):
            trainer.current_epoch = epoch
            for i in range(5):
                trainer.global_step += 1
                with torch.no_grad():
                    module.weight.add_(0.01)
                for cb in callbacks:
                    cb.on_train_batch_end(trainer, module, {"loss": torch.tensor(1.0)}, None, i)
            val_loss = rnd.uniform(0.1, 1.0)
            trainer.callback_metrics = {"val_loss": torch.tensor(val_loss)}
            # Lightning runs ModelCheckpoint after the other callbacks
            for cb in callbacks:
                cb.on_validation_end(trainer, module)
            p = mc.save(trainer, module, val_loss, callbacks, loggers)
            if p:
                with open(p, "rb") as f:
                    saved[p] = (trainer.global_step, float(f"{val_loss:.4f}"), f.read())
            for cb in callbacks:
                cb.on_train_epoch_end(trainer, module)
        for cb in callbacks:
            cb.on_train_end(trainer, module)
        if as_logger:
            ours.finalize("success")
        self.assertEqual(ours.errors, [])
        log = list(reversed(ckpt.log(cwd=self.dir)))
        self.assertGreaterEqual(len(saved), 4)
        self.assertEqual(len(log), len(saved), "one commit per saved file")
        by_step = {v[0]: (p, v) for p, v in saved.items()}
        for c in log:
            p, (step, val_loss, data) = by_step[c["meta"]["step"]]
            self.assertAlmostEqual(c["meta"]["metrics"]["val_loss"], val_loss, places=4)
            out = self.path("co", os.path.basename(p))
            os.makedirs(os.path.dirname(out), exist_ok=True)
            ckpt.checkout(c["id"], out=out, cwd=self.dir)
            self.assertEqual(self.read(out), data)

    def test_as_callback_commits_each_saved_file_once(self):
        self.run_fit(as_logger=False)

    def test_as_logger_commits_each_saved_file_once(self):
        self.run_fit(as_logger=True)


if __name__ == "__main__":
    unittest.main()
