//! `safety`: the hint guard and moderation flags (issue 10).

use std::collections::HashMap;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafetySettings {
    /// Check every generated hint for the answer (and for final-result statements).
    pub guard_hints: bool,
    /// Students must send `student_attempt` for hints at or above this level...
    pub require_attempt_from_level: u8,
    /// ...in these subjects (compared folded; `*` means every subject). Empty: never required.
    pub require_attempt_subjects: Vec<String>,
    /// Moderation term lists by category (`distress`, `self_harm`, `abuse`, `cheating`); a
    /// category given here replaces its built-in list, an empty list turns it off.
    pub moderation: HashMap<String, Vec<String>>,
}
