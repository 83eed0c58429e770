"""Runs the unittest cases of a bench test module and prints
"N passed, M failed" (the line scripts/test.sh counts); exits 1 on any
failure or error. Python standard library only."""

import sys
import unittest


def main(module_name):
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[module_name])
    res = unittest.TextTestRunner(verbosity=2).run(suite)
    bad = len(res.failures) + len(res.errors)
    print("%d passed, %d failed" % (res.testsRun - bad, bad))
    sys.exit(1 if bad else 0)
