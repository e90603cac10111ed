"""cProfile of one `mailbot run --once` over seed-style mails on the real parts.

    .venv/bin/python -m bench.profile 2000      # writes bench/results/profile-2000.pstats

Prints the floor beside the run (same Dovecot, same mails, one after the other) and the top of
the profile by own time and by cumulative time. cProfile sees the main process only: the
read-ahead worker and the sender that goes along are processes of their own, and what the main
process waits for them shows as `select.poll` (the worker's results) and `popen_fork.poll`
(the sender's last sends). The two cores may be shared with other work:
compare the ratios inside one run, not the absolute seconds across runs.
"""

from __future__ import annotations

import pstats
import subprocess
import sys
import time

from bench.run import ENV, RESULTS, append_all, floor, mails, servers


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    out = RESULTS / f"profile-{count}.pstats"
    raws = list(mails(count))
    with servers() as desk:
        append_all(desk.dovecot, raws)
        floor_s = floor(desk.dovecot)
        started = time.perf_counter()
        subprocess.run(
            [
                *(sys.executable, "-m", "cProfile", "-o", str(out), "-m", "mailbot"),
                *("--config", str(desk.config), "--now", "2026-11-25T10:00:00+09:00"),
                *("run", "--once"),
            ],
            stdout=subprocess.DEVNULL,
            check=True,
            env=ENV,
        )
        seconds = time.perf_counter() - started
    print(f"{count} mails: floor {floor_s:.2f} s, mailbot (profiled) {seconds:.2f} s")
    stats = pstats.Stats(str(out))
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
