//! Decimal text to the nearest `f64`, correctly rounded (ties to even).
//!
//! The standard library's reader is exact and fast but brings ~18 KB of
//! tables and code into the WebAssembly module; numbers are rare in the
//! core's input (two ratios in the configuration), so this one trades
//! speed for size: an exact fast path for short mantissas and small
//! exponents, and otherwise exact big-integer arithmetic.

use crate::prelude::*;
use core::cmp::Ordering::{self, Equal, Greater, Less};

/// Significant digits kept; any further non-zero digit only marks the value
/// as lying strictly above what was kept.
const MAX_DIGITS: usize = 800;

/// Parses a number already checked against the JSON grammar. `None` when
/// its magnitude is beyond `f64::MAX` (it rounds to infinity).
pub(crate) fn parse(text: &str) -> Option<f64> {
    let bytes = text.as_bytes();
    let negative = bytes.first() == Some(&b'-');
    let mut digits: Vec<u8> = Vec::new();
    let mut sticky = false;
    // Value = 0.d1 d2 d3 ... × 10^point (before trimming leading zeros).
    let mut point: i64 = 0;
    let mut seen_point = false;
    let mut i = usize::from(negative);
    while i < bytes.len() {
        match bytes[i] {
            b'.' => seen_point = true,
            c @ b'0'..=b'9' => {
                let d = c - b'0';
                if digits.is_empty() && d == 0 {
                    if seen_point {
                        point -= 1;
                    }
                } else {
                    if !seen_point {
                        point += 1;
                    }
                    if digits.len() < MAX_DIGITS {
                        digits.push(d);
                    } else if d != 0 {
                        sticky = true;
                    }
                }
            }
            _ => break,
        }
        i += 1;
    }
    if let Some(b'e' | b'E') = bytes.get(i) {
        i += 1;
        let minus = bytes.get(i) == Some(&b'-');
        if let Some(b'+' | b'-') = bytes.get(i) {
            i += 1;
        }
        let mut e: i64 = 0;
        for &c in &bytes[i..] {
            e = (e * 10 + i64::from(c - b'0')).min(1 << 40);
        }
        point += if minus { -e } else { e };
    }
    while digits.last() == Some(&0) {
        digits.pop();
    }
    let sign = if negative { -1.0 } else { 1.0 };
    if digits.is_empty() {
        return Some(sign * 0.0);
    }
    // The value lies in [10^(point-1), 10^point).
    if point > 310 {
        return None;
    }
    if point < -330 {
        return Some(sign * 0.0);
    }
    // Value = D × 10^q with D the digits as an integer.
    let q = point - digits.len() as i64;
    if !sticky && digits.len() <= 15 && (-22..=22).contains(&q) {
        let d = digits.iter().fold(0u64, |acc, &d| acc * 10 + u64::from(d)) as f64;
        let p = (0..q.unsigned_abs()).fold(1.0f64, |p, _| p * 10.0);
        return Some(sign * if q < 0 { d / p } else { d * p });
    }
    exact(&digits, q, sticky).map(|f| sign * f)
}

/// `round(D × 10^q)` for a positive `D` by exact arithmetic.
fn exact(digits: &[u8], q: i64, sticky: bool) -> Option<f64> {
    let mut a = Big::from_digits(digits);
    let mut b = Big::one();
    if q >= 0 {
        a.mul_pow5(q as u32);
    } else {
        b.mul_pow5(q.unsigned_abs() as u32);
    }
    // Value = a / b × 2^q; find k with 2^k <= a / b < 2^(k+1).
    let d = a.bits() as i64 - b.bits() as i64;
    let at_least = |k: i64| {
        if k >= 0 {
            a.cmp_to(&b.shl(k as usize)) != Less
        } else {
            a.shl(k.unsigned_abs() as usize).cmp_to(&b) != Less
        }
    };
    let k = if at_least(d) { d } else { d - 1 };
    let exponent = k + q;
    if exponent > 1023 {
        return None;
    }
    // The unit of the last mantissa bit: 2^-52 of the value's binade, or
    // 2^-1074 for subnormals.
    let unit = exponent.max(-1022) - 52;
    let t = q - unit;
    let (num, den) = if t >= 0 {
        (a.shl(t as usize), b)
    } else {
        (a, b.shl(t.unsigned_abs() as usize))
    };
    let (mut m, rem) = num.div_small_quotient(&den);
    // Round half to even; digits beyond the cap make a tie round up.
    let twice = rem.shl(1);
    match twice.cmp_to(&den) {
        Greater => m += 1,
        Equal if sticky || m & 1 == 1 => m += 1,
        _ => {}
    }
    let (mut m, mut unit) = (m, unit);
    if m == 1 << 53 {
        m >>= 1;
        unit += 1;
    }
    if m < 1 << 52 {
        // Subnormal (unit is -1074), or a value that rounded up into the
        // smallest normal binade (m is then exactly 2^52, handled below).
        return Some(f64::from_bits(m));
    }
    let biased = unit + 52 + 1023;
    if biased >= 2047 {
        return None;
    }
    Some(f64::from_bits(((biased as u64) << 52) | (m - (1 << 52))))
}

/// A non-negative big integer, 32-bit limbs, least significant first, no
/// leading zero limbs.
#[derive(Clone)]
struct Big(Vec<u32>);

impl Big {
    fn one() -> Big {
        Big(vec![1])
    }

    fn from_digits(digits: &[u8]) -> Big {
        let mut big = Big(Vec::new());
        for chunk in digits.chunks(9) {
            let mut scale = 1u32;
            let mut value = 0u32;
            for &d in chunk {
                scale *= 10;
                value = value * 10 + u32::from(d);
            }
            big.mul_add(scale, value);
        }
        big
    }

    fn mul_add(&mut self, factor: u32, add: u32) {
        let mut carry = u64::from(add);
        for limb in &mut self.0 {
            let v = u64::from(*limb) * u64::from(factor) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
    }

    fn mul_pow5(&mut self, mut n: u32) {
        while n > 0 {
            let step = n.min(13);
            self.mul_add(5u32.pow(step), 0);
            n -= step;
        }
    }

    fn bits(&self) -> usize {
        match self.0.last() {
            Some(&top) => self.0.len() * 32 - top.leading_zeros() as usize,
            None => 0,
        }
    }

    fn shl(&self, n: usize) -> Big {
        if self.0.is_empty() {
            return Big(Vec::new());
        }
        let (limbs, bits) = (n / 32, n % 32);
        let mut out = vec![0u32; limbs];
        let mut carry = 0u32;
        for &limb in &self.0 {
            if bits == 0 {
                out.push(limb);
            } else {
                out.push((limb << bits) | carry);
                carry = limb >> (32 - bits);
            }
        }
        if carry > 0 {
            out.push(carry);
        }
        Big(out)
    }

    fn cmp_to(&self, other: &Big) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }

    fn sub_assign(&mut self, other: &Big) {
        let mut borrow = 0i64;
        for (i, limb) in self.0.iter_mut().enumerate() {
            let v = i64::from(*limb) - i64::from(other.0.get(i).copied().unwrap_or(0)) - borrow;
            borrow = i64::from(v < 0);
            *limb = (v + (borrow << 32)) as u32;
        }
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    /// `(self / den, self % den)` when the quotient is below 2^54.
    fn div_small_quotient(mut self, den: &Big) -> (u64, Big) {
        let mut quotient = 0u64;
        for i in (0..54).rev() {
            let shifted = den.shl(i);
            if self.cmp_to(&shifted) != Less {
                self.sub_assign(&shifted);
                quotient |= 1 << i;
            }
        }
        (quotient, self)
    }
}
