"""Coefficients of q(t) = ln(1 + e)/e, t = e - 1/2 in [-1/2, 1/2], for `LOG1P64` in
src/vmath.rs: the polynomial of degree N interpolating q at the N + 1 Chebyshev nodes, in
powers of t, solved in 80-digit decimal arithmetic and printed rounded to float64.

numpy's float64 `Chebyshev.interpolate` gives the f32 coefficients (degree 9) but not these:
past degree 12 its coefficients are rounding noise.

    python3 rust/core/tools/log1p_coeffs.py [N]     # N = 20 for LOG1P64

Prints the coefficients and the largest relative error of the rounded polynomial against q,
in units of 2**-52, on a fine grid (computed in the same decimal arithmetic).
"""

import math
import sys
from decimal import Decimal, getcontext

getcontext().prec = 80


def q(t: Decimal) -> Decimal:
    e = t + Decimal("0.5")
    return (1 + e).ln() / e


def interpolate(n: int) -> list[Decimal]:
    # The nodes themselves need not be exact: any n + 1 distinct points near the Chebyshev
    # nodes give a near-minimax interpolant; q is then evaluated at them exactly enough.
    ts = [Decimal(0.5 * math.cos((2 * k + 1) * math.pi / (2 * (n + 1)))) for k in range(n + 1)]
    a = [[t**j if j else Decimal(1) for j in range(n + 1)] for t in ts]
    b = [q(t) for t in ts]
    for i in range(n + 1):  # Gaussian elimination with partial pivoting
        p = max(range(i, n + 1), key=lambda r: abs(a[r][i]))
        a[i], a[p], b[i], b[p] = a[p], a[i], b[p], b[i]
        for r in range(i + 1, n + 1):
            f = a[r][i] / a[i][i]
            for c in range(i, n + 1):
                a[r][c] -= f * a[i][c]
            b[r] -= f * b[i]
    x = [Decimal(0)] * (n + 1)
    for i in reversed(range(n + 1)):
        x[i] = (b[i] - sum(a[i][c] * x[c] for c in range(i + 1, n + 1))) / a[i][i]
    return x


def max_error(c: list[Decimal], points: int = 2001) -> float:
    worst = Decimal(0)
    for k in range(1, points):
        t = Decimal("-0.5") + Decimal(k) / Decimal(points - 1)
        v = Decimal(0)
        for ci in reversed(c):
            v = v * t + ci
        worst = max(worst, abs(v / q(t) - 1))
    return float(worst) / 2.0**-52


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    rounded = [Decimal(float(ci)) for ci in interpolate(n)]
    for ci in rounded:
        print(f"    {float(ci)!r},")
    print(f"max |p/q - 1| = {max_error(rounded):.3f} x 2^-52")
