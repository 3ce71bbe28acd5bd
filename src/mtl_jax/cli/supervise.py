"""A multi-process job's ``mtl-jax train``, run under a thin supervisor process.

When a peer of a ``jax.distributed`` job dies, JAX's coordination service notices the missing
heartbeats and *aborts* every survivor from C++ (``LOG(FATAL)``: a 30-line stack dump and
SIGABRT), which no Python handler can catch. So the command re-runs itself as a child with
its standard error piped through here: what the child writes passes through unchanged until
the first C++ error line; from then on it is held back. If the child then dies of a lost peer,
the supervisor prints one line naming the fix and exits 2; any other crash gets the held-back
text as it was.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Sequence

SUPERVISED = "MTL_JAX_SUPERVISED"
CPP_ERROR = re.compile(r"^[EF]\d{4} \d\d:\d\d:\d\d")
NOISE = ("[Gloo]",)
LOST_PEER_SIGNS = ("heartbeat timeout", "distributed service detected fatal errors", "tasks are unhealthy")
LOST_PEER_LINE = (
    "mtl-jax: error: another process of this multi-process job stopped (its heartbeats ceased);"
    " restart every process with the same command to resume from the last checkpoint"
)


def is_supervised() -> bool:
    return os.environ.get(SUPERVISED) == "1"


def run_supervised(argv: Sequence[str]) -> int:
    """Run ``mtl-jax argv`` as a child and relay it; the child's exit code, or 2 for a lost peer."""
    child = subprocess.Popen(
        [sys.executable, "-m", "mtl_jax.cli.main", *argv],
        env={**os.environ, SUPERVISED: "1"},
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    held: list[str] = []
    try:
        for line in child.stderr:
            if held or CPP_ERROR.match(line):
                held.append(line)
            elif not line.startswith(NOISE):
                sys.stderr.write(line)
                sys.stderr.flush()
        code = child.wait()
    except KeyboardInterrupt:
        code = child.wait()  # the child got the same SIGINT, saves and exits 130
    text = "".join(held)
    if code not in (0, 1, 2, 130) and any(sign in text for sign in LOST_PEER_SIGNS):
        print(LOST_PEER_LINE, file=sys.stderr)
        return 2
    if code != 0:
        sys.stderr.write(text)
    return code if code >= 0 else 128 - code
