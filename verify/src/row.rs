//! One line of the report: a claim, what was measured, the bound, pass/fail.

use serde::Serialize;

/// How the measured value must relate to the bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Relation {
    /// Passes when `measured ≤ bound` (errors, gaps, deviations).
    AtMost,
    /// Passes when `measured ≥ bound` (margins, rates, counts).
    AtLeast,
}

/// One checked claim.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// The check it belongs to, e.g. `"1. Unbiasedness"`.
    pub check: &'static str,
    /// What is claimed, in words.
    pub claim: String,
    /// The paper's equation or statement, e.g. `"Eq. 6"`.
    pub equation: &'static str,
    /// The setting: function, a, m, number of draws, …
    pub setting: String,
    /// The measured value.
    pub measured: f64,
    /// The bound it is held to, with its justification in the check's docs.
    pub bound: f64,
    /// Which side of the bound passes.
    pub relation: Relation,
    /// Whether it passed (a NaN measurement never passes).
    pub pass: bool,
}

impl Row {
    fn new(
        check: &'static str,
        claim: impl Into<String>,
        equation: &'static str,
        setting: impl Into<String>,
        measured: f64,
        bound: f64,
        relation: Relation,
    ) -> Self {
        let pass = match relation {
            Relation::AtMost => measured <= bound,
            Relation::AtLeast => measured >= bound,
        };
        Row {
            check,
            claim: claim.into(),
            equation,
            setting: setting.into(),
            measured,
            bound,
            relation,
            pass,
        }
    }

    /// A row that passes when `measured ≤ bound`.
    pub fn at_most(
        check: &'static str,
        claim: impl Into<String>,
        equation: &'static str,
        setting: impl Into<String>,
        measured: f64,
        bound: f64,
    ) -> Self {
        Self::new(
            check,
            claim,
            equation,
            setting,
            measured,
            bound,
            Relation::AtMost,
        )
    }

    /// A row that passes when `measured ≥ bound`.
    pub fn at_least(
        check: &'static str,
        claim: impl Into<String>,
        equation: &'static str,
        setting: impl Into<String>,
        measured: f64,
        bound: f64,
    ) -> Self {
        Self::new(
            check,
            claim,
            equation,
            setting,
            measured,
            bound,
            Relation::AtLeast,
        )
    }
}
