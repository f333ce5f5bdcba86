"""Checkpoint manifests: the size and SHA-256 of every file of a checkpoint directory, written beside it and
checked before anything is loaded from it.

A checkpoint that was truncated (disk full, a copy cut short), edited, or partly replaced by another run's files
then fails with one line naming the file and what is wrong, instead of a deserialiser's traceback (or, worse,
loading). Directories without a manifest (written before manifests existed, or by another tool) load as before,
each loader still checking its own format.

    write_manifest(Path("runs/x/ckpt-000010"))   # after the files are written, before the directory is renamed
    verify_manifest(Path("runs/x/ckpt-000010"))  # raises CheckpointCorruptError on any mismatch
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from srpo.errors import CheckpointCorruptError
from srpo.files import read_json

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "srpo-manifest"
MANIFEST_VERSION = 1
_CHUNK_BYTES = 1 << 20


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (checkpoint shards may not fit in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _checkpoint_files(directory: Path) -> list[Path]:
    """Regular files under `directory`, sorted, except its own manifest and hidden (temp) files."""
    own = directory / MANIFEST_FILE
    return sorted(
        p for p in directory.rglob("*")
        if p.is_file() and p != own and not any(part.startswith(".") for part in p.relative_to(directory).parts)
    )


def write_manifest(directory: str | Path) -> Path:
    """Write `directory`/manifest.json listing every file below it (relative path → size, sha256).

    Nested manifests (a policy folder inside a trainer checkpoint) are listed like any other file, so the outer
    manifest covers them too. The manifest is written to a temp file and renamed: it is complete or absent.

    Returns:
        The manifest's path.
    """
    root = Path(directory)
    files = {
        p.relative_to(root).as_posix(): {"size": p.stat().st_size, "sha256": file_sha256(p)}
        for p in _checkpoint_files(root)
    }
    record = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "files": files}
    path = root / MANIFEST_FILE
    tmp = root / f".{MANIFEST_FILE}.tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(record, indent=1, sort_keys=True))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def read_manifest(directory: str | Path) -> dict[str, dict[str, int | str]] | None:
    """The manifest's file table, None when the directory has no manifest.

    Raises:
        CheckpointCorruptError: The manifest exists but is not a readable srpo manifest.
    """
    path = Path(directory) / MANIFEST_FILE
    if not path.is_file():
        return None
    record = read_json(path, CheckpointCorruptError,
                       ": the checkpoint's manifest is damaged; use an earlier checkpoint or re-create this one")
    if not isinstance(record, dict) or record.get("format") != MANIFEST_FORMAT or not isinstance(
        record.get("files"), dict
    ):
        raise CheckpointCorruptError(f"{path} is not an srpo checkpoint manifest (expected format "
                                     f"{MANIFEST_FORMAT!r} with a 'files' table)")
    if record.get("version") != MANIFEST_VERSION:
        raise CheckpointCorruptError(f"{path} has manifest version {record.get('version')!r}; this srpo reads "
                                     f"version {MANIFEST_VERSION}: upgrade srpo or re-create the checkpoint")
    files: dict[str, dict[str, int | str]] = record["files"]
    return files


def verify_manifest(directory: str | Path, required: bool = False) -> bool:
    """Check every file listed in `directory`'s manifest: present, of the listed size and checksum.

    Files added to the directory after the manifest was written are ignored (a report or a note beside a
    checkpoint does not damage it).

    Args:
        directory: A checkpoint directory.
        required: Raise when there is no manifest (otherwise return False: a checkpoint from before manifests).

    Returns:
        True when a manifest was found and every file matched, False when there is none and it is not required.

    Raises:
        CheckpointCorruptError: Naming the first missing, truncated or altered file.
    """
    root = Path(directory)
    files = read_manifest(root)
    if files is None:
        if required:
            raise CheckpointCorruptError(f"{root} has no {MANIFEST_FILE}: it was not written completely by srpo")
        return False
    for name, entry in sorted(files.items()):
        path = root / name
        if not path.is_file():
            raise CheckpointCorruptError(f"{path} is missing (listed in {root / MANIFEST_FILE}): the checkpoint is "
                                         "incomplete; use an earlier checkpoint or re-create this one")
        size = path.stat().st_size
        if size != entry.get("size"):
            raise CheckpointCorruptError(
                f"{path} is {size} bytes but its manifest says {entry.get('size')}: the file is truncated or was "
                "replaced; use an earlier checkpoint or re-create this one")
        if file_sha256(path) != entry.get("sha256"):
            raise CheckpointCorruptError(
                f"{path} does not match the checksum in its manifest: the file was altered or damaged; use an "
                "earlier checkpoint or re-create this one")
    return True
