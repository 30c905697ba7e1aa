"""Every function of the client against a real store, and ckpt's errors as exceptions."""
import os
import shutil
import subprocess
import unittest

import torch

from support import StoreTest, ckpt


def save_model(path, seed):
    g = torch.Generator().manual_seed(seed)
    torch.save({"w": torch.randn(64, 32, generator=g), "b": torch.randn(32, generator=g)}, path)


class ClientTest(StoreTest):
    def test_commit_log_show_checkout_diff(self):
        a = self.path("model.pt")
        save_model(a, 1)
        c1 = ckpt.commit(a, message="first", step=100, metrics={"val_loss": 0.5}, params={"lr": 3e-4, "opt": "adamw", "warmup": True}, cwd=self.dir)
        first = self.read(a)
        save_model(a, 2)
        c2 = ckpt.commit([a], message="second", step=200, metrics={"val_loss": 0.25}, cwd=self.dir)
        self.assertNotEqual(c1["id"], c2["id"])

        log = ckpt.log(cwd=self.dir)
        self.assertEqual([c["id"] for c in log], [c2["id"], c1["id"]])
        self.assertEqual(log[1]["meta"]["step"], 100)
        self.assertEqual(log[1]["meta"]["metrics"], {"val_loss": 0.5})
        # params keep their types through the client
        self.assertEqual(log[1]["meta"]["params"], {"lr": 3e-4, "opt": "adamw", "warmup": True})

        shown = ckpt.show(c1["id"], cwd=self.dir)
        self.assertEqual(shown["id"], c1["id"])
        self.assertEqual(sorted(t["name"] for t in shown["files"][0]["tensors"]), ["b", "w"])

        out = self.path("back.pt")
        r = ckpt.checkout(c1["id"], out=out, cwd=self.dir)
        self.assertEqual(r["commit"], c1["id"])
        self.assertEqual(self.read(out), first)

        part = self.path("w.safetensors")
        ckpt.checkout("latest", out=part, tensors="w", cwd=self.dir)
        self.assertGreater(os.path.getsize(part), 64 * 32 * 4)

        d = ckpt.diff(c1["id"], c2["id"], cwd=self.dir)
        self.assertFalse(d["identical"])
        self.assertEqual(d["a"]["id"], c1["id"])
        self.assertEqual(sorted(t["name"] if isinstance(t, dict) else t for t in d["tensors"]["changed"]), ["b", "w"])
        self.assertEqual(ckpt.checkout("best:val_loss", out=self.path("best.pt"), cwd=self.dir)["commit"], c2["id"])

    def test_errors_carry_ckpt_codes(self):
        with self.assertRaises(ckpt.CkptError) as e:
            ckpt.show("no-such-revision", cwd=self.dir)
        self.assertEqual(e.exception.code, "E_NOT_FOUND")
        self.assertEqual(e.exception.exit_code, 4)

        bad = self.path("bad.safetensors")
        with open(bad, "wb") as f:
            f.write(b"\xff" * 16)
        with self.assertRaises(ckpt.CkptError) as e:
            ckpt.commit(bad, message="bad", cwd=self.dir)
        self.assertEqual(e.exception.code, "E_FORMAT")
        self.assertIn("bad.safetensors", str(e.exception))

        outside = self.path("elsewhere")
        os.mkdir(outside)
        shutil.move(self.path(".ckpt"), self.path("elsewhere-store"))
        with self.assertRaises(ckpt.CkptError) as e:
            ckpt.log(cwd=outside)
        self.assertEqual(e.exception.code, "E_NOT_A_REPO")

    def test_finds_the_cli_through_env_path_and_clone(self):
        env = dict(os.environ)
        try:
            os.environ["CKPT_BIN"] = self.path("missing-ckpt")
            with self.assertRaises(ckpt.CkptError) as e:
                ckpt.find_cli()
            self.assertEqual(e.exception.code, "E_NOT_FOUND")
            # a ckpt on PATH wins over the clone
            bindir = self.path("bin")
            os.mkdir(bindir)
            fake = os.path.join(bindir, "ckpt")
            with open(fake, "w") as f:
                f.write("#!/bin/sh\nexit 0\n")
            os.chmod(fake, 0o755)
            del os.environ["CKPT_BIN"]
            os.environ["PATH"] = bindir + os.pathsep + env.get("PATH", "")
            self.assertEqual(ckpt.find_cli(), fake)
            # neither: this clone's bin/ckpt
            os.environ["PATH"] = "/usr/bin:/bin"
            clone = ckpt.find_cli()
            self.assertTrue(clone.endswith(os.path.join("bin", "ckpt")))
            self.assertEqual(os.path.realpath(os.path.dirname(os.path.dirname(clone))), os.path.realpath(os.path.join(os.path.dirname(ckpt.__file__), "..", "..")))
        finally:
            os.environ.clear()
            os.environ.update(env)

    def test_module_loads_without_trainer_libraries(self):
        code = "import sys; sys.modules['transformers'] = None; sys.modules['lightning'] = None; sys.modules['pytorch_lightning'] = None; import ckpt.integrations as i; print(i.HFCallback.__name__, i.LightningCallback.__name__)"
        r = subprocess.run(["/usr/bin/python3", "-c", code], cwd=os.path.dirname(os.path.dirname(ckpt.__file__)), capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(), ["HFCallback", "LightningCallback"])


if __name__ == "__main__":
    unittest.main()
