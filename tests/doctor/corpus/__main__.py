"""python -m tests.doctor.corpus [--proof] [--jobs N] [TEXT ...]: see the package's docstring."""

import argparse
import time

from tests.doctor.corpus import discover, misses, proof_lines, run, table


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.doctor.corpus")
    parser.add_argument("only", nargs="*", help="run only the programs whose file name contains one of these")
    parser.add_argument("--proof", action="store_true", help="run without the doctor: does each fault show?")
    parser.add_argument("--jobs", type=int, default=None, help="programs run at once (default: 2 per core)")
    args = parser.parse_args()
    paths = discover(args.only)
    start = time.perf_counter()
    outcomes = run(paths, proof=args.proof, processes=args.jobs)
    if args.proof:
        print("\n".join(proof_lines(outcomes)))
    else:
        print(table(outcomes))
        print("\n".join(misses(outcomes)))
    print(f"{len(paths)} programs in {time.perf_counter() - start:.0f} s")


main()
