//! How number words combine: the places a number has filled, so that "on dört" is one
//! number and "iki üç" two.

use super::super::lexicon::{Atom, Place};

/// The places a number has filled so far, to tell "on dört" (one number) from "iki üç" (two).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Composer {
    total: i128,
    group: i128,
    hundreds: bool,
    tens: bool,
    units: bool,
    scale: Option<i128>,
}

impl Composer {
    /// Adds `atom`; `false` (and no change) when it cannot continue this number.
    pub(super) fn push(&mut self, atom: Atom) -> bool {
        let mut next = *self;
        let fits = next.apply(atom).is_some();
        if fits {
            *self = next;
        }
        fits
    }

    fn apply(&mut self, atom: Atom) -> Option<()> {
        let v = atom.value;
        match atom.place {
            Place::Unit if !self.units => self.group += v,
            Place::Teen if !self.tens && !self.units => {
                self.group += v;
                self.tens = true;
            }
            Place::Ten if !self.tens && !self.units => {
                self.group += v;
                self.tens = true;
                return Some(());
            }
            Place::Hundred if !self.hundreds && !self.tens => {
                self.group = if self.units { self.group * 100 } else { 100 };
                self.hundreds = true;
                self.units = false;
                return Some(());
            }
            Place::Scale if self.scale.is_none_or(|s| s > v) => {
                let times = if self.group == 0 { 1 } else { self.group };
                self.total = self.total.checked_add(times.checked_mul(v)?)?;
                *self = Self {
                    total: self.total,
                    scale: Some(v),
                    ..Self::default()
                };
                return Some(());
            }
            _ => return None,
        }
        self.units = true;
        Some(())
    }

    pub(super) fn value(&self) -> Option<i128> {
        self.total.checked_add(self.group)
    }

    /// Right after "hundred" or a scale, where English puts "and": "one hundred and five".
    pub(super) fn awaits_and(&self) -> bool {
        (self.hundreds || self.scale.is_some()) && !self.tens && !self.units
    }
}
