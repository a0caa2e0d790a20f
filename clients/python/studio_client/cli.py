"""`studio`: the daily work with a studio from a shell. Exit codes: 0 done, 1 the studio refused (its message
on stderr) or a job failed, 2 a usage error."""
from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from pathlib import Path
from typing import Any, Callable

from studio_client.client import Studio, StudioAPIError, images_in
from studio_client.models import BatchRun, Job, Release
from studio_client.progress import ProgressBar

OK, API_ERROR, USAGE = 0, 1, 2


def option(text: str) -> tuple[str, Any]:
    """`key=value` as a job option; the value read as JSON when it is JSON (3, 0.01, true, null), else text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio", description="Work with an image-classification studio: "
                                     "upload datasets, train, release and predict.",
                                     epilog="STUDIO_URL and STUDIO_TOKEN give the address and the API token "
                                            "when --url and --token are not given.")
    parser.add_argument("--url", help="the studio's address (default: $STUDIO_URL, else http://127.0.0.1:5000)")
    parser.add_argument("--token", help="an API token from the Account page (default: $STUDIO_TOKEN)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each answer (default 60)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    upload = commands.add_parser("upload", help="upload a dataset folder or .zip and wait for its check",
                                 description="Upload a folder (one subfolder per class, optionally under "
                                             "train/ val/ test/) or a .zip; prints the dataset id and its classes.")
    upload.add_argument("path", type=Path, help="a folder or a .zip file")
    upload.add_argument("--name", help="the dataset's name (default: the folder's or file's name)")
    upload.add_argument("--no-wait", action="store_true", help="print the id as soon as the upload is stored")

    train = commands.add_parser("train", help="start a training job", description="Start a training job on a "
                                "ready dataset. Options not given are the studio's defaults.")
    train.add_argument("dataset_id", type=positive_int, metavar="DATASET_ID")
    train.add_argument("--revision", type=positive_int, help="the dataset revision to train on (default: its newest; "
                                                             "see `studio revisions DATASET_ID`)")
    train.add_argument("--epochs", type=positive_int)
    train.add_argument("--backbone", help="e.g. resnet18, resnet50, mobilenet_v3_small (GET /api/backbones)")
    train.add_argument("--option", "-o", type=option, action="append", default=[], metavar="KEY=VALUE",
                       help="any job option of POST /api/jobs, e.g. -o image_size=64 -o pretrained=false")
    train.add_argument("--follow", "-f", action="store_true", help="print the epochs live until the job ends")

    revisions = commands.add_parser("revisions", help="list a dataset's revisions",
                                    description="List a dataset's revisions, newest first: what each changed and "
                                                "its images per split.")
    revisions.add_argument("dataset_id", type=positive_int, metavar="DATASET_ID")

    jobs = commands.add_parser("jobs", help="list jobs, or show one", description="Without ID, list the jobs; "
                               "with ID, show that job and its epochs.")
    jobs.add_argument("job_id", type=positive_int, nargs="?", metavar="ID")
    jobs.add_argument("--follow", "-f", action="store_true", help="with ID: follow the job live until it ends")

    for name, text in (("cancel", "cancel a queued or running job"), ("resume", "resume a failed or cancelled job")):
        command = commands.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        command.add_argument("job_id", type=positive_int, metavar="ID")

    commands.add_parser("versions", help="list model versions and the release",
                        description="List the model versions, which one serves as production and which as candidate.")
    promote = commands.add_parser("promote", help="put a version into production",
                                  description="Put a model version into production (any experiment stops).")
    promote.add_argument("version", type=positive_int, metavar="VERSION")
    commands.add_parser("rollback", help="go back to the previous production version",
                        description="Go back to the version that served before the current production version.")

    batch = commands.add_parser("batch", help="classify a folder, a .zip or a dataset revision in the background",
                                description="Start a batch prediction of a folder or a .zip (or of a dataset revision "
                                            "with --dataset), wait for it with its progress, and download its results "
                                            "(CSV, or JSON Lines with --jsonl) to --output.")
    batch.add_argument("path", type=Path, nargs="?", metavar="PATH", help="a folder or a .zip of images")
    batch.add_argument("--dataset", type=positive_int, metavar="DATASET_ID", help="classify a dataset revision instead")
    batch.add_argument("--revision", type=positive_int, help="the dataset's revision (default: its newest)")
    batch.add_argument("--version", type=positive_int, help="a model version (default: the production one)")
    batch.add_argument("--top-k", type=positive_int, help="how many classes each row lists")
    batch.add_argument("--output", "-O", type=Path, default=Path("."), help="file or folder for the results "
                                                                            "(default: the current folder)")
    batch.add_argument("--jsonl", action="store_true", help="download JSON Lines instead of CSV")
    batch.add_argument("--no-wait", action="store_true", help="print the run's id and return at once")

    predict = commands.add_parser("predict", help="classify image files or every image of folders",
                                  description="Classify each image file given, and every image "
                                              "(.jpg .jpeg .png .gif .bmp .webp) under each folder given.")
    predict.add_argument("paths", type=Path, nargs="+", metavar="PATH")
    predict.add_argument("--json", action="store_true", help="print one JSON object per image")
    predict.add_argument("--version", type=positive_int, help="a model version (default: the released one)")
    predict.add_argument("--top-k", type=positive_int, help="how many classes each answer lists")

    audit = commands.add_parser("audit", help="list the audit log (admins)",
                                description="List the audit log, newest first: who did what, when and from which "
                                            "address (sign-ins, user, token and release changes, deletions).")
    for name, text in (("actor", "only entries by this actor"), ("subject-type", "e.g. user, dataset, model, release"),
                       ("subject-id", "only entries about this subject id"), ("address", "only this client address"),
                       ("since", "from this moment on (ISO 8601, UTC without a zone)"),
                       ("until", "before this moment (ISO 8601, UTC without a zone)")):
        audit.add_argument(f"--{name}", help=text)
    audit.add_argument("--action", help="an action (user.delete), or a prefix ending with a dot (user.)")
    audit.add_argument("--limit", type=positive_int, default=50, help="at most this many entries (default 50)")
    audit.add_argument("--json", action="store_true", help="print one JSON object per entry")
    return parser


def _width(text: str) -> int:
    """Columns the text takes in a terminal: wide (CJK) characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _print_table(rows: list[list[Any]], header: list[str]) -> None:
    cells = [header] + [["-" if value is None else str(value) for value in row] for row in rows]
    widths = [max(_width(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(value + " " * (width - _width(value)) for value, width in zip(row, widths)).rstrip())


def _percent(value: float | None) -> str | None:
    return None if value is None else f"{value:.1%}"


def cmd_upload(studio: Studio, args: argparse.Namespace) -> int:
    bar = ProgressBar("upload", in_bytes=True)
    dataset = studio.upload_dataset(args.path, args.name, progress=bar.update)
    bar.done()
    print(f"dataset {dataset.id} ({dataset.name}): stored, checking", file=sys.stderr)
    if not args.no_wait:
        dataset = studio.wait_for_dataset(dataset.id)
    print(f"dataset {dataset.id} {dataset.status} ({dataset.num_images or 0} images)")
    for rejected in dataset.rejected:
        print(f"rejected {rejected.get('path')}: {rejected.get('reason')}", file=sys.stderr)
    for warning in dataset.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if dataset.status == "failed":
        print(f"error: {dataset.error}", file=sys.stderr)
        return API_ERROR
    if dataset.classes:
        _print_table([[c.name, c.train, c.val, c.test] for c in dataset.classes], ["class", "train", "val", "test"])
    return OK


def cmd_train(studio: Studio, args: argparse.Namespace) -> int:
    options = dict(args.option)
    if args.epochs is not None:
        options["epochs"] = args.epochs
    if args.backbone is not None:
        options["backbone"] = args.backbone
    job = studio.create_job(args.dataset_id, args.revision, **options)
    print(f"job {job.id} {job.status}")
    return follow(studio, job.id) if args.follow else OK


def cmd_revisions(studio: Studio, args: argparse.Namespace) -> int:
    rows = []
    for revision in studio.revisions(args.dataset_id):
        splits = [sum(getattr(c, split) for c in revision.classes) for split in ("train", "val", "test")]
        rows.append([revision.number, revision.parent, revision.num_images, *splits, len(revision.classes),
                     revision.created_by, revision.created_at, revision.note])
    _print_table(rows, ["revision", "from", "images", "train", "val", "test", "classes", "by", "created", "note"])
    return OK


def _epoch_line(data: dict, total: int | None) -> str:
    figures = [f"{name} {data[name]:.4f}" for name in ("train_loss", "train_acc", "val_loss", "val_acc")
               if data.get(name) is not None]
    seconds = f"  {data['seconds']:.1f} s" if data.get("seconds") is not None else ""
    return f"epoch {data['epoch']}/{total or '?'}  " + "  ".join(figures) + seconds


def follow(studio: Studio, job_id: int) -> int:
    """Print the job's epochs as they end and its outcome; 1 when it did not succeed."""
    bar, total, printed = ProgressBar("training"), None, 0
    for event in studio.follow_job(job_id):
        epochs = [event.data] if event.type == "epoch" else []
        if event.type == "snapshot":
            total, epochs = event.data.get("total_epochs"), event.data.get("epochs") or []
        for epoch in epochs:
            if epoch["epoch"] > printed:  # a snapshot repeats the epochs a stream opened earlier gave
                bar.clear()
                print(_epoch_line(epoch, total), flush=True)
                printed = epoch["epoch"]
        if event.type == "progress" and event.data.get("steps"):
            bar.update(event.data["step"], event.data["steps"], f"epoch {event.data.get('epoch', '?')}")
    bar.clear()
    return _outcome(studio.job(job_id))


def _outcome(job: Job) -> int:
    if job.status == "succeeded":
        accuracy = f", best val_acc {job.best_val_acc:.4f}" if job.best_val_acc is not None else ""
        print(f"job {job.id} succeeded: model version {job.model_version}{accuracy}")
        return OK
    print(f"job {job.id} {job.status}" + (f": {job.error}" if job.error else ""), file=sys.stderr)
    return API_ERROR


def cmd_jobs(studio: Studio, args: argparse.Namespace) -> int:
    if args.job_id is None:
        _print_table([[j.id, j.status, j.dataset_id, j.backbone, f"{j.epoch or 0}/{j.total_epochs or '?'}",
                       _percent(j.best_val_acc), j.model_version] for j in studio.jobs()],
                     ["id", "status", "dataset", "backbone", "epoch", "best_val_acc", "version"])
        return OK
    if args.follow:
        return follow(studio, args.job_id)
    job = studio.job(args.job_id)
    print(f"job {job.id} {job.status}  dataset {job.dataset_id}  backbone {job.backbone}  "
          f"progress {job.progress:.0%}  version {job.model_version or '-'}")
    for epoch in job.raw.get("epochs") or []:
        print(_epoch_line(epoch, job.total_epochs))
    if job.error:
        print(f"error: {job.error}")
    return OK


def cmd_cancel(studio: Studio, args: argparse.Namespace) -> int:
    answer = studio.cancel_job(args.job_id)
    print(f"job {answer['id']} {answer['status']}" + (" (cancel requested)" if answer.get("cancel_requested") else ""))
    return OK


def cmd_resume(studio: Studio, args: argparse.Namespace) -> int:
    job = studio.resume_job(args.job_id)
    print(f"job {job.id} {job.status}")
    return OK


def cmd_versions(studio: Studio, args: argparse.Namespace) -> int:
    _print_table([[v.version, v.release_role, v.backbone, v.image_size, _percent(v.val_acc), v.dataset_id,
                   ", ".join(v.classes), v.created_at] for v in studio.versions()],
                 ["version", "role", "backbone", "size", "val_acc", "dataset", "classes", "created"])
    return OK


def _print_release(action: str, release: Release) -> int:
    print(f"{action}: production {release.production}, previous {release.previous_production}, "
          f"revision {release.revision}")
    return OK


def cmd_promote(studio: Studio, args: argparse.Namespace) -> int:
    return _print_release("promoted", studio.promote(args.version))


def cmd_rollback(studio: Studio, args: argparse.Namespace) -> int:
    return _print_release("rolled back", studio.rollback())


def cmd_predict(studio: Studio, args: argparse.Namespace) -> int:
    missing = [str(path) for path in args.paths if not path.exists()]
    if missing:
        print(f"studio predict: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return USAGE
    files = [image for path in args.paths for image in (images_in(path) if path.is_dir() else [path])]
    rows, status = [], OK
    for image, answer in studio.predict_files(files, args.version, args.top_k):
        if isinstance(answer, StudioAPIError):
            status = API_ERROR
            print(f"{image}: {answer}", file=sys.stderr)
            if args.json:
                print(json.dumps({"path": str(image), "error": answer.message, "code": answer.code},
                                 ensure_ascii=False))
        elif args.json:
            print(json.dumps({"path": str(image), **answer.raw}, ensure_ascii=False), flush=True)
        else:
            rows.append([image, answer.label if answer.label is not None else "(abstained)",
                         f"{answer.confidence:.4f}", answer.model_version, answer.arm])
    if not args.json:
        _print_table(rows, ["path", "class", "confidence", "version", "arm"])
    return status


def _batch_summary(run: BatchRun) -> None:
    summary = run.summary
    rate = summary.get("images_per_second")
    print(f"batch {run.id} {run.status}: {run.done}/{run.total} files, {run.refused} refused, "
          f"{summary.get('abstained', 0)} abstained" + (f", {rate} images/s" if rate else ""))
    _print_table([[name, count] for name, count in (summary.get("classes") or {}).items()], ["class", "images"])
    for reason, count in (summary.get("refused") or {}).items():
        print(f"refused ({reason}): {count}", file=sys.stderr)


def cmd_batch(studio: Studio, args: argparse.Namespace) -> int:
    if (args.path is None) == (args.dataset is None):
        build_parser().error("batch: give a folder or a .zip, or --dataset DATASET_ID (not both)")
    bar = ProgressBar("upload", in_bytes=True)
    run = studio.start_batch(args.path, args.dataset, args.revision, args.version, args.top_k, progress=bar.update)
    bar.done()
    print(f"batch {run.id}: {run.total} files queued with model version {run.version}", file=sys.stderr)
    if args.no_wait:
        print(run.id)
        return OK
    progress = ProgressBar("classifying")
    run = studio.wait_for_batch(run.id, on_progress=lambda now: progress.update(now.done, now.total or 1))
    progress.clear()
    _batch_summary(run)
    if run.status == "failed":
        print(f"error: {run.error}", file=sys.stderr)
    if run.results:
        saved = studio.download_batch_results(run.id, args.output, "jsonl" if args.jsonl else "csv")
        print(f"results: {saved}")
    return OK if run.status == "succeeded" else API_ERROR


def _details(details: dict) -> str:
    return ", ".join(f"{name}={value}" for name, value in details.items())


def cmd_audit(studio: Studio, args: argparse.Namespace) -> int:
    entries = studio.audit(actor=args.actor, action=args.action, subject_type=args.subject_type,
                           subject_id=args.subject_id, address=args.address, since=args.since, until=args.until,
                           limit=args.limit)
    if args.json:
        for entry in entries:
            print(json.dumps(entry.raw, ensure_ascii=False))
        return OK
    _print_table([[e.at, e.actor, e.address, e.action, f"{e.subject_type} {e.subject_id or ''}".rstrip(),
                   _details(e.details)] for e in entries], ["at", "actor", "address", "action", "subject", "details"])
    return OK


COMMANDS: dict[str, Callable[[Studio, argparse.Namespace], int]] = {
    "upload": cmd_upload, "train": cmd_train, "revisions": cmd_revisions, "jobs": cmd_jobs, "cancel": cmd_cancel, "resume": cmd_resume,
    "versions": cmd_versions, "promote": cmd_promote, "rollback": cmd_rollback, "predict": cmd_predict,
    "batch": cmd_batch, "audit": cmd_audit,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    studio = Studio(args.url, args.token, timeout=args.timeout)
    try:
        return COMMANDS[args.command](studio, args)
    except StudioAPIError as exc:
        print(f"studio: {exc}", file=sys.stderr)
        return API_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
