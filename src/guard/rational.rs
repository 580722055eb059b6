//! Exact rational numbers, the one form in which the guard compares every spelling of a
//! number: `3/4`, `0,75`, "%75" and "dörtte üç" all meet as 3/4.

use std::fmt;

/// An exact rational number in lowest terms, with a positive denominator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rational {
    num: i128,
    den: i128,
}

impl Rational {
    /// `num / den` in lowest terms; `None` when `den` is zero.
    pub fn new(num: i128, den: i128) -> Option<Self> {
        if den == 0 {
            return None;
        }
        let divisor = gcd(num.unsigned_abs(), den.unsigned_abs());
        let divisor = i128::try_from(divisor).ok()?;
        let (num, den) = (num / divisor, den / divisor);
        if den < 0 {
            Some(Self {
                num: num.checked_neg()?,
                den: den.checked_neg()?,
            })
        } else {
            Some(Self { num, den })
        }
    }

    /// The whole number `n`.
    pub fn integer(n: i128) -> Self {
        Self { num: n, den: 1 }
    }

    /// The numerator, in lowest terms; carries the sign.
    pub fn numer(&self) -> i128 {
        self.num
    }

    /// The denominator, in lowest terms; always positive.
    pub fn denom(&self) -> i128 {
        self.den
    }

    /// The nearest `f64`.
    pub fn to_f64(&self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// `-self`; `None` on overflow.
    pub(super) fn neg(self) -> Option<Self> {
        Some(Self {
            num: self.num.checked_neg()?,
            den: self.den,
        })
    }

    /// `self / other`; `None` for a zero divisor or on overflow.
    pub(super) fn checked_div(self, other: Self) -> Option<Self> {
        Self::new(
            self.num.checked_mul(other.den)?,
            self.den.checked_mul(other.num)?,
        )
    }
}

impl Rational {
    /// `self + other`; `None` on overflow.
    pub(super) fn checked_add(self, other: Self) -> Option<Self> {
        Self::new(
            self.num
                .checked_mul(other.den)?
                .checked_add(other.num.checked_mul(self.den)?)?,
            self.den.checked_mul(other.den)?,
        )
    }

    /// `self * other`; `None` on overflow.
    pub(super) fn checked_mul(self, other: Self) -> Option<Self> {
        Self::new(
            self.num.checked_mul(other.num)?,
            self.den.checked_mul(other.den)?,
        )
    }
}

impl fmt::Display for Rational {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(num: i128, den: i128) -> Rational {
        Rational::new(num, den).unwrap()
    }

    #[test]
    fn rationals_are_reduced() {
        assert_eq!(r(6, 8), r(3, 4));
        assert_eq!(r(3, -4).to_string(), "-3/4");
        assert_eq!(r(12, 4), Rational::integer(3));
        assert!(Rational::new(1, 0).is_none());
        assert_eq!(r(1, 2).checked_add(r(1, 3)), Some(r(5, 6)));
        assert_eq!(r(2, 3).checked_mul(r(3, 4)), Some(r(1, 2)));
        assert_eq!(Rational::integer(i128::MAX).checked_add(r(1, 1)), None);
    }
}
