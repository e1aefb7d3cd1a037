"""``python -m study``: run a study, list its runs, write its report.

    python -m study run quick            # make study-quick: every run not yet done, then the report
    python -m study run full             # make study
    python -m study run full --backend celery --team T --owner U
                                         # the same runs on the dashboard's Celery workers (study/lab.py)
    python -m study list full            # dry run: every run, its state and budget
    python -m study report var/study/full

Exit status of ``run``: 0 when every run is done (and the report is written), 1 when a run
failed, 130 when stopped by Ctrl-C or ``--timeout`` (run it again to resume).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from study.rundir import run_state
from study.runner import StudyError, frames_done, prepare, run_study
from study.spec import SPECS

DOCS = Path("docs/results")
README = Path("README.md")


def _out(args: argparse.Namespace) -> Path:
    return args.out or Path("var/study") / args.spec


def _report(out: Path, args: argparse.Namespace) -> None:
    from study.report import section, write_report

    readme = None if args.no_readme else args.readme
    report = write_report(out, docs=args.docs, readme=readme)
    print(section(report, args.readme, args.docs))


def _cmd_run(args: argparse.Namespace) -> int:
    spec = SPECS[args.spec]
    out = _out(args)
    command = shlex.join([os.path.relpath(sys.executable), "-m", "study", *sys.argv[1:]])
    if args.backend == "celery":
        from study.lab import run_lab  # sets Django up: only for this backend

        outcome = run_lab(spec, out, team=args.team, owner=args.owner, command=command, timeout_s=args.timeout)
    else:
        outcome = run_study(spec, out, workers=args.workers, command=command)
    print(f"{len(outcome.done)} runs done, {len(outcome.stopped)} stopped, {len(outcome.failed)} failed "
          f"in {outcome.wall_s:.0f} s ({out})", file=sys.stderr)
    for name, error in outcome.failed.items():
        print(f"failed: {name}: {error}", file=sys.stderr)
    if outcome.failed:
        return 1
    if outcome.stopped:
        return 130
    if not args.no_report:
        _report(out, args)
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    spec = SPECS[args.spec]
    out = _out(args)
    prepare(spec, out)
    total = trained = 0
    for key in spec.runs():
        done = frames_done(key, out)
        total += key.timesteps
        trained += done
        print(f"{key.name}\t{run_state(key.directory(out)).value}\t{done:,}/{key.timesteps:,} frames")
    print(f"{len(spec.runs())} runs, {trained:,} of {total:,} frames trained ({out})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m study", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    commands = (("run", "run every run not yet done, then write the report"), ("list", "list the runs and their state"))
    for name, help_text in commands:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("spec", choices=sorted(SPECS), help="the study (study/spec.py)")
        p.add_argument("--out", type=Path, help="output directory (default var/study/SPEC)")
        if name == "run":
            p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="local backend: runs at a time (default: the CPU count)")
            p.add_argument("--no-report", action="store_true", help="only run")
            p.add_argument("--backend", choices=("local", "celery"), default="local",
                           help="local: a process pool here (default); celery: the dashboard's Celery workers, "
                           "as experiments of --team owned by --owner (study/lab.py)")
            p.add_argument("--team", help="celery backend: the team the experiments belong to")
            p.add_argument("--owner", help="celery backend: the username owning them, a member of the team")
            p.add_argument("--timeout", type=float, metavar="S", help="celery backend: stop waiting after S seconds")
    r = sub.add_parser("report", help="write study.json, the figures and the README's Results section")
    r.add_argument("out", type=Path, help="the study's output directory")
    for p in (sub.choices["run"], r):
        p.add_argument("--docs", type=Path, default=DOCS, help=f"where study.json and the figures go (default {DOCS})")
        p.add_argument("--readme", type=Path, default=README, help="the README whose Results section is regenerated")
        p.add_argument("--no-readme", action="store_true", help="leave the README alone")
    args = parser.parse_args(argv)
    if args.command == "run" and args.backend == "celery" and not (args.team and args.owner):
        parser.error("--backend celery needs --team and --owner")
    if args.command == "run" and args.backend == "local" and (args.team or args.owner or args.timeout):
        parser.error("--team, --owner and --timeout are for --backend celery")
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "list":
            return _cmd_list(args)
        _report(args.out, args)
        return 0
    except (StudyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
