// Saturating i64 arithmetic for loads and costs: a counter or a cost that would overflow sticks at
// the extreme instead of wrapping to a negative value that would make an endpoint look best.
// Pure module: no host imports.

export function saturatingAdd(a: i64, b: i64): i64 {
  const sum = a + b;
  // Overflow iff both operands have the same sign and the sum's sign differs.
  if (((a ^ sum) & (b ^ sum)) < 0) return a < 0 ? i64.MIN_VALUE : i64.MAX_VALUE;
  return sum;
}

export function saturatingMul(a: i64, b: i64): i64 {
  if (a == 0 || b == 0) return 0;
  const negative = (a < 0) != (b < 0);
  // |x| of i64.MIN_VALUE does not fit: treat it as saturated.
  if (a == i64.MIN_VALUE || b == i64.MIN_VALUE) return negative ? i64.MIN_VALUE : i64.MAX_VALUE;
  const ua = <u64>(a < 0 ? -a : a);
  const ub = <u64>(b < 0 ? -b : b);
  if (ua > <u64>i64.MAX_VALUE / ub) return negative ? i64.MIN_VALUE : i64.MAX_VALUE;
  const p = <i64>(ua * ub);
  return negative ? -p : p;
}
