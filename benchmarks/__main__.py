"""The one runner of every benchmark suite.

    python -m benchmarks list                        # the recipes: what each suite compares
    python -m benchmarks SUITE [SUITE ...] [--quick] [--data-dir DIR] [-- extra script args]
    python -m benchmarks all --quick                 # every suite, tiny, for CI
    python -m benchmarks report [--check]            # BENCHMARKS.md + README table from the results
    python -m benchmarks show SUITE                  # every table and note of a suite's results

A full run executes the suite's script (in a child process) with its recipe's arguments,
writes the suite's results file (``recipe.results``) and regenerates BENCHMARKS.md and the
README's results table from every results file. ``--quick`` runs the same code on a tiny
budget, writes ``build/benchmarks-quick/SUITE/results.json`` and renders
``build/benchmarks-quick/BENCHMARKS.md`` from those: it proves the code works, its numbers
mean nothing, and it never touches the committed results. A quick suite whose data is
missing is reported as skipped, with the reason. Exit status: 0 when every suite ran (or
was skipped in a quick run), 1 when a suite failed, 2 on bad arguments or a missing input.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if HERE not in sys.path:  # the suite scripts import each other by file name
    sys.path.insert(0, HERE)

from benchmarks import recipes  # noqa: E402
from benchmarks import results as res  # noqa: E402

QUICK_DIR = os.path.join(ROOT, "build", "benchmarks-quick")


def data_dir(arg: str | None) -> str:
    """--data-dir, else $EFFKERAS_DATA_DIR, else ../shared/data beside the repository."""
    return os.path.abspath(arg or os.environ.get("EFFKERAS_DATA_DIR") or os.path.join(ROOT, "..", "shared", "data"))


def results_path(recipe: recipes.Recipe, quick: bool) -> str:
    if quick:
        return os.path.join(QUICK_DIR, recipe.name, "results.json")
    return os.path.join(ROOT, recipe.results)


def command_line(recipe: recipes.Recipe, quick: bool, data: str, extra: list[str]) -> list[str]:
    """The script and its arguments for one run of ``recipe``."""
    fill = {"data": data, "results": results_path(recipe, quick)}
    args = [a.format(**fill) for a in (recipe.quick_args if quick else recipe.args)]
    return [sys.executable, os.path.join(HERE, recipe.script), *args, *extra]


class Unavailable(Exception):
    """A suite cannot run here: missing data or weights. The message says what to provide."""


def check_inputs(recipe: recipes.Recipe, quick: bool, data: str) -> None:
    missing = [d for d in recipe.data if not os.path.isdir(os.path.join(data, d))]
    if missing:
        raise Unavailable(f"no {', '.join(missing)} under {data} (pass --data-dir DIR or set EFFKERAS_DATA_DIR)")
    if not quick and "--weights" in recipe.args:
        weights = os.path.join(ROOT, recipe.args[recipe.args.index("--weights") + 1])
        if not os.path.isdir(weights):
            raise Unavailable(f"no trained weights at {weights}: a full {recipe.name} run needs {recipe.needs}")


def run_suite(recipe: recipes.Recipe, quick: bool, data: str, extra: list[str]) -> tuple[str, float, str]:
    """Run one suite in a child process; returns (status, seconds, detail)."""
    try:
        check_inputs(recipe, quick, data)
    except Unavailable as exc:
        return ("skipped" if quick else "unavailable"), 0.0, str(exc)
    argv = command_line(recipe, quick, data, extra)
    os.makedirs(os.path.dirname(results_path(recipe, quick)), exist_ok=True)
    env = {**os.environ, "EFFKERAS_DATA_DIR": data, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join(p for p in (ROOT, HERE, os.environ.get("PYTHONPATH")) if p)}
    start = time.time()
    proc = subprocess.run(argv, cwd=ROOT, env=env)
    seconds = time.time() - start
    if proc.returncode != 0:
        return f"failed ({proc.returncode})", seconds, " ".join(argv[1:])
    try:
        res.load(results_path(recipe, quick))
    except res.ResultsError as exc:
        return "failed (results)", seconds, str(exc)
    return "ok", seconds, os.path.relpath(results_path(recipe, quick), ROOT)


def entries(quick: bool = False) -> list[tuple[dict, recipes.Recipe, str]]:
    """(results doc, recipe, path) of every suite that has a results file."""
    out = []
    for recipe in recipes.RECIPES.values():
        path = results_path(recipe, quick)
        if os.path.isfile(path):
            out.append((res.load(path), recipe, os.path.relpath(path, QUICK_DIR if quick else ROOT)))
    return out


def report(check: bool = False, quick: bool = False) -> int:
    """Write BENCHMARKS.md (and the README's results table) from the results files."""
    found = entries(quick)
    if not found:
        print("benchmarks: error: no results files yet: run a suite first", file=sys.stderr)
        return 2
    bench_path = os.path.join(QUICK_DIR if quick else ROOT, "BENCHMARKS.md")
    text = res.render_benchmarks(found)
    outputs = [(bench_path, text)]
    if not quick:
        readme_path = os.path.join(ROOT, "README.md")
        with open(readme_path, encoding="utf-8") as f:
            readme = f.read()
        outputs.append((readme_path, res.replace_readme_table(readme, res.readme_table(found))))
    stale = []
    for path, new in outputs:
        old = open(path, encoding="utf-8").read() if os.path.isfile(path) else ""
        if old != new:
            stale.append(os.path.relpath(path, ROOT))
            if not check:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(new)
    if check and stale:
        print(f"benchmarks: {', '.join(stale)} differ from the results files: run python -m benchmarks report",
              file=sys.stderr)
        return 1
    print(f"{'up to date' if not stale else 'wrote'}: {', '.join(stale) or os.path.relpath(bench_path, ROOT)} "
          f"({len(found)} suites)")
    return 0


def list_recipes() -> int:
    for r in recipes.RECIPES.values():
        print(f"{r.name}: {r.title}")
        print(f"  models:   {'; '.join(r.models)}")
        print(f"  steps:    {'; '.join(r.steps)}")
        print(f"  measures: {r.measures}")
        print(f"  seeds:    {r.seeds}")
        print(f"  data:     {', '.join(r.data) or 'none'}{'; needs ' + r.needs if r.needs else ''}"
              f"{'; tfmot beside (the bench extra)' if r.tfmot else ''}")
        print(f"  results:  {r.results}\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        extra, argv = argv[argv.index("--") + 1 :], argv[: argv.index("--")]
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("what", nargs="+", help=f"list, report, show SUITE, or suites: {', '.join(recipes.RECIPES)}, all")
    parser.add_argument("--quick", action="store_true", help="tiny runs that prove the code works (build/ only)")
    parser.add_argument("--data-dir", help="dataset folder (default $EFFKERAS_DATA_DIR or ../shared/data)")
    parser.add_argument("--check", action="store_true", help="with report: exit 1 if a generated file is stale")
    args = parser.parse_args(argv)
    head = args.what[0]
    if head == "list":
        return list_recipes()
    if head == "report":
        return report(check=args.check, quick=args.quick)
    if head == "show":
        if len(args.what) != 2 or args.what[1] not in recipes.RECIPES:
            parser.error(f"show takes one suite name of {', '.join(recipes.RECIPES)}. Received: {args.what[1:]}")
        try:
            print(res.full_markdown(res.load(results_path(recipes.RECIPES[args.what[1]], args.quick))))
        except res.ResultsError as exc:
            print(f"benchmarks: error: {exc}", file=sys.stderr)
            return 2
        return 0
    names = list(recipes.RECIPES) if args.what == ["all"] else args.what
    unknown = [n for n in names if n not in recipes.RECIPES]
    if unknown:
        parser.error(f"unknown suite(s) {unknown}; choose from {', '.join(recipes.RECIPES)}, all, list, report, show")
    data = data_dir(args.data_dir)
    ran = [(n, *run_suite(recipes.RECIPES[n], args.quick, data, extra)) for n in names]
    print("\nsuite     status        seconds  results / detail")
    for name, status, seconds, detail in ran:
        print(f"{name:9s} {status:13s} {seconds:7.1f}  {detail}")
    if any(status == "ok" for _, status, _, _ in ran):
        report(quick=args.quick)
    if any(status == "unavailable" for _, status, _, _ in ran):
        return 2
    return 0 if all(status in ("ok", "skipped") for _, status, _, _ in ran) else 1


if __name__ == "__main__":
    raise SystemExit(main())
