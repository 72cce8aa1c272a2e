"""A read-only view of an SQLite database's WAL-index header, as a cheap change stamp.

DiskCache's near cache (see :mod:`._near`) may serve a value it decoded earlier only if
nothing was committed to the database since. ``PRAGMA data_version`` answers that, but it
costs a read transaction: three system calls (a lock on a read-mark byte of the ``-shm``
file, an ``fstat`` of the WAL, the unlock), about 2 us. This module answers the same question
by reading 96 bytes of shared memory.

Why the header is a faithful stamp (SQLite's ``wal.c`` and https://sqlite.org/walformat.html):

* In WAL mode the wal-index (the ``<db>-shm`` file, memory-mapped by every connection of
  every process) starts with two copies of the 48-byte ``WalIndexHdr``: ``iVersion``
  (3007000), ``unused``, ``iChange`` (incremented by every commit), ``isInit`` (1 once
  valid), ``bigEndCksum``, ``szPage``, ``mxFrame`` (last valid commit frame), ``nPage``,
  ``aFrameCksum[2]`` (the running checksum of the WAL up to ``mxFrame``), ``aSalt[2]`` (the
  WAL's salts: salt-1 is incremented and salt-2 re-randomized whenever the WAL is reset
  after a checkpoint) and ``aCksum[2]`` (a checksum of the fields before it).
* Every commit, by any connection of any process, writes the new header
  (``walIndexWriteHdr``): copy 2 first, a memory barrier, then copy 1. So does a WAL reset
  (``walRestartHdr``) and a recovery. A checkpoint that does not reset the WAL changes no
  header field, and no database content either.
* SQLite itself decides whether a connection's page cache is still valid, and whether
  ``PRAGMA data_version`` moves, by exactly this comparison: a reader reads copy 1, a
  barrier, copy 2, accepts them only if equal (and ``isInit`` and the checksum hold), and
  treats the database as changed if and only if the header differs from the one it saw last
  (``walIndexTryHdr``). So an unchanged header means what an unchanged ``data_version``
  means, with our own connection's commits counted as well.
* Reading copy 1 and then copy 2 (the opposite of the write order) and requiring them to be
  equal yields a header some writer wrote completely, never a torn mix: if the read of copy
  1 saw any byte of a newer header, that writer had already finished copy 2, which is read
  afterwards. A header being written while we read is a commit concurrent with the lookup;
  returning the value from just before it is what a full read could have returned too.

Why the mapping stays the right file (the unix VFS, ``os_unix.c``): the view is only used
while this thread's SQLite connection is open, in WAL mode with normal locking, and has read
the database once. Such a connection keeps the ``-shm`` file open with a shared lock on its
"DMS" byte, and a shared lock on the database file, until it is closed. The ``-shm`` file is
truncated and re-initialized only by a process that finds no lock at all on the DMS byte,
and deleted only by a connection closing with an exclusive lock on the database, so neither
can happen while that connection is open; leaving WAL mode needs the exclusive lock too. The
view is matched to the file the connection uses by inode when the connection is taken, and
anything unexpected (no ``-shm`` file, a header that is not initialized or whose copies
differ, another ``journal_mode`` or ``locking_mode``, any error) means no view: the caller
falls back to ``PRAGMA data_version``.

Why the descriptors are never closed: POSIX record locks belong to the process, and closing
*any* descriptor of a file releases all of the process's locks on it, SQLite's included (its
DMS lock, a reader's read-mark lock, a writer's write lock). Closing our descriptor of a
``-shm`` file that a connection of this process still uses could let another process
re-initialize the wal-index under it, or write beside that writer. So every descriptor
opened here (ours, and the one ``mmap`` duplicates and closes when the view is freed) stays
open for the life of the process: the views are listed in :data:`_KEPT` and also held by
``_core.keep_forever``, so not even the interpreter's teardown frees them while a daemon
thread may still be inside SQLite. At most :data:`MAX_VIEWS` files are mapped (beyond that,
caches use ``PRAGMA data_version``).
"""

from __future__ import annotations

import mmap
import os
import sqlite3
import sys
import threading
from typing import Dict, List, Optional, Tuple

from .. import _core

__all__ = ["HEADER", "MAX_VIEWS", "header_ok", "wal_index_view"]

#: Size of one copy of the header; the view holds both copies.
HEADER = 48
#: How many ``-shm`` files one process maps at most (each keeps two descriptors open).
MAX_VIEWS = 16
#: ``iVersion`` as SQLite writes it (the wal-index is in the host's byte order).
_VERSION = (3007000).to_bytes(4, sys.byteorder)
_IS_INIT = 12  # offset of the isInit byte

_lock = threading.Lock()
#: Every (descriptor, view) ever opened here: never closed, never dropped (see the module doc).
_KEPT: List[Tuple[int, Optional[mmap.mmap]]] = []
#: The view of each ``-shm`` file, by (st_dev, st_ino).
_views: Dict[Tuple[int, int], mmap.mmap] = {}


def header_ok(header: bytes) -> bool:
    """Whether a header copy is one this module understands: initialized, version 3007000."""
    return header[_IS_INIT] == 1 and header[:4] == _VERSION


def wal_index_view(con: sqlite3.Connection, db_path: str) -> Optional[mmap.mmap]:
    """A read-only view of the first two header copies of ``db_path``'s wal-index, valid for
    as long as ``con`` (a connection to ``db_path``) stays open; None when the database is
    not in a state the view can be trusted for (the caller uses ``PRAGMA data_version``)."""
    if os.name != "posix":  # the argument above is about the unix VFS and POSIX locks
        return None
    try:
        (journal,) = con.execute("PRAGMA journal_mode").fetchone()
        (locking,) = con.execute("PRAGMA locking_mode").fetchone()
        if str(journal).lower() != "wal" or str(locking).lower() != "normal":
            return None
        con.execute("PRAGMA data_version").fetchone()  # a read: the -shm is open and locked now
        shm_path = db_path + "-shm"
        st = os.stat(shm_path)
        ident = (st.st_dev, st.st_ino)
        with _lock:
            view = _views.get(ident)
            if view is None:
                if len(_KEPT) >= MAX_VIEWS:
                    return None
                fd = os.open(shm_path, os.O_RDONLY)
                try:
                    opened = os.fstat(fd)
                    view = mmap.mmap(fd, 2 * HEADER, access=mmap.ACCESS_READ)
                except (OSError, ValueError):
                    _KEPT.append((fd, None))
                    return None
                _core.keep_forever(view)
                _KEPT.append((fd, view))
                if (opened.st_dev, opened.st_ino) != ident:  # replaced since the stat
                    return None
                _views[ident] = view
        first = view[0:HEADER]
        if first != view[HEADER : 2 * HEADER] or not header_ok(first):
            return None
        return view
    except (OSError, ValueError, TypeError, sqlite3.Error):
        return None
