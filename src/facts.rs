//! What every task carries from intake to each of its records: whose it is (the user and their
//! role), what it asks for (the feature), and the ids that tie its records together. Typed once
//! here; the task record, the history row and the audit event write them as text at their own
//! edge.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::feature::Feature;

/// What a caller may do: students and teachers use the AI features, admins operate, services are
/// the platform's own backends and schedulers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Student,
    Teacher,
    Admin,
    Service,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Student, Role::Teacher, Role::Admin, Role::Service];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Student => "student",
            Role::Teacher => "teacher",
            Role::Admin => "admin",
            Role::Service => "service",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("`{s}` is not a role (expected student, teacher, admin or service)")
            })
    }
}

/// The facts of one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFacts {
    pub task_id: String,
    /// The HTTP request that created the task (empty when none did).
    pub request_id: String,
    pub user_id: String,
    pub role: Role,
    /// The AI feature asked for; `None` for a job of another kind (a webhook delivery).
    pub feature: Option<Feature>,
}

impl TaskFacts {
    /// The feature's name, empty for a job of another kind (how the records store it).
    pub fn feature_name(&self) -> &'static str {
        self.feature.map_or("", Feature::as_str)
    }
}

impl TaskFacts {
    /// The facts as a task record stores them (text). A role the record cannot name is read
    /// as the least privileged one; an empty or unknown feature as none.
    pub fn from_stored(
        task_id: String,
        request_id: String,
        user_id: String,
        role: &str,
        feature: &str,
    ) -> Self {
        Self {
            task_id,
            request_id,
            user_id,
            role: role.parse().unwrap_or(Role::Student),
            feature: feature.parse().ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_text_reads_back_typed() {
        let facts = TaskFacts::from_stored("t".into(), "r".into(), "u".into(), "teacher", "");
        assert_eq!((facts.role, facts.feature), (Role::Teacher, None));
        assert_eq!(facts.feature_name(), "");
        let facts = TaskFacts::from_stored("t".into(), "r".into(), "u".into(), "?", "study_plan");
        assert_eq!(facts.role, Role::Student);
        assert_eq!(facts.feature, Some(Feature::StudyPlan));
        assert_eq!(facts.feature_name(), "study_plan");
    }
}
