//! The checks over a target's placed objects: its own Namespace object
//! (added, or refused when the environment does not manage it), the policy
//! ([`super::policy`]), two objects sharing one file, and every reference
//! resolving ([`super::refs`]).

use std::collections::BTreeMap;

use super::object::RenderedObject;
use super::place::{namespace_object, scope_rules, Placement};
use super::policy::{self, Rules};
use super::refs::{self, Provided};
use crate::diagnostic::{Diagnostic, Diagnostics, Location};
use crate::template::Engine;

impl Placement<'_> {
    /// Adds the target's Namespace object when the environment manages its
    /// namespace and no template renders it; refuses one a template renders
    /// when the environment does not (`manageNamespace: false`).
    pub fn own_namespace(&self, objects: &mut Vec<RenderedObject>) -> Result<(), Diagnostics> {
        let own = objects
            .iter()
            .position(|o| o.id.kind == "Namespace" && o.id.name == self.namespace && o.id.group().is_empty());
        match (own, self.env.manage_namespace) {
            (None, true) => objects.push(namespace_object(self.inventory, self.target, self.namespace)),
            (Some(i), false) => {
                let o = &objects[i];
                return Err(Diagnostics(vec![Diagnostic::error(
                    o.template.clone().unwrap_or_else(|| self.inventory.file.clone()),
                    None,
                    format!(
                        "component `{}` renders Namespace `{}`, but environment `{}` has `manageNamespace: false` (target {})",
                        o.component, self.namespace, self.env.name, self.target
                    ),
                )
                .with_help("the namespace belongs to someone else: drop the Namespace from the template, or remove `manageNamespace: false`")]));
            }
            _ => {}
        }
        Ok(())
    }

    /// Every policy violation and every pair of objects that would share a
    /// file, reported together.
    pub fn check(&self, objects: &[RenderedObject]) -> Result<(), Diagnostics> {
        let inventory = self.inventory;
        let mut diags = Diagnostics::default();
        let rules = Rules {
            slot_env: self.env.slots,
            namespace: self.namespace,
            allow_plain_secrets: inventory.policy.allow_plain_secrets,
            scopes: scope_rules(inventory),
        };
        for v in policy::check(objects, rules) {
            let o = &objects[v.object];
            let file = o.template.clone().unwrap_or_else(|| inventory.file.clone());
            diags.push(
                Diagnostic::error(
                    file,
                    None,
                    format!("{} (target {}, component `{}`)", v.message, self.target, o.component),
                )
                .with_help(v.help),
            );
        }
        let mut paths: BTreeMap<String, usize> = BTreeMap::new();
        for (i, o) in objects.iter().enumerate() {
            if let Some(first) = paths.insert(o.path(), i) {
                if objects[first].id != o.id {
                    diags.push(
                        Diagnostic::error(
                            o.template.clone().unwrap_or_default(),
                            None,
                            format!("{} and {} would share the file {}", objects[first].id, o.id, o.path()),
                        )
                        .with_help("give them different names"),
                    );
                }
            }
        }
        if diags.has_errors() {
            return Err(diags);
        }
        Ok(())
    }

    /// Every reference of `objects` that resolves to nothing, each at the
    /// line of its template that most likely writes it, all together.
    pub fn references(
        &self,
        engine: &Engine,
        objects: &[RenderedObject],
        provided: &Provided,
    ) -> Result<(), Diagnostics> {
        let misses = refs::check(objects, &self.inventory.prerequisites, provided);
        if misses.is_empty() {
            return Ok(());
        }
        let mut diags = Diagnostics::default();
        for m in misses {
            let o = &objects[m.object];
            let file = o.template.clone().unwrap_or_else(|| self.inventory.file.clone());
            let source = o.template.as_deref().and_then(|t| engine.source(t));
            let at =
                source.and_then(|s| refs::locate(s, &o.id.kind, &m.needles)).map(|(line, col)| Location { line, col });
            let message = format!("{} (target {}, component `{}`)", m.message, self.target, o.component);
            let mut d = Diagnostic::error(file, at, message).with_help(m.help);
            if let Some(s) = source {
                d = d.with_source(s);
            }
            diags.push(d);
        }
        Err(diags)
    }
}
