//! Images that render empty. `image: registry/app:` (an empty tag) makes the
//! kubelet pull whatever `latest` is, and an empty repository pulls nothing:
//! both are errors naming the component and the image, never a deployment.
//! Checked twice: the inventory's `images` a component uses (before its
//! templates render), and every container image in the rendered objects.
//! [`image_uses`] lists those container images (`codex-k8s images`).

use std::path::Path;

use serde_yaml::Value;

use super::nouns::Target;
use super::RenderedObject;
use crate::diagnostic::Diagnostic;
use crate::inventory::{Component, Inventory};
use crate::template::TargetContext;

/// Said wherever a value rendered empty: the usual cause in a Helm port.
const EMPTY_HELP: &str = "a value in the image rendered empty; note that Jinja's `default(x)` replaces only undefined values — write `default(x, true)` to replace \"\" and none as Helm's `default` does, or `required(v, \"…\")` to insist";

/// The part of `image` (a `repository:tag` or `repository@digest` text) that
/// is empty, if any.
pub fn empty_part(image: &str) -> Option<&'static str> {
    let image = image.trim();
    if image.is_empty() {
        return Some("empty image");
    }
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    if digest.is_some_and(|d| d.trim().is_empty()) {
        return Some("an empty digest");
    }
    // A `:` after the last `/` separates the tag (a registry port comes before a `/`).
    let last = name.rsplit('/').next().unwrap_or(name);
    let (repo_last, tag) = match last.split_once(':') {
        Some((r, t)) => (r, Some(t)),
        None => (last, None),
    };
    if name.starts_with('/') || name.starts_with(':') || repo_last.is_empty() || name.split('/').any(str::is_empty) {
        return Some("an empty repository");
    }
    if tag.is_some_and(|t| t.trim().is_empty()) {
        return Some("an empty tag");
    }
    None
}

/// The inventory image of component `c` when its repository or tag rendered
/// empty for this target: an error at the templated field in services.yaml.
pub fn check_component_image(
    inventory: &Inventory,
    ctx: &TargetContext,
    c: &Component,
    target: &Target,
) -> Option<Diagnostic> {
    let name = c.image.as_ref()?;
    let part = ctx.empty_images.get(name)?;
    let image = inventory.images.get(name)?;
    let (text, at) =
        if *part == "repository" { (&image.repository, image.positions.0) } else { (&image.tag, image.positions.1) };
    Some(
        inventory
            .diagnostic(
                &inventory.file,
                at,
                format!(
                    "image `{name}` of component `{}` renders an empty {part} in target {target} (`{text}` gave `{}`)",
                    c.name,
                    ctx.images.get(name).map(String::as_str).unwrap_or_default()
                ),
            )
            .with_help(EMPTY_HELP),
    )
}

/// Every container of `object` (any `containers`, `initContainers` or
/// `ephemeralContainers` list in it) whose `image` has an empty part.
pub fn check_containers(object: &Value, template: &Path, component: &str, target: &Target) -> Vec<Diagnostic> {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default();
    let name = object.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or_default();
    let mut out = Vec::new();
    walk(object, &mut |container| {
        let Some(image) = container.get("image") else { return };
        let text = match image {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            _ => return,
        };
        if let Some(part) = empty_part(&text) {
            let cname = container.get("name").and_then(Value::as_str).unwrap_or("?");
            let what =
                if part == "empty image" { "an empty image".to_owned() } else { format!("image `{text}` with {part}") };
            out.push(
                Diagnostic::error(
                    template,
                    None,
                    format!(
                        "container `{cname}` of {kind} `{name}` (component `{component}`, target {target}) has {what}"
                    ),
                )
                .with_help(EMPTY_HELP),
            );
        }
    });
    out
}

/// One container of a rendered object and the image it runs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct ImageUse {
    /// The image reference as rendered (`repository:tag`, `…@digest`).
    #[serde(skip)]
    pub image: String,
    /// The component that rendered the object.
    pub component: String,
    /// The object's kind.
    pub kind: String,
    /// The object's name.
    pub name: String,
    /// The container's name.
    pub container: String,
}

/// Every container image of `objects` (`containers`, `initContainers` and
/// `ephemeralContainers` at any depth: Pods, workload and Job templates,
/// CronJob job templates, custom resources), sorted by image then use.
pub fn image_uses(objects: &[RenderedObject]) -> Vec<ImageUse> {
    let mut out = Vec::new();
    for o in objects {
        walk(&o.value, &mut |container| {
            let Some(Value::String(image)) = container.get("image") else { return };
            out.push(ImageUse {
                image: image.trim().to_owned(),
                component: o.component.clone(),
                kind: o.id.kind.clone(),
                name: o.id.name.clone(),
                container: container.get("name").and_then(Value::as_str).unwrap_or_default().to_owned(),
            });
        });
    }
    out.sort();
    out.dedup();
    out
}

fn walk(value: &Value, f: &mut impl FnMut(&serde_yaml::Mapping)) {
    match value {
        Value::Mapping(m) => {
            for (k, v) in m {
                let is_list = matches!(k.as_str(), Some("containers" | "initContainers" | "ephemeralContainers"));
                if let (true, Value::Sequence(items)) = (is_list, v) {
                    for item in items {
                        if let Value::Mapping(c) = item {
                            f(c);
                        }
                    }
                }
                walk(v, f);
            }
        }
        Value::Sequence(items) => items.iter().for_each(|v| walk(v, f)),
        Value::Tagged(t) => walk(&t.value, f),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_parts_are_found() {
        for (image, part) in [
            ("", Some("empty image")),
            ("  ", Some("empty image")),
            ("registry.example.com/shop/api:", Some("an empty tag")),
            ("registry.example.com/shop/api: ", Some("an empty tag")),
            (":1.0", Some("an empty repository")),
            ("registry.example.com/:1.0", Some("an empty repository")),
            ("registry.example.com//api:1", Some("an empty repository")),
            ("api@", Some("an empty digest")),
            ("api:@sha256:abc", Some("an empty tag")),
            ("api", None),
            ("api:1.0", None),
            ("localhost:5000/api", None),
            ("localhost:5000/api:1.0", None),
            ("api@sha256:0123", None),
            ("api:1.0@sha256:0123", None),
        ] {
            assert_eq!(empty_part(image), part, "{image:?}");
        }
    }

    #[test]
    fn every_container_list_is_checked() {
        let object: Value = serde_yaml::from_str(
            "kind: CronJob\nmetadata: {name: c}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          initContainers: [{name: i, image: 'a:'}]\n          containers: [{name: m, image: a:1}, {name: n, image: null}]\n",
        )
        .unwrap();
        let target = Target { env: "dev".into(), slot: None };
        let found = check_containers(&object, Path::new("t.j2"), "api", &target);
        let messages: Vec<&str> = found.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(
            messages[0].contains(
                "container `i` of CronJob `c` (component `api`, target dev) has image `a:` with an empty tag"
            ),
            "{}",
            messages[0]
        );
        assert!(
            messages[1].contains("container `n` of CronJob `c` (component `api`, target dev) has an empty image"),
            "{}",
            messages[1]
        );
    }
}
