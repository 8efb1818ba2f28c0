"""Sampling the WSGI server's workers (granian or gunicorn) with py-spy while a benchmark runs, and a summary of where
their time went.

Each worker gets its own `py-spy record` (raw collapsed stacks, one line per distinct stack with its sample count,
frames aggregated by function). `--gil` keeps only the samples of a thread holding the GIL, so the counts stand for
the workers' Python CPU rather than for threads waiting on the database or the socket. The summary ranks functions
by self time (the frame on top of the stack) and by total time (anywhere on it, counted once per sample), and groups
self time by where the code lives (Flask, SQLAlchemy, psycopg, pydantic, the app, ...).

Sampling pauses a worker for each sample, so a profiled run is slower than an unprofiled one: take the figures from
a run without --profile and the proportions from a run with it.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

PY_SPY = Path(sys.executable).parent / "py-spy"
RATE = 200  # samples a second per worker
# A frame as py-spy's raw format writes it: `function (path/file.py)` (with --nolineno).
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<path>[^()]*)\)$")
# Where a frame's code lives, by its path: the first match names the group.
GROUPS = (
    ("metropoints", "app: metropoints"),
    ("sqlalchemy", "SQLAlchemy"),
    ("flask_sqlalchemy", "SQLAlchemy"),
    ("psycopg", "psycopg"),
    ("pydantic", "pydantic"),
    ("flask_babel", "Flask-Babel"),
    ("babel/", "Flask-Babel"),
    ("flask_login", "Flask-Login"),
    ("flask_limiter", "Flask-Limiter"),
    ("limits/", "Flask-Limiter"),
    ("flask_talisman", "Flask-Talisman"),
    ("flask_wtf", "Flask-WTF"),
    ("werkzeug", "Werkzeug"),
    ("flask/", "Flask"),
    ("jinja2", "Jinja"),
    ("itsdangerous", "Flask session (itsdangerous)"),
    ("gunicorn", "gunicorn"),
    ("granian", "granian"),
    ("redis", "redis-py"),
    ("json", "json"),
    ("hashlib", "hashing"),
    ("hmac", "hashing"),
    ("logging", "logging"),
    ("threading", "threads"),
    ("socket", "sockets"),
    ("selectors", "sockets"),
)


@contextmanager
def sample(pids: list[int], keep: Path | None = None):
    """Record the workers `pids` while the block runs; yields a dict that gets the summary's lines on exit. `keep`:
    a file for the merged raw stacks, to summarise again later (`python bench/spy.py FILE`)."""
    outputs = [Path(tempfile.mkstemp(prefix=f"pyspy_{pid}_", suffix=".txt")[1]) for pid in pids]
    recorders = [subprocess.Popen([str(PY_SPY), "record", "--pid", str(pid), "--format", "raw", "--output",
                                   str(out), "--rate", str(RATE), "--gil", "--nolineno"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for pid, out in zip(pids, outputs, strict=True)]
    result: dict = {}
    try:
        yield result
    finally:
        for recorder in recorders:
            recorder.send_signal(signal.SIGINT)
        for recorder in recorders:
            try:
                recorder.wait(timeout=30)
            except subprocess.TimeoutExpired:
                recorder.kill()
        stacks: Counter[tuple[str, ...]] = Counter()
        for out in outputs:
            stacks.update(read_raw(out.read_text() if out.exists() else ""))
            out.unlink(missing_ok=True)
        if keep is not None:
            keep.write_text("".join(f"{';'.join(stack)} {count}\n" for stack, count in stacks.items()))
        result["lines"] = summary(stacks)


def read_raw(text: str) -> Counter[tuple[str, ...]]:
    """py-spy's raw output (`frame;frame;... count` a line, outermost first) as sample counts by stack."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def group_of(frame: str) -> str:
    """Where a frame's code lives (GROUPS), or the file it is in."""
    match = _FRAME.match(frame)
    path = match.group("path") if match else frame
    for needle, name in GROUPS:
        if needle in path:
            return name
    return path or "?"


# Frames that stand for "a request is being handled" rather than for a piece of work: left out of the totals' ranking.
_WRAPPERS = re.compile(r"^(Thread\.|_worker |_WorkItem\.run|ThreadWorker\.handle |Flask\.__call__|Flask\.wsgi_app)")


def summary(stacks: Counter[tuple[str, ...]], top: int = 25) -> list[str]:
    """Lines: samples in all, self time by group, and the top functions by self and by total time (the thread and
    request wrappers that every sample passes through left out)."""
    total = sum(stacks.values())
    if not total:
        return ["profile: no samples (py-spy could not attach, or the workers were idle)"]
    self_time: Counter[str] = Counter()
    total_time: Counter[str] = Counter()
    groups: Counter[str] = Counter()
    for stack, count in stacks.items():
        frames = [frame for frame in stack if _FRAME.match(frame)]  # leaves out the thread's and process's names
        if not frames:
            continue
        self_time[frames[-1]] += count
        groups[group_of(frames[-1])] += count
        for frame in set(frames):
            total_time[frame] += count
    lines = [f"profile: {total:,} samples holding the GIL ({RATE}/s per worker)", "self time by where the code lives:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in groups.most_common(14)]
    lines.append(f"top {top} functions by self time:")
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in self_time.most_common(top)]
    lines.append(f"top {top} functions by total time (their callees included):")
    ranked = [(frame, n) for frame, n in total_time.most_common() if not _WRAPPERS.match(frame)]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in ranked[:top]]
    return lines


if __name__ == "__main__":
    print("\n".join(summary(read_raw(Path(sys.argv[1]).read_text()), top=int(sys.argv[2]) if len(sys.argv) > 2
                                                                             else 40)))
