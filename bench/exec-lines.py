#!/usr/bin/env python3
"""bench/exec-lines.py LINES -- write LINES lines of 80 bytes to stdout.

The output program of bench/exec.py: the lines are built once into a
64 KiB block (819 lines) written over and over, so the writer costs a few
ms of CPU per GB and the reader (corod) is what is measured.  Each line is
"NNNNNNNNN " (its number within the block, zero-padded) and 70 letters;
LINES 0 or absent writes until killed.
"""

import os
import sys

LINE = 80
PER_BLOCK = 819                 # 819 * 80 = 65520 bytes, under 64 KiB


def main():
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    block = b"".join(b"%09d " % i + b"x" * (LINE - 11) + b"\n"
                     for i in range(PER_BLOCK))
    out = sys.stdout.buffer
    left = total
    try:
        while total == 0 or left > 0:
            n = PER_BLOCK if total == 0 else min(PER_BLOCK, left)
            out.write(block if n == PER_BLOCK else block[:n * LINE])
            left -= n
        out.flush()
    except BrokenPipeError:
        os._exit(1)


if __name__ == "__main__":
    main()
