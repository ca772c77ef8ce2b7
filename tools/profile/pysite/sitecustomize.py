"""Loaded by every Python process of a profiled command (this folder is put first on PYTHONPATH).

When NIGHTSHIFT_ALLOC_DIR is set it traces allocations with tracemalloc, keeps the snapshot taken
nearest the peak of traced memory, and at exit writes it as collapsed stacks of `file:line` frames
weighted by bytes still live at that moment (names are resolved by the parent, not here, to keep
this cheap). Stdlib only, so it works in any interpreter or virtualenv the target uses.
"""

import os

_OUT = os.environ.get("NIGHTSHIFT_ALLOC_DIR")

if _OUT:
    import atexit
    import threading
    import time
    import tracemalloc

    tracemalloc.start(int(os.environ.get("NIGHTSHIFT_ALLOC_FRAMES", "32")))
    _lock = threading.Lock()
    _best: list = [None, 0]  # snapshot nearest the peak, and its traced size

    def _snapshot():
        # No filter_traces here: it runs in Python over every trace; the parent drops our own frames.
        return tracemalloc.take_snapshot()

    def _watch() -> None:
        # A snapshot costs time proportional to live blocks, so take one only on 10% growth.
        while True:
            time.sleep(0.02)
            current, _ = tracemalloc.get_traced_memory()
            if current > max(_best[1] * 1.1, 256 * 1024):
                with _lock:
                    _best[:] = [_snapshot(), current]

    def _dump() -> None:
        with _lock:
            current, _ = tracemalloc.get_traced_memory()
            snap = _best[0] if _best[0] is not None and _best[1] > current else _snapshot()
            tracemalloc.stop()
            lines = []
            for stat in snap.statistics("traceback"):
                frames = ";".join(f"{f.filename}:{f.lineno}" for f in stat.traceback)  # oldest first
                lines.append(f"{frames} {stat.size}\n")
            path = os.path.join(_OUT, f"alloc-{os.getpid()}.txt")
            with open(path, "w") as f:
                f.writelines(lines)

    threading.Thread(target=_watch, daemon=True, name="nightshift-tracemalloc").start()
    atexit.register(_dump)
