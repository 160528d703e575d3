//! One enabled component of a target with the context its templates see:
//! what the documents and placement steps work on.

use minijinja::value::Value as JValue;

use super::memo::Fingerprints;
use super::nouns::PlannedComponent;
use crate::inventory::Component;

/// One enabled component of a target, with the context its templates see.
pub(super) struct Part<'a> {
    /// Its place in the plan.
    pub planned: &'a PlannedComponent,
    /// The component.
    pub component: &'a Component,
    /// The target's context plus `component`, `run` and its own `vars`.
    pub context: JValue,
    /// Fingerprints of its context's values (the memo's keys).
    pub prints: Fingerprints,
}
