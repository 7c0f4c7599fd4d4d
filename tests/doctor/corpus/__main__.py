"""python -m tests.doctor.corpus [--proof | --autowatch] [--jobs N] [TEXT ...]: see the package's docstring."""

import argparse
import time

from tests.doctor.corpus import discover, misses, proof_lines, run, table


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.doctor.corpus")
    parser.add_argument("only", nargs="*", help="run only the programs whose file name contains one of these")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--proof", action="store_true", help="run without the doctor: does each fault show?")
    how.add_argument("--autowatch", action="store_true", help="run each loop unmodified under trainwise.autowatch()")
    parser.add_argument("--jobs", type=int, default=None, help="programs run at once (default: 2 per core)")
    args = parser.parse_args()
    paths = discover(args.only)
    start = time.perf_counter()
    how = "proof" if args.proof else "autowatch" if args.autowatch else "watch"
    outcomes = run(paths, how=how, processes=args.jobs)
    if args.proof:
        print("\n".join(proof_lines(outcomes)))
    else:
        print(table(outcomes))
        print("\n".join(misses(outcomes)))
    print(f"{len(paths)} programs in {time.perf_counter() - start:.0f} s")


main()
