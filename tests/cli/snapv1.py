#!/usr/bin/env python3
"""Writes a version-3 snapshot as the version-1 writer would have: without
INFO's peak RSS and the peak and flow figures, without the traces kept only
for those (nothing live), frames written out in each trace. The checksum
is computed again.
   snapv1.py IN OUT
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import snapfile  # noqa: E402


def main():
    try:
        snap = snapfile.read_v3(sys.argv[1])
    except ValueError as e:
        sys.exit('snapv1.py: %s' % e)
    open(sys.argv[2], 'wb').write(snapfile.write_v1(snap))


if __name__ == '__main__':
    main()
