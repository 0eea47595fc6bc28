#!/usr/bin/env python3
"""soak.py -- the short form of the soak (tests/soak/soak.py) as TAP: 45 s
of mixed load (SOAK_SECONDS to change), then its checks as test points:
RSS flat over the second half, descriptors back near the start once idle,
no 5xx or failed request, exit 0 on SIGTERM, integrity_check ok.

The RSS point is skipped when the daemon's RSS says nothing about corod's
own memory: an AddressSanitizer build (freed memory sits in ASan's
quarantine) or a daemon under COROD_WRAPPER (valgrind).  `make soak` runs
the full 10 minutes.
"""

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from tap import TAP, SkipTest  # noqa: E402
from corod import rss_meaningless  # noqa: E402

spec = importlib.util.spec_from_file_location(
    "soakload", os.path.join(HERE, "..", "soak", "soak.py"))
soakload = importlib.util.module_from_spec(spec)
spec.loader.exec_module(soakload)

SECONDS = soakload.env_num("SOAK_SECONDS", 45)

t = TAP("soak", total_timeout=SECONDS + 300)


@t.test(timeout=SECONDS + 200)
def mixed_load():
    if not os.path.exists("/proc/self/status"):
        raise SkipTest("no /proc to read RSS and descriptors from")
    why = rss_meaningless()
    for ok, desc, diag in soakload.Soak(SECONDS, out=t.diag).run():
        if why and desc.startswith("RSS growth"):
            t.skip(desc, why)
        else:
            t.ok(ok, desc, diag=diag)


t.done()
