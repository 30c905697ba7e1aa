"""Shared pieces of the client tests: the package from this clone, scratch stores, real files."""
import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import ckpt  # noqa: E402


class StoreTest(unittest.TestCase):
    """A fresh work tree with an initialised store, removed afterwards."""

    def setUp(self):
        self.dir = os.path.realpath(tempfile.mkdtemp(prefix="ckpt-py-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        ckpt.init(self.dir)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def read(self, p):
        with open(p, "rb") as f:
            return f.read()
