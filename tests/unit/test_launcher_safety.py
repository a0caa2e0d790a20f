"""What keeps the install's files and processes its own: keys written whole and private, a key of the wrong
length refused, a private DATA_DIR, leftovers stopped only when pid and start time match, and a crashing
service restarted with backoff while health can say why it is down."""
from __future__ import annotations

import os
import stat

import pytest

from webapp import storage
from webapp.storage import KEY_BYTES, DataDir


@pytest.fixture
def open_umask():
    """A umask that lets everyone read new files, as many desktop sessions have; restored afterwards."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_key_is_written_whole_before_it_appears(tmp_path, monkeypatch, open_umask):
    key_file = tmp_path / "keys" / "session.key"
    seen = []

    def token_bytes(count: int) -> bytes:  # another process looks while the key is being made
        seen.append(key_file.read_bytes() if key_file.exists() else None)
        return b"k" * count

    monkeypatch.setattr(storage.secrets, "token_bytes", token_bytes)
    assert DataDir(tmp_path).secret("session.key") == b"k" * KEY_BYTES
    assert seen == [None]
    assert mode(key_file) == 0o600 and mode(key_file.parent) == 0o700
    assert os.listdir(key_file.parent) == ["session.key"]


def test_two_processes_making_the_key_at_once_keep_the_same_one(tmp_path, monkeypatch):
    made = [b"b" * KEY_BYTES, b"a" * KEY_BYTES]
    inner = []

    def token_bytes(count: int) -> bytes:
        key = made.pop()
        if made:  # while this process makes its key, another makes one and keeps it first
            inner.append(DataDir(tmp_path).secret("checkpoint.key"))
        return key

    monkeypatch.setattr(storage.secrets, "token_bytes", token_bytes)
    outer = DataDir(tmp_path).secret("checkpoint.key")
    assert outer == inner[0] == (tmp_path / "keys" / "checkpoint.key").read_bytes()
    assert os.listdir(tmp_path / "keys") == ["checkpoint.key"]


@pytest.mark.parametrize("content", [b"", b"short", b"x" * (KEY_BYTES + 1)])
def test_key_of_the_wrong_length_is_refused_not_used(tmp_path, content):
    key_file = tmp_path / "keys" / "redis.password"
    key_file.parent.mkdir()
    key_file.write_bytes(content)
    with pytest.raises(RuntimeError) as refused:
        DataDir(tmp_path).secret("redis.password")
    message = str(refused.value)
    assert str(key_file) in message and f"{len(content)} bytes" in message
    assert "delete it" in message and "backup" in message
    assert key_file.read_bytes() == content  # never silently made again
