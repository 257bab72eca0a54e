#!/usr/bin/env python3
"""Runs one test command under a watchdog and tallies Swift Testing's results.

    test_watchdog.py --label NAME [--stall-minutes N] [--total-minutes N] -- COMMAND...

The command's output is passed through line by line. It runs in its own process group. When it
prints nothing for --stall-minutes (default 8), or runs past --total-minutes (default 45), the
watchdog prints the tests that started and did not finish, every process still running under
it with the tail of its output log (children of ManagedProcess write to ODDS_TEST_LOG_DIR),
then stops the whole group and exits 124. Otherwise it exits with the command's status.

With --tally FILE it appends "passed failed status" (tests counted from Swift Testing's lines) to
FILE, so the caller can print one closing line for several runs.
"""
import argparse
import os
import re
import select
import signal
import subprocess
import sys
import time

STARTED = re.compile(r'^\S+ Test (?!run\b)(.+?) started\.$')
# `Test X passed after 1.2 seconds.`, `Test X with 3 test cases failed after 70 seconds with 1 issue.`,
# `Test X passed after 0.3 seconds with 5 known issues.`
FINISHED = re.compile(r'^\S+ Test (?!run\b)(.+?)(?: with \d+ test cases?)? (passed|failed|skipped)(?: after [\d.]+ seconds)?'
                      r'(?: with \d+ (?:known )?issues?)?(?: \(.*\))?\.$')
RUN_TOTAL = re.compile(r'Test run with (\d+) tests?')


def descendants(root):
    """Pids below `root` (any depth), from /proc."""
    children = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as stat:
                fields = stat.read().rsplit(')', 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def describe(pid):
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as cmdline:
            command = cmdline.read().replace(b'\0', b' ').decode(errors='replace').strip()
    except OSError:
        command = '?'
    try:
        log = os.readlink(f'/proc/{pid}/fd/1')
    except OSError:
        log = None
    return command, log


def tail(path, lines=30):
    try:
        with open(path, 'rb') as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            return handle.read().decode(errors='replace').splitlines()[-lines:]
    except OSError as error:
        return [f'(cannot read: {error})']


def report_stall(label, why, running, root):
    out = sys.stdout
    print(f'\nwatchdog[{label}]: {why}', file=out)
    print(f'watchdog[{label}]: tests still running ({len(running)}):', file=out)
    for name, since in sorted(running.items(), key=lambda item: item[1]):
        print(f'  - {name} (for {time.monotonic() - since:.0f} s)', file=out)
    shown = set()
    for pid in descendants(root):
        command, log = describe(pid)
        print(f'watchdog[{label}]: process {pid}: {command[:300]}', file=out)
        if log and os.path.isfile(log) and log not in shown:
            shown.add(log)
            print(f'watchdog[{label}]:   last lines of {log}:', file=out)
            for line in tail(log):
                print(f'    {line}', file=out)
    log_dir = os.environ.get('ODDS_TEST_LOG_DIR')
    if log_dir and os.path.isdir(log_dir):
        recent = sorted((os.path.join(log_dir, name) for name in os.listdir(log_dir)),
                        key=lambda path: os.path.getmtime(path), reverse=True)[:3]
        for path in recent:
            if path in shown:
                continue
            print(f'watchdog[{label}]: recently written child log {path}:', file=out)
            for line in tail(path, 15):
                print(f'    {line}', file=out)
    out.flush()


def stop_group(process):
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--label', default='tests')
    parser.add_argument('--stall-minutes', type=float, default=8)
    parser.add_argument('--total-minutes', type=float, default=45)
    parser.add_argument('--tally')
    parser.add_argument('command', nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ['--'] else args.command
    if not command:
        parser.error('no command')

    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    # Our own SIGTERM/SIGINT (CI cancelling, Ctrl-C) stops the group too.
    def forward(signum, _frame):
        stop_group(process)
        sys.exit(128 + signum)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)

    started_at = last_output = time.monotonic()
    running = {}
    total = failed = 0
    pending = b''
    stream = process.stdout
    while True:
        now = time.monotonic()
        if now - last_output > args.stall_minutes * 60:
            report_stall(args.label, f'no output for {args.stall_minutes:g} minutes; stopping the run', running, process.pid)
            stop_group(process)
            return 124
        if now - started_at > args.total_minutes * 60:
            report_stall(args.label, f'still running after {args.total_minutes:g} minutes; stopping the run', running, process.pid)
            stop_group(process)
            return 124
        ready, _, _ = select.select([stream], [], [], 5)
        if not ready:
            continue
        chunk = os.read(stream.fileno(), 65536)
        if not chunk:
            break
        last_output = time.monotonic()
        pending += chunk
        *lines, pending = pending.split(b'\n')
        for raw in lines:
            line = raw.decode(errors='replace')
            print(line, flush=True)
            if (match := STARTED.search(line)):
                running[match.group(1)] = time.monotonic()
            elif (match := FINISHED.search(line)):
                name = match.group(1)
                running.pop(name, None)
                # The cases of a parameterized test end with it (they print no line of their own).
                for case in [key for key in running if key.startswith('case passing ') and key.endswith(f' to {name}')]:
                    running.pop(case)
                if match.group(2) == 'failed':
                    failed += 1
            elif (match := RUN_TOTAL.search(line)):
                total += int(match.group(1))
    if pending:
        print(pending.decode(errors='replace'), flush=True)
    status = process.wait()
    if status != 0 and running:
        # Ended without its closing lines (a crash, the OOM killer, a signal): say what ran.
        how = f'signal {-status}' if status < 0 else f'status {status}'
        print(f'watchdog[{args.label}]: swift test ended with {how} while these tests were running:', flush=True)
        for name in running:
            print(f'  - {name}', flush=True)
        failed += len(running)
    elif status != 0 and failed == 0:
        failed = 1
    if args.tally:
        with open(args.tally, 'a') as tally:
            tally.write(f'{total - failed} {failed} {status}\n')
    return status


if __name__ == '__main__':
    sys.exit(main())
