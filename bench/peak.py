"""Run one command and report its peak RSS, measured from a small process of its own.

    python bench/peak.py <report.json> <command> [args...]

Why a launcher: Linux carries a process's peak RSS across ``exec`` (the kernel folds the old
address space's high-water mark into the new program's ``maxrss``), and Python's subprocess
starts children with ``vfork``, whose old address space is the *parent's*. So a child of the
benchmark, which holds a seeded day of orders, reports the benchmark's peak as its own: at
1M orders every task measured about 2 GiB, the idle one included. Started from this
launcher instead, the command inherits only the launcher's few MiB.

Only the standard library, nothing imported from the project: the launcher must stay small.
"""

import json
import os
import subprocess
import sys


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python bench/peak.py <report.json> <command> [args...]", file=sys.stderr)
        return 2
    report, command = argv[0], argv[1:]
    child = subprocess.Popen(command)
    _, status, usage = os.wait4(child.pid, 0)
    with open(report, "w") as out:
        json.dump({"peak_rss_kib": usage.ru_maxrss}, out)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
