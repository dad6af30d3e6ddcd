"""The run's records: `OUT/manifest.jsonl` (one JSON line per curated clip, appended and fsynced) and
`OUT/run.json` (the settings every clip of the folder was made with), what resuming reads, and the summary."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from .clip import SEG_MASK_FILENAME

MANIFEST_NAME = "manifest.jsonl"
RUN_NAME = "run.json"
STATUSES = ("done", "failed", "skipped")


def read_manifest(path: Path) -> dict[str, dict[str, Any]]:
    """The latest record of each clip in the manifest at `path` (later lines supersede earlier ones). A
    last line cut short by a crash is ignored (with a warning); a malformed line elsewhere is an error."""
    if not path.is_file():
        return {}
    lines = path.read_text().splitlines()
    records: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            clip, status = record["clip"], record["status"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            if number == len(lines):
                print(f"warning: {path}: ignoring its last line, cut short ({exc})", file=sys.stderr)
                continue
            raise ValueError(f"{path}: line {number} is not a manifest record ({exc})") from None
        if status not in STATUSES:
            raise ValueError(f"{path}: line {number}: unknown status {status!r}")
        records[clip] = record
    return records


def repair_manifest(path: Path) -> None:
    """Cut a last line that a crash left incomplete (not a JSON record) from the manifest, so that the records
    appended next follow complete lines; a complete last record without its newline gets one."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    start = data.rfind(b"\n") + 1
    try:
        json.loads(data[start:])
        complete = True
    except ValueError:  # json.JSONDecodeError and UnicodeDecodeError
        complete = False
    with path.open("r+b") as f:
        if complete:
            f.seek(0, os.SEEK_END)
            f.write(b"\n")
        else:
            f.truncate(start)
        f.flush()
        os.fsync(f.fileno())


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append `record` as one JSON line, flushed and fsynced, so that a record that is there is complete."""
    line = json.dumps(record, separators=(",", ":")) + "\n"
    with path.open("a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def output_complete(folder: Path, record: dict[str, Any]) -> bool:
    """Whether `folder` holds every output `record` lists: each folder with one PNG per frame, the mask."""
    if not (folder / SEG_MASK_FILENAME).is_file():
        return False
    frames = record.get("frames")
    for name in record.get("outputs") or []:
        sub = folder / name
        if not sub.is_dir() or len(list(sub.glob("*.png"))) != frames or any(sub.glob(".*.partial")):
            return False
    return bool(record.get("outputs"))


def check_run(out: Path, settings: dict[str, Any], *, write: bool = True) -> None:
    """Refuse to resume in `out` with other settings than those recorded in `out/run.json` (outputs made with
    different weights or options must not mix); the first run writes it (unless `write` is False)."""
    path = out / RUN_NAME
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not readable JSON ({exc}); remove it or use another --out") from None
        changed = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        if changed:
            shown = "; ".join(f"{k}: {old.get(k)!r} -> {settings.get(k)!r}" for k in changed[:4])
            raise ValueError(f"--out {out} holds a curation run made with other settings ({shown}); use another "
                             "--out, or the same settings to resume it")  # fmt: skip
        return
    if not write:
        return
    tmp = path.with_name(f".{RUN_NAME}.partial")
    tmp.write_text(json.dumps(settings, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def summary_table(records: list[dict[str, Any]], *, resumed: set[str], seconds: float) -> str:
    """A Markdown table of the run: clips done (this run / before), failed, skipped, accepted, and the
    throughput of this run (frames/s over the frames of the clips curated now, clips/h)."""
    counts = {s: sum(r["status"] == s for r in records) for s in STATUSES}
    accepted = sum(bool(r.get("accepted")) for r in records if r["status"] == "done")
    now = [r for r in records if r["status"] == "done" and r["clip"] not in resumed]
    frames = sum(r["frames"] for r in now)
    rate = frames / seconds if seconds > 0 else 0.0
    per_hour = 3600 * len(now) / seconds if seconds > 0 else 0.0
    rows = [
        ("clips", len(records)),
        ("done", f"{counts['done']} ({len(now)} now, {counts['done'] - len(now)} before)"),
        ("failed", counts["failed"]),
        ("skipped", counts["skipped"]),
        ("accepted", f"{accepted} of {counts['done']} done"),
        ("frames curated now", frames),
        ("time", f"{seconds:.1f} s"),
        ("frames/s", f"{rate:.2f}"),
        ("clips/h", f"{per_hour:.1f}"),
    ]
    lines = ["| | |", "|---|---:|", *(f"| {k} | {v} |" for k, v in rows)]
    problems = [r for r in records if r["status"] != "done"]
    if problems:
        lines += ["", "| clip | status | reason |", "|---|---|---|"]
        lines += [f"| {r['clip']} | {r['status']} | {r['reason']} |" for r in problems]
    return "\n".join(lines) + "\n"
