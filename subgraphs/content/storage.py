"""Where file versions live: a small interface, a local-directory implementation.

Content never holds a whole file: `save` consumes an async iterator of chunks and
`read` yields chunks. Keys are opaque strings (`documents/<document>/<version>`), so an
S3-compatible backend fits behind the same interface (a multipart upload in `save`, a
ranged GET in `read`).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

CHUNK_SIZE = 256 * 1024


class Storage(Protocol):
    async def save(self, key: str, chunks: AsyncIterator[bytes]) -> None:
        """Store the chunks under `key`; on any failure nothing is left under `key`."""

    def read(self, key: str, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        """The stored bytes, chunk by chunk."""

    async def delete(self, key: str) -> None:
        """Remove `key`; no error when it is absent."""

    async def exists(self, key: str) -> bool: ...

    def local_path(self, key: str) -> Path | None:
        """A filesystem path to the bytes, when the backend has one (text extraction)."""


class LocalStorage:
    """Files under one directory; written to a temporary name and renamed when complete."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"storage key escapes the storage root: {key!r}")
        return path

    async def save(self, key: str, chunks: AsyncIterator[bytes]) -> None:
        path = self._path(key)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        handle = await asyncio.to_thread(open, partial, "wb")
        try:
            async for chunk in chunks:
                await asyncio.to_thread(handle.write, chunk)
            await asyncio.to_thread(handle.flush)
            await asyncio.to_thread(os.fsync, handle.fileno())
            handle.close()
            await asyncio.to_thread(os.replace, partial, path)
        except BaseException:
            handle.close()
            partial.unlink(missing_ok=True)
            raise

    async def read(self, key: str, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        handle = await asyncio.to_thread(open, self._path(key), "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, chunk_size):
                yield chunk
        finally:
            handle.close()

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    def local_path(self, key: str) -> Path | None:
        return self._path(key)


def storage_for(backend: str, path: Path) -> Storage:
    if backend == "local":
        return LocalStorage(path)
    raise ValueError(f"unknown storage backend {backend!r} (known: local)")
