//! Checks over the dependency graph of components: references, stage order
//! and cycles. Pure functions over the model; the resolver turns each finding
//! into a positioned diagnostic.

use std::collections::BTreeMap;

use super::model::Component;
use crate::diagnostic::did_you_mean;

/// One problem in a component's `dependsOn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencyProblem {
    /// The component whose `dependsOn` is wrong.
    pub component: String,
    /// Index of the offending entry, when one entry is to blame.
    pub dep_index: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: String,
}

/// Every problem in the components' `dependsOn` lists, in file order.
pub fn dependency_problems(components: &[Component]) -> Vec<DependencyProblem> {
    let by_name: BTreeMap<&str, &Component> = components.iter().map(|c| (c.name.as_str(), c)).collect();
    let mut out = Vec::new();
    for c in components {
        for (i, dep) in c.depends_on.iter().enumerate() {
            let problem = |message: String, help: String| DependencyProblem {
                component: c.name.clone(),
                dep_index: Some(i),
                message,
                help,
            };
            match by_name.get(dep.as_str()) {
                None => {
                    let help = match did_you_mean(dep, by_name.keys().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => "list a component defined under infrastructure or services".into(),
                    };
                    out.push(problem(format!("component `{}` depends on unknown component `{dep}`", c.name), help));
                }
                Some(_) if *dep == c.name => {
                    out.push(problem(
                        format!("component `{}` depends on itself", c.name),
                        "remove it from its own dependsOn".into(),
                    ));
                }
                Some(target) if target.stage_index > c.stage_index => {
                    out.push(problem(
                        format!(
                            "component `{}` (stage `{}`) depends on `{dep}` in the later stage `{}`",
                            c.name, c.stage, target.stage
                        ),
                        format!(
                            "move `{dep}` to stage `{}` or earlier, or `{}` to stage `{}` or later",
                            c.stage, c.name, target.stage
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
    }
    if let Some(cycle) = find_cycle(components) {
        out.push(DependencyProblem {
            component: cycle[0].clone(),
            dep_index: None,
            message: format!("dependency cycle: {}", cycle.join(" -> ")),
            help: "remove one of these dependsOn entries".into(),
        });
    }
    out
}

/// The first dependency cycle found (in file order), as `[a, b, …, a]`.
pub fn find_cycle(components: &[Component]) -> Option<Vec<String>> {
    let index: BTreeMap<&str, usize> = components.iter().enumerate().map(|(i, c)| (c.name.as_str(), i)).collect();
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks = vec![Mark::New; components.len()];
    let mut stack: Vec<usize> = Vec::new();

    fn visit(
        n: usize,
        components: &[Component],
        index: &BTreeMap<&str, usize>,
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
    ) -> Option<Vec<String>> {
        marks[n] = Mark::Active;
        stack.push(n);
        for dep in &components[n].depends_on {
            let Some(&m) = index.get(dep.as_str()) else { continue };
            if m == n {
                continue; // self-dependency is reported on its own
            }
            match marks[m] {
                Mark::Active => {
                    let start = stack.iter().position(|&s| s == m).unwrap_or(0);
                    let mut cycle: Vec<String> = stack[start..].iter().map(|&s| components[s].name.clone()).collect();
                    cycle.push(components[m].name.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(m, components, index, marks, stack) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks[n] = Mark::Done;
        None
    }

    for n in 0..components.len() {
        if marks[n] == Mark::New {
            if let Some(c) = visit(n, components, &index, &mut marks, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}
