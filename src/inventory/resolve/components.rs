//! Components and the agent: presets applied, stage, image, environment
//! references, manifests and overlays checked, positions kept for messages.

use std::collections::BTreeMap;

use super::{deep_merge, Resolver};
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::inventory::model::*;
use crate::inventory::raw::*;
use crate::inventory::yaml::YamlPath;

impl Resolver {
    /// `infrastructure` then `services`, each with its presets applied.
    pub(super) fn resolve_components(
        &mut self,
        raw: &RawInventory,
        stages: &[String],
        images: &BTreeMap<String, Image>,
        environments: &BTreeMap<String, Environment>,
    ) -> Vec<Component> {
        let env_names: Vec<String> = environments.keys().cloned().collect();
        let sections = [
            ("infrastructure", &raw.infrastructure, ComponentKind::Infrastructure),
            ("services", &raw.services, ComponentKind::Service),
        ];
        let mut components = Vec::new();
        // Presets copy their values into every component that uses them:
        // the copies share the document's node budget, so `use` of a large
        // preset many times cannot multiply memory.
        let mut expanded = 0usize;
        for (section, list, kind) in sections {
            for (i, c) in list.iter().enumerate() {
                let path = YamlPath::default().key(section).index(i);
                let (c, fields) = self.with_presets(&path, c, &raw.presets);
                expanded += expanded_size(&c);
                if expanded > crate::inventory::yaml::MAX_NODES {
                    self.error_at_value(
                        &path.key("use"),
                        format!(
                            "the components' values, with their presets applied, exceed {} values at component `{}`",
                            crate::inventory::yaml::MAX_NODES,
                            c.name
                        ),
                        "use smaller presets, or fewer of them: every `use` copies the preset's vars and overlays",
                    );
                    return components;
                }
                components.push(self.resolve_component(&path, &c, &fields, kind, stages, images, &env_names));
            }
        }
        components
    }

    /// `c` with the fields it leaves unset taken from its presets (a later
    /// preset over an earlier one; maps merge deeply), and where each field
    /// taken from a preset is written.
    pub(super) fn with_presets(
        &mut self,
        path: &YamlPath,
        c: &RawComponent,
        presets: &BTreeMap<String, RawPreset>,
    ) -> (RawComponent, Fields) {
        let mut acc = RawPreset::default();
        let mut fields = Fields::new();
        for (j, name) in c.uses.iter().enumerate() {
            let Some(p) = presets.get(name) else {
                let help = match did_you_mean(name, presets.keys().map(String::as_str)) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None if presets.is_empty() => "define it under `presets:`".to_owned(),
                    None => format!("presets: {}", presets.keys().cloned().collect::<Vec<_>>().join(", ")),
                };
                self.error_at_value(
                    &path.key("use").index(j),
                    format!("component `{}` uses unknown preset `{name}`", c.name),
                    help,
                );
                continue;
            };
            let at = YamlPath::default().key("presets").key(name);
            macro_rules! take {
                ($field:ident, $key:literal) => {
                    if p.$field.is_some() {
                        acc.$field = p.$field.clone();
                        fields.insert($key, at.key($key));
                    }
                };
            }
            take!(stage, "stage");
            take!(depends_on, "dependsOn");
            take!(when, "when");
            take!(envs, "envs");
            take!(image, "image");
            take!(manifests, "manifests");
            acc.overlays = merge_overlays(std::mem::take(&mut acc.overlays), &p.overlays);
            acc.vars = merge_vars(acc.vars.take(), p.vars.as_ref());
        }
        for (key, set) in [
            ("stage", c.stage.is_some()),
            ("dependsOn", c.depends_on.is_some()),
            ("when", c.when.is_some()),
            ("envs", c.envs.is_some()),
            ("image", c.image.is_some()),
            ("manifests", c.manifests.is_some()),
        ] {
            if set {
                fields.remove(key);
            }
        }
        let merged = RawComponent {
            name: c.name.clone(),
            uses: c.uses.clone(),
            stage: c.stage.clone().or(acc.stage),
            depends_on: c.depends_on.clone().or(acc.depends_on),
            when: c.when.clone().or(acc.when),
            envs: c.envs.clone().or(acc.envs),
            image: c.image.clone().or(acc.image),
            manifests: c.manifests.clone().or(acc.manifests),
            overlays: merge_overlays(acc.overlays, &c.overlays),
            vars: merge_vars(acc.vars, c.vars.as_ref()),
        };
        (merged, fields)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn resolve_component(
        &mut self,
        path: &YamlPath,
        raw: &RawComponent,
        fields: &Fields,
        kind: ComponentKind,
        stages: &[String],
        images: &BTreeMap<String, Image>,
        envs: &[String],
    ) -> Component {
        self.check_name(&path.key("name"), "component name", &raw.name);
        let field = |key: &'static str| fields.get(key).cloned().unwrap_or_else(|| path.key(key));
        let default_stage = match kind {
            ComponentKind::Infrastructure => stages.first().cloned().unwrap_or_default(),
            _ => "internal".to_owned(),
        };
        let stage = raw.stage.clone().unwrap_or(default_stage);
        let stage_index = match stages.iter().position(|s| *s == stage) {
            Some(i) => i,
            None => {
                let help = match did_you_mean(&stage, stages.iter().map(String::as_str)) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("stages are: {}", stages.join(", ")),
                };
                let (at, msg) = if raw.stage.is_some() {
                    (field("stage"), format!("component `{}` has unknown stage `{stage}`", raw.name))
                } else {
                    (
                        path.key("name"),
                        format!("component `{}` defaults to stage `{stage}`, which is not in `stages`", raw.name),
                    )
                };
                self.error_at_value(&at, msg, help);
                0
            }
        };
        self.check_image(&field("image"), raw.image.as_deref(), images);
        if let Some(list) = &raw.envs {
            for (i, e) in list.iter().enumerate() {
                self.check_env_ref(&field("envs").index(i), e, envs);
            }
        }
        if let Some(when) = &raw.when {
            if when.trim().is_empty() {
                self.error_at_value(
                    &field("when"),
                    "`when` is empty",
                    "write an expression such as `env != 'staging'`, or remove `when`",
                );
            }
        }
        let manifests = match &raw.manifests {
            Some(list) => self.resolve_manifests(&field("manifests").parent(), &raw.name, list),
            None => {
                let message = if raw.uses.is_empty() {
                    format!("missing required key `manifests` in `{path}`")
                } else {
                    format!("component `{}` has no `manifests`, and its presets give none", raw.name)
                };
                let file = self.file_of(path);
                let d = Diagnostic::error(&file.path, Some(self.main.doc.key_location(path)), message)
                    .with_source(&file.text)
                    .with_help("add `manifests:` (or `use` a preset that has them); see docs/inventory.md");
                self.diagnostics.push(d);
                Vec::new()
            }
        };
        let overlays = self.resolve_overlays(&path.key("overlays"), &raw.overlays, envs);
        let mut positions = self.component_positions(path, raw.overlays.iter());
        if let Some(at) = fields.get("when") {
            positions.insert(YamlPath::default().key("when"), self.main.doc.value_location(at));
        }
        Component {
            name: raw.name.clone(),
            kind,
            stage,
            stage_index,
            depends_on: raw.depends_on.clone().unwrap_or_default(),
            when: raw.when.clone(),
            envs: raw.envs.clone(),
            image: raw.image.clone(),
            manifests,
            overlays,
            vars: raw.vars.clone().unwrap_or_default(),
            presets: raw.uses.clone(),
            file: self.file_of(path).path.clone(),
            line: self.main.doc.key_location(path).line,
            positions,
        }
    }

    pub(super) fn component_positions<'k>(
        &self,
        path: &YamlPath,
        overlays: impl Iterator<Item = (&'k String, &'k RawOverlay)>,
    ) -> BTreeMap<YamlPath, crate::diagnostic::Location> {
        let mut positions = BTreeMap::new();
        let at = |rel: &YamlPath| self.main.doc.value_location(&path.join(rel));
        let when = YamlPath::default().key("when");
        positions.insert(when.clone(), at(&when));
        for (env, o) in overlays {
            let overlay = YamlPath::default().key("overlays").key(env);
            positions.insert(overlay.clone(), at(&overlay));
            for (rel, _) in o.templates() {
                let full = overlay.join(&rel);
                positions.insert(full.clone(), at(&full));
            }
        }
        positions
    }

    pub(super) fn resolve_agent(
        &mut self,
        raw: &RawAgent,
        stages: &[String],
        images: &BTreeMap<String, Image>,
        envs: &BTreeMap<String, Environment>,
    ) -> Component {
        let path = YamlPath::default().key("agent");
        self.check_image(&path.key("image"), raw.image.as_deref(), images);
        let env_names: Vec<String> = envs.keys().cloned().collect();
        if let Some(list) = &raw.envs {
            for (i, e) in list.iter().enumerate() {
                let p = path.key("envs").index(i);
                if self.check_env_ref(&p, e, &env_names) && !envs[e].slots {
                    self.error_at_value(
                        &p,
                        format!("the agent runs only in slot environments; `{e}` is not one"),
                        "add `slots: true` to it, or remove it from agent.envs",
                    );
                }
            }
        }
        let manifests = self.resolve_manifests(&path, "agent", &raw.manifests);
        let overlays = self.resolve_overlays(&path.key("overlays"), &raw.overlays, &env_names);
        let positions = self.component_positions(&path, raw.overlays.iter());
        Component {
            name: "agent".into(),
            kind: ComponentKind::Agent,
            stage: AGENT_STAGE.into(),
            stage_index: stages.len(),
            depends_on: Vec::new(),
            when: None,
            envs: raw.envs.clone(),
            image: raw.image.clone(),
            manifests,
            overlays,
            vars: serde_yaml::Mapping::new(),
            presets: Vec::new(),
            file: self.file_of(&path).path.clone(),
            line: self.main.doc.key_location(&path).line,
            positions,
        }
    }

    pub(super) fn resolve_overlays(
        &mut self,
        path: &YamlPath,
        raw: &BTreeMap<String, RawOverlay>,
        envs: &[String],
    ) -> BTreeMap<String, Overlay> {
        let mut out = BTreeMap::new();
        for (env, o) in raw {
            let p = path.key(env);
            self.check_env_ref(&p, env, envs);
            for (i, m) in o.pvc_mounts.iter().enumerate() {
                if !m.mount_path.starts_with('/') {
                    self.error_at_value(
                        &p.key("pvcMounts").index(i).key("mountPath"),
                        format!("mountPath `{}` is not absolute", m.mount_path),
                        "start it with `/`",
                    );
                }
            }
            for (i, k) in o.drop_kinds.iter().enumerate() {
                if k.trim().is_empty() {
                    self.error_at_value(
                        &p.key("dropKinds").index(i),
                        "empty kind in dropKinds",
                        "write a kind such as `Ingress`",
                    );
                }
            }
            out.insert(env.clone(), o.clone());
        }
        out
    }
}

/// Where fields a component takes from a preset are written (`stage` →
/// `presets.web.stage`).
type Fields = BTreeMap<&'static str, YamlPath>;

/// `over`'s overlays over `base`'s, per environment and field, on the YAML
/// values (so a new overlay field merges with no code here): a mapping
/// given merges deeply, any other value given replaces, and an empty list
/// or mapping counts as not given.
pub(super) fn merge_overlays(
    mut base: BTreeMap<String, RawOverlay>,
    over: &BTreeMap<String, RawOverlay>,
) -> BTreeMap<String, RawOverlay> {
    use serde_yaml::Value;
    let mapping = |o: &RawOverlay| match serde_yaml::to_value(o) {
        Ok(Value::Mapping(m)) => m,
        _ => unreachable!("an overlay serializes to a mapping"),
    };
    for (env, o) in over {
        let b = base.entry(env.clone()).or_default();
        let mut merged = mapping(b);
        for (field, v) in mapping(o) {
            match (merged.get_mut(&field), v) {
                (_, Value::Null) => {}
                (_, Value::Sequence(l)) if l.is_empty() => {}
                (_, Value::Mapping(m)) if m.is_empty() => {}
                (Some(Value::Mapping(into)), Value::Mapping(m)) => deep_merge(into, &m),
                (_, v) => {
                    merged.insert(field, v);
                }
            }
        }
        *b = serde_yaml::from_value(Value::Mapping(merged)).expect("merged overlay fields keep their types");
    }
    base
}

/// `over` merged deeply over `base`.
fn merge_vars(base: Option<serde_yaml::Mapping>, over: Option<&serde_yaml::Mapping>) -> Option<serde_yaml::Mapping> {
    match (base, over) {
        (Some(mut b), Some(o)) => {
            deep_merge(&mut b, o);
            Some(b)
        }
        (b, o) => o.cloned().or(b),
    }
}

/// Values a component holds once its presets are applied: its `vars` and
/// its overlays' `vars`.
fn expanded_size(c: &RawComponent) -> usize {
    let size = |m: &Option<serde_yaml::Mapping>| {
        m.as_ref().map_or(0, |m| crate::inventory::yaml::value_size(&serde_yaml::Value::Mapping(m.clone())))
    };
    1 + size(&c.vars) + c.overlays.values().map(|o| size(&o.vars)).sum::<usize>()
}
