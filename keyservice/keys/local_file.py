"""The embedded root key provider: versioned root keys in a local file only its owner can read.

File format (UTF-8 JSON, one object):

    {"format": "carevault-root-keys/1",
     "keys": [{"version": 1, "key": "<64 lowercase hex characters>"}, ...]}

The highest version is current. The file is created atomically with mode 0600 (written to a
private temporary file, fsynced, then hard-linked into place so a half-written file is never
visible and two instances starting together cannot both create it). Rotation rewrites it the
same way under an exclusive lock, so instances sharing the file never lose a version.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from keyservice.errors import InsecureKeyFileError, KeyUnwrapError, RootKeyError
from keyservice.keys.keyring import Keyring
from keyservice.keys.root import generate_key

FILE_FORMAT = "carevault-root-keys/1"
MAX_FILE_SIZE = 1 << 20


class LocalFileRootKeyProvider:
    """Root keys in ``path``; created on first use, refused if group or others can access it."""

    def __init__(self, path: Path) -> None:
        self._path = path
        if not path.exists():
            self._create()
        self._keyring = self._load()

    def wrap(self, plaintext: bytes, *, context: bytes) -> bytes:
        return self._keyring.wrap(plaintext, context=context)

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        if not self._keyring.has_version_of(wrapped):
            # Another instance sharing this file may have rotated since we loaded it.
            try:
                self._keyring = self._load()
            except RootKeyError as exc:
                raise KeyUnwrapError() from exc
        return self._keyring.unwrap(wrapped, context=context)

    def rewrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        return self.wrap(self.unwrap(wrapped, context=context), context=context)

    def generate(self, *, context: bytes) -> tuple[bytes, bytes]:
        key = generate_key()
        return key, self.wrap(key, context=context)

    def identity(self) -> str:
        return "file"

    def current_version(self) -> int:
        return self._keyring.current_version

    def rotate(self) -> int:
        with self._locked():
            keyring = self._load().with_version(generate_key())
            self._write(keyring, replace=True)
        self._keyring = keyring
        return keyring.current_version

    def _create(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileExistsError):
            self._write(Keyring({1: generate_key()}), replace=False)

    def _load(self) -> Keyring:
        try:
            fd = os.open(self._path, os.O_RDONLY)
        except OSError as exc:
            raise RootKeyError(f"cannot open root key file {self._path}: {exc.strerror}") from exc
        try:
            self._check(os.fstat(fd))
        except RootKeyError:
            os.close(fd)
            raise
        with os.fdopen(fd, "rb") as file:
            data = file.read(MAX_FILE_SIZE + 1)
        return _parse(data, path=self._path)

    def _check(self, info: os.stat_result) -> None:
        if not stat.S_ISREG(info.st_mode):
            raise RootKeyError(f"root key file {self._path} is not a regular file")
        if info.st_mode & 0o077:
            raise InsecureKeyFileError(
                f"root key file {self._path} has mode {stat.S_IMODE(info.st_mode):04o}: "
                f"group or others can access it. Fix it with: chmod 600 {self._path}"
            )

    def _write(self, keyring: Keyring, *, replace: bool) -> None:
        directory = self._path.parent
        # mkstemp creates the file with O_EXCL and mode 0600 whatever the umask.
        fd, tmp = tempfile.mkstemp(prefix=f".{self._path.name}.", dir=directory)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(_serialise(keyring))
                file.flush()
                os.fsync(file.fileno())
            if replace:
                os.replace(tmp, self._path)
            else:
                os.link(tmp, self._path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        _fsync_directory(directory)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = self._path.with_name(self._path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _serialise(keyring: Keyring) -> bytes:
    keys = [{"version": v, "key": k.hex()} for v, k in sorted(keyring.keys.items())]
    return json.dumps({"format": FILE_FORMAT, "keys": keys}, indent=1).encode() + b"\n"


def _parse(data: bytes, *, path: Path) -> Keyring:
    # The message never quotes the file's content: it holds keys.
    problem = f"root key file {path} is not a valid {FILE_FORMAT} file"
    if len(data) > MAX_FILE_SIZE:
        raise RootKeyError(problem)
    try:
        document = json.loads(data)
        if document["format"] != FILE_FORMAT:
            raise RootKeyError(problem)
        keys: dict[int, bytes] = {}
        for entry in document["keys"]:
            version, key = entry["version"], entry["key"]
            if type(version) is not int or not isinstance(key, str) or version in keys:
                raise RootKeyError(problem)
            keys[version] = bytes.fromhex(key)
    except (ValueError, TypeError, KeyError) as exc:
        raise RootKeyError(problem) from exc
    return Keyring(keys)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
