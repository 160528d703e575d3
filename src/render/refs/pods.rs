//! References of pod templates: Secrets and ConfigMaps (env, envFrom,
//! volumes, with keys), pull secrets, the ServiceAccount, claims, and named
//! probe ports.

use serde_yaml::Value;

use super::{optional, seq, str_at, Ctx};
use crate::render::object::RenderedObject;

/// The pod template (with `metadata` and `spec`) of a built-in workload; a
/// Pod is its own.
pub(super) fn pod_template(o: &RenderedObject) -> Option<&Value> {
    let v = &o.value;
    let path: &[&str] = match (o.id.group(), o.id.kind.as_str()) {
        ("", "Pod") => &[],
        ("", "ReplicationController")
        | ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("batch", "Job") => &["spec", "template"],
        ("batch", "CronJob") => &["spec", "jobTemplate", "spec", "template"],
        _ => return None,
    };
    path.iter().try_fold(v, |v, k| v.get(*k)).filter(|t| t.get("spec").is_some())
}

/// The containers of a pod spec, init and ephemeral ones included.
pub(super) fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers", "ephemeralContainers"].into_iter().flat_map(move |k| seq(spec, &[k]))
}

/// Every reference of the object's pod template.
pub(super) fn check(ctx: &mut Ctx<'_, '_>) {
    let Some(spec) = pod_template(ctx.o).and_then(|t| t.get("spec")) else { return };
    for key in ["serviceAccountName", "serviceAccount"] {
        if let Some(sa) = str_at(spec, &[key]) {
            if !ctx.index.service_accounts.contains(sa) {
                let msg = format!("{} runs as ServiceAccount `{sa}` ({key}), which nothing creates", ctx.what());
                ctx.miss(
                    msg,
                    "render the ServiceAccount in the target, or drop the field to run as `default`",
                    needles(key, sa),
                );
            }
            break;
        }
    }
    for s in seq(spec, &["imagePullSecrets"]).filter_map(|s| str_at(s, &["name"])) {
        secret(ctx, s, "imagePullSecrets", "imagePullSecrets");
    }
    volumes(ctx, spec);
    for c in containers(spec) {
        container(ctx, c);
    }
}

/// `secret`, `configMap`, `projected` and `persistentVolumeClaim` volumes.
fn volumes(ctx: &mut Ctx<'_, '_>, spec: &Value) {
    for vol in seq(spec, &["volumes"]) {
        let name = str_at(vol, &["name"]).unwrap_or_default();
        if let Some(s) = vol.get("secret") {
            let where_ = format!("volume `{name}`");
            keyed_volume(ctx, s, ("secretName", "secret"), true, &where_);
        }
        if let Some(c) = vol.get("configMap") {
            let where_ = format!("volume `{name}`");
            keyed_volume(ctx, c, ("name", "configMap"), false, &where_);
        }
        for source in seq(vol, &["projected", "sources"]) {
            let where_ = format!("projected volume `{name}`");
            if let Some(s) = source.get("secret") {
                keyed_volume(ctx, s, ("name", "secret"), true, &where_);
            }
            if let Some(c) = source.get("configMap") {
                keyed_volume(ctx, c, ("name", "configMap"), false, &where_);
            }
        }
        if let Some(claim) = str_at(vol, &["persistentVolumeClaim", "claimName"]) {
            if !claim_resolves(ctx, claim) {
                let msg = format!(
                    "{} mounts PersistentVolumeClaim `{claim}` (volume `{name}`), which nothing creates",
                    ctx.what()
                );
                let help =
                    "render the claim in the target, or name a StatefulSet claim (`<template>-<statefulset>-<n>`)";
                ctx.miss(msg, help, needles("claimName", claim));
            }
        }
    }
}

/// A claim of the target, or one a StatefulSet's claim template makes.
fn claim_resolves(ctx: &Ctx<'_, '_>, claim: &str) -> bool {
    ctx.index.claims.contains(claim)
        || ctx.index.claim_templates.iter().any(|(t, sts)| {
            claim
                .strip_prefix(&format!("{t}-{sts}-"))
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        })
}

/// A Secret or ConfigMap volume source (`name_key` names the object) and its `items[].key`.
fn keyed_volume(ctx: &mut Ctx<'_, '_>, source: &Value, (name_key, field): (&str, &str), is_secret: bool, where_: &str) {
    let Some(name) = str_at(source, &[name_key]) else { return };
    let optional = optional(source);
    let keys: Vec<&str> = seq(source, &["items"]).filter_map(|i| str_at(i, &["key"])).collect();
    if keys.is_empty() {
        lookup(ctx, (is_secret, field), name, None, where_, optional);
    }
    for key in keys {
        lookup(ctx, (is_secret, field), name, Some(key), where_, optional);
    }
}

/// `env[].valueFrom`, `envFrom[]` and named probe ports of one container.
fn container(ctx: &mut Ctx<'_, '_>, c: &Value) {
    let cname = str_at(c, &["name"]).unwrap_or_default();
    for e in seq(c, &["env"]) {
        let var = str_at(e, &["name"]).unwrap_or_default();
        let where_ = format!("env `{var}` of container `{cname}`");
        for (field, is_secret) in [("secretKeyRef", true), ("configMapKeyRef", false)] {
            let Some(r) = e.get("valueFrom").and_then(|f| f.get(field)) else { continue };
            if let Some(name) = str_at(r, &["name"]) {
                lookup(ctx, (is_secret, field), name, str_at(r, &["key"]), &where_, optional(r));
            }
        }
    }
    for e in seq(c, &["envFrom"]) {
        let where_ = format!("envFrom of container `{cname}`");
        for (field, is_secret) in [("secretRef", true), ("configMapRef", false)] {
            let Some(r) = e.get(field) else { continue };
            if let Some(name) = str_at(r, &["name"]) {
                lookup(ctx, (is_secret, field), name, None, &where_, optional(r));
            }
        }
    }
    let ports: Vec<&str> = seq(c, &["ports"]).filter_map(|p| str_at(p, &["name"])).collect();
    for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
        for handler in ["httpGet", "tcpSocket"] {
            let Some(port) = c.get(probe).and_then(|p| p.get(handler)).and_then(|h| h.get("port")) else { continue };
            let Some(port) = port.as_str().filter(|p| p.parse::<u16>().is_err()) else { continue };
            if !ports.contains(&port) {
                let msg = format!(
                    "{} probes port `{port}` ({probe} of container `{cname}`), but the container has no port of that name{}",
                    ctx.what(),
                    if ports.is_empty() { String::new() } else { format!(" (it has `{}`)", ports.join("`, `")) }
                );
                ctx.miss(msg, "name the port under the container's `ports`, or probe a number", needles("port", port));
            }
        }
    }
}

/// Reports Secret `name` when nothing provides it (`field` names the reference in the template).
pub(super) fn secret(ctx: &mut Ctx<'_, '_>, name: &str, where_: &str, field: &str) {
    lookup(ctx, (true, field), name, None, where_, false);
}

/// Reports a Secret or ConfigMap `name` (key `key`) that nothing provides,
/// unless the reference is optional.
/// `field` is the key that writes the reference (`secretKeyRef`), where its line is found.
fn lookup(
    ctx: &mut Ctx<'_, '_>,
    (is_secret, field): (bool, &str),
    name: &str,
    key: Option<&str>,
    where_: &str,
    optional: bool,
) {
    if optional {
        return;
    }
    let (kind, known) = if is_secret {
        ("Secret", ctx.index.secrets.get(name))
    } else {
        ("ConfigMap", ctx.index.config_maps.get(name))
    };
    match (known, key) {
        (None, _) => {
            let what = match key {
                Some(k) => format!("key `{k}` of {kind} `{name}`"),
                None => format!("{kind} `{name}`"),
            };
            let msg = format!("{} reads {what} ({where_}), which nothing creates", ctx.what());
            let help = if is_secret {
                "declare the Secret in the inventory's `secrets:` (or render an ExternalSecret, a SealedSecret or a cert-manager Certificate that creates it), or mark the reference `optional: true`"
            } else {
                "render the ConfigMap in the target, or mark the reference `optional: true`"
            };
            let mut at = needles("name", name);
            at.push(field.to_owned());
            ctx.miss(msg, help, at);
        }
        (Some(keys), Some(k)) if !keys.has(k) => {
            let has = match keys {
                super::Keys::Only(ks) if !ks.is_empty() => {
                    format!("it has `{}`", ks.iter().map(String::as_str).collect::<Vec<_>>().join("`, `"))
                }
                _ => "it has none".to_owned(),
            };
            let msg = format!("{} reads key `{k}` of {kind} `{name}` ({where_}), but {has}", ctx.what());
            let help = format!("use one of its keys, or add `{k}` where the {kind} is declared");
            ctx.miss(msg, help, vec![format!("key: {k}"), field.to_owned()]);
        }
        _ => {}
    }
}

/// What a template line writing `key: value` holds, best first.
pub(super) fn needles(key: &str, value: &str) -> Vec<String> {
    vec![format!("{key}: {value}"), value.to_owned()]
}
