"""``python -m zoo.data TREE [TREE ...]``: decodes image trees into the cache (:mod:`zoo.data.cache`) and reports
the first-decode time and the cached load time, e.g.::

    python -m zoo.data ../shared/data/cifar10-jpeg/train ../shared/data/cifar10-jpeg/test --rebuild
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

from zoo.data import cache

def main(argv: Sequence[str] | None = None) -> int:
    """``python -m zoo.data TREE [TREE ...]``: builds (or checks) the cache of each tree and reports the
    decode time and the cached load time.

    With ``--rebuild`` the tree's cache files are removed first, so the first figure is a full decode.
    Returns the exit code.
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m zoo.data", description=main.__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", help="folders laid out as <tree>/<class>/<images>")
    parser.add_argument("--name", default=None, help="cache file prefix (default: the folder's parent and name)")
    parser.add_argument("--channels", type=int, default=3, choices=(1, 3))
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--rebuild", action="store_true", help="remove the tree's cache first (time a full decode)")
    parser.add_argument("--repeats", type=int, default=3, help="cached loads timed (the median is reported)")
    args = parser.parse_args(argv)
    out = sys.stdout
    for tree in args.trees:
        folder = Path(tree)
        if not folder.is_dir():
            parser.error(f"{tree}: no such folder; give the folder that holds <class>/<images>")
        name = args.name or f"{folder.resolve().parent.name}-{folder.name}"  # e.g. cifar10-jpeg-train, as the datamodule
        if args.rebuild:
            listing = cache.scan_tree(folder)
            for size in (None, args.image_size):
                cache._cache_file(name, listing.fingerprint(args.channels, size)).unlink(missing_ok=True)
        t0 = time.perf_counter()
        images, _, classes = cache.load_tree(folder, channels=args.channels, image_size=args.image_size, name=name)
        first = time.perf_counter() - t0
        loads = []
        for _ in range(max(1, args.repeats)):
            t0 = time.perf_counter()
            cache.load_tree(folder, channels=args.channels, image_size=args.image_size, name=name)
            loads.append(time.perf_counter() - t0)
        loads.sort()
        out.write(f"{folder}: {len(images)} images {tuple(images.shape[1:])}, {len(classes)} classes; "
                  f"{'decode + cache write' if args.rebuild else 'first load'} {first:.2f} s, "
                  f"cached load {loads[len(loads) // 2]:.2f} s (median of {len(loads)}); cache in {cache.cache_dir()}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
