"""A tiny real PyTorch training loop that saves like the tools our users train with.

usage: train_loop.py LAYOUT OUT KEEP [--steps 100] [--every 10] [--limit 2] [--pause S] [--width W] [--out-dim D]

LAYOUT is hf (Hugging Face Trainer folders checkpoint-N/ with model, optimizer, scheduler, RNG
state, training args and trainer_state.json written last, rotated with save_total_limit),
lightning (epoch=E-step=S-val_loss=V.ckpt files, kept top-k by val_loss like ModelCheckpoint) or
plain (torch.save of step_N.pt with step_N.metrics.json beside, last `limit` kept). A copy of every
checkpoint is kept under KEEP ('-': none) before rotation can remove it; the list of checkpoints (name, step,
metrics, time the save finished) is printed as JSON on stdout.
"""
import argparse
import json
import os
import random
import shutil
import sys
import time

import numpy as np
import torch


class TrainingArguments:  # stands in for transformers' pickled training_args.bin
    def __init__(self, output_dir, lr):
        self.output_dir = output_dir
        self.learning_rate = lr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("layout", choices=["hf", "lightning", "plain"])
    ap.add_argument("out")
    ap.add_argument("keep")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--limit", type=int, default=2)
    ap.add_argument("--pause", type=float, default=0.0, help="seconds to sleep after each save")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--out-dim", type=int, default=4)
    a = ap.parse_args()

    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    # linear regression, full batch, small step: convex, so the loss falls at every step
    x = torch.randn(64, a.width)
    y = x @ torch.randn(a.width, a.out_dim) + 0.1 * torch.randn(64, a.out_dim)
    model = torch.nn.Linear(a.width, a.out_dim)
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / (a.steps + 1))
    os.makedirs(a.out, exist_ok=True)
    keep = a.keep != "-"  # '-': keep no copies (the benchmark)
    if keep:
        os.makedirs(a.keep, exist_ok=True)
    saved = []
    log_history = []
    top = []  # lightning: (val_loss, path)
    t0 = time.time()
    for step in range(1, a.steps + 1):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        sched.step()
        if step % a.every:
            continue
        with torch.no_grad():
            val_loss = float(torch.nn.functional.mse_loss(model(x), y))
        train_loss = round(float(loss), 6)
        epoch = step / a.steps
        if a.layout == "hf":
            name = f"checkpoint-{step}"
            d = os.path.join(a.out, name)
            os.makedirs(d, exist_ok=True)
            torch.save(model.state_dict(), os.path.join(d, "pytorch_model.bin"))
            torch.save(opt.state_dict(), os.path.join(d, "optimizer.pt"))
            torch.save(sched.state_dict(), os.path.join(d, "scheduler.pt"))
            torch.save({"python": random.getstate(), "numpy": np.random.get_state(), "cpu": torch.random.get_rng_state()}, os.path.join(d, "rng_state.pth"))
            torch.save(TrainingArguments(a.out, 0.01), os.path.join(d, "training_args.bin"))
            log_history.append({"loss": train_loss, "learning_rate": sched.get_last_lr()[0], "epoch": epoch, "step": step})
            log_history.append({"eval_loss": round(val_loss, 6), "epoch": epoch, "step": step})
            best = min(e["eval_loss"] for e in log_history if "eval_loss" in e)
            state = {"global_step": step, "epoch": epoch, "best_metric": best, "log_history": log_history, "max_steps": a.steps}
            with open(os.path.join(d, "trainer_state.json"), "w") as f:  # written last, as the Trainer does
                json.dump(state, f, indent=2)
            metrics = {"loss": train_loss, "learning_rate": sched.get_last_lr()[0], "eval_loss": round(val_loss, 6), "best_metric": best}
            if keep:
                shutil.copytree(d, os.path.join(a.keep, name))
            dirs = sorted((p for p in os.listdir(a.out) if p.startswith("checkpoint-")), key=lambda p: int(p.split("-")[1]))
            for old in dirs[: -a.limit]:
                shutil.rmtree(os.path.join(a.out, old))
        elif a.layout == "lightning":
            name = f"epoch={int(epoch * 10) - 1}-step={step}-val_loss={val_loss:.4f}.ckpt"
            p = os.path.join(a.out, name)
            if len(top) >= a.limit and val_loss >= max(top)[0]:
                continue  # not in the top k: ModelCheckpoint does not save it
            ckpt = {
                "epoch": int(epoch * 10) - 1,
                "global_step": step,
                "pytorch-lightning_version": "2.1.0",
                "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                "optimizer_states": [opt.state_dict()],
                "lr_schedulers": [sched.state_dict()],
                "loops": {"fit_loop": {"epoch_progress": {"current": {"completed": int(epoch * 10) - 1}}}},
            }
            torch.save(ckpt, p)
            metrics = {"val_loss": float(f"{val_loss:.4f}")}
            if keep:
                shutil.copy2(p, os.path.join(a.keep, name))
            top.append((val_loss, p))
            top.sort()
            for _, worse in top[a.limit:]:
                os.remove(worse)
            del top[a.limit:]
        else:
            name = f"step_{step}.pt"
            p = os.path.join(a.out, name)
            with open(os.path.join(a.out, f"step_{step}.metrics.json"), "w") as f:
                json.dump({"loss": train_loss, "val_loss": round(val_loss, 6)}, f)
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step}, p)
            metrics = {"loss": train_loss, "val_loss": round(val_loss, 6)}
            if keep:
                shutil.copy2(p, os.path.join(a.keep, name))
            files = sorted((q for q in os.listdir(a.out) if q.endswith(".pt")), key=lambda q: int(q[5:-3]))
            for old in files[: -a.limit]:
                os.remove(os.path.join(a.out, old))
        saved.append({"name": name, "step": step, "metrics": metrics, "savedAt": time.time() * 1000})
        if a.pause:
            time.sleep(a.pause)
    json.dump({"saved": saved, "seconds": time.time() - t0}, sys.stdout)


if __name__ == "__main__":
    main()
