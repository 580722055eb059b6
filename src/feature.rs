//! The five AI features tutorq serves; their names are part of the public API and the prompt files.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    Hint,
    Explanation,
    StudyPlan,
    Evaluation,
    QuestionGen,
}

impl Feature {
    pub const ALL: [Feature; 5] = [
        Feature::Hint,
        Feature::Explanation,
        Feature::StudyPlan,
        Feature::Evaluation,
        Feature::QuestionGen,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Feature::Hint => "hint",
            Feature::Explanation => "explanation",
            Feature::StudyPlan => "study_plan",
            Feature::Evaluation => "evaluation",
            Feature::QuestionGen => "question_gen",
        }
    }

    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|f| f.as_str()).collect()
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown feature `{0}`")]
pub struct UnknownFeature(pub String);

impl FromStr for Feature {
    type Err = UnknownFeature;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownFeature(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for feature in Feature::ALL {
            assert_eq!(feature.as_str().parse::<Feature>().unwrap(), feature);
            let json = serde_json::to_string(&feature).unwrap();
            assert_eq!(json, format!("\"{feature}\""));
        }
        assert!("hints".parse::<Feature>().is_err());
    }
}
