"""Imported by every benchmark before numpy: shortens OpenBLAS's busy-wait after a call.

By default (OPENBLAS_THREAD_TIMEOUT=28, 2**28 cycles) numpy's OpenBLAS worker threads spin
for ~110 ms after each matrix product (measured on the development VM). In a benchmark that
alternates numpy with other libraries, that spin takes a vCPU from whichever library runs
next: on 2 vCPUs our and JAX's times were 1.6-1.9x longer in rows with a numpy comparator.
2**21 cycles (~1 ms) still covers the gaps between numpy's back-to-back calls, so numpy's own
times are unchanged (512² matmul: 3.4-3.9 ms with either setting), and the pauses between
timing blocks can stay short. Short pauses matter on this VM: after 20 ms or more with both
vCPUs idle, the next tens of milliseconds of multithreaded work run up to 2x slower, for
every library alike.

A value the user exported is kept.
"""

import os

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "21")
