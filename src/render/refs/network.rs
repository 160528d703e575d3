//! References between objects: Service selectors and named target ports,
//! Ingress backends and TLS Secrets, HorizontalPodAutoscaler scale targets,
//! PodDisruptionBudget selectors, cert-manager issuers.

use serde_yaml::{Mapping, Value};

use super::pods::{containers, needles, secret};
use super::{seq, str_at, Ctx};

/// The cert-manager issuer an Ingress annotation names: (kind, name).
pub(super) fn cert_manager_issuer(v: &Value) -> Option<(&'static str, &str)> {
    let annotations = v.get("metadata")?.get("annotations")?;
    if let Some(n) = str_at(annotations, &["cert-manager.io/cluster-issuer"]) {
        return Some(("ClusterIssuer", n));
    }
    str_at(annotations, &["cert-manager.io/issuer"]).map(|n| ("Issuer", n))
}

/// The references of a Service, Ingress, HPA, PDB or Certificate.
pub(super) fn check(ctx: &mut Ctx<'_, '_>) {
    let v = &ctx.o.value;
    match (ctx.o.id.group(), ctx.o.id.kind.as_str()) {
        ("", "Service") => service(ctx, v),
        ("networking.k8s.io", "Ingress") => ingress(ctx, v),
        ("autoscaling", "HorizontalPodAutoscaler") => scale_target(ctx, v),
        ("policy", "PodDisruptionBudget") => {
            if let Some(selector) = v.get("spec").and_then(|s| s.get("selector")) {
                if selects_none(ctx, selector) {
                    let msg = format!("{} selects no pod of the target ({})", ctx.what(), flow(selector));
                    ctx.miss(msg, "match the labels of a workload's pod template", selector_needles(selector));
                }
            }
        }
        ("cert-manager.io", "Certificate") => {
            if let (Some(kind), Some(name)) = (
                str_at(v, &["spec", "issuerRef", "kind"]).or(Some("Issuer")),
                str_at(v, &["spec", "issuerRef", "name"]),
            ) {
                namespaced_issuer(ctx, kind, name);
            }
        }
        _ => {}
    }
}

/// A namespaced cert-manager `Issuer` must be an object of the target (a
/// ClusterIssuer is a prerequisite, `cluster.rs`).
fn namespaced_issuer(ctx: &mut Ctx<'_, '_>, kind: &str, name: &str) {
    if kind == "Issuer" && !ctx.index.has_object(Some("cert-manager.io"), "Issuer", name) {
        let msg = format!("{} names cert-manager Issuer `{name}`, which nothing creates", ctx.what());
        ctx.miss(
            msg,
            "render the Issuer in the target, or use a ClusterIssuer declared under prerequisites.clusterIssuers",
            needles("issuer", name),
        );
    }
}

/// The selector selects some pod template, and named target ports are ports of the pods it selects.
fn service(ctx: &mut Ctx<'_, '_>, v: &Value) {
    let Some(spec) = v.get("spec") else { return };
    if str_at(spec, &["type"]) == Some("ExternalName") {
        return;
    }
    let Some(selector) = spec.get("selector").and_then(Value::as_mapping).filter(|m| !m.is_empty()) else { return };
    let pods: Vec<&Value> = ctx.index.pods.iter().copied().filter(|p| matches_labels(selector, labels(p))).collect();
    if pods.is_empty() {
        let sel = Value::Mapping(selector.clone());
        let msg = format!("{} selects no pod of the target ({})", ctx.what(), flow(&sel));
        ctx.miss(msg, "match the labels of a workload's pod template", selector_needles(&sel));
        return;
    }
    for port in seq(spec, &["ports"]) {
        let Some(target) = port.get("targetPort").and_then(Value::as_str).filter(|t| t.parse::<u16>().is_err()) else {
            continue;
        };
        let named = pods.iter().any(|p| {
            containers(&p["spec"]).any(|c| seq(c, &["ports"]).any(|cp| str_at(cp, &["name"]) == Some(target)))
        });
        if !named {
            let msg = format!(
                "{} targets port `{target}`, but no container of the pods it selects has a port of that name",
                ctx.what()
            );
            ctx.miss(msg, "name the container port, or target it by number", needles("targetPort", target));
        }
    }
}

/// Backends (Service and port) and TLS Secrets; the issuer of the cert-manager annotation.
fn ingress(ctx: &mut Ctx<'_, '_>, v: &Value) {
    let issuer = cert_manager_issuer(v);
    if let Some((kind, name)) = issuer {
        namespaced_issuer(ctx, kind, name);
    }
    for tls in seq(v, &["spec", "tls"]) {
        if let Some(name) = str_at(tls, &["secretName"]) {
            secret(ctx, name, "TLS", "secretName");
        }
    }
    let default = v.get("spec").and_then(|s| s.get("defaultBackend"));
    let paths = seq(v, &["spec", "rules"]).flat_map(|r| seq(r, &["http", "paths"])).filter_map(|p| p.get("backend"));
    for backend in default.into_iter().chain(paths) {
        if let Some(r) = backend.get("resource") {
            let (kind, name) = (str_at(r, &["kind"]).unwrap_or_default(), str_at(r, &["name"]).unwrap_or_default());
            if !ctx.index.has_object(str_at(r, &["apiGroup"]).or(Some("")), kind, name) {
                let msg = format!("{} routes to {kind} `{name}`, which nothing creates", ctx.what());
                ctx.miss(msg, "render it in the target", needles("name", name));
            }
        }
        let Some(svc) = backend.get("service") else { continue };
        let Some(name) = str_at(svc, &["name"]) else { continue };
        let Some(spec) = ctx.index.services.get(name).copied() else {
            let msg = format!("{} routes to Service `{name}`, which nothing creates", ctx.what());
            ctx.miss(msg, "render the Service in the target", needles("name", name));
            continue;
        };
        backend_port(ctx, name, spec, svc.get("port"));
    }
}

/// The port of an Ingress backend is a port of its Service (by name or number).
fn backend_port(ctx: &mut Ctx<'_, '_>, service: &str, spec: &Value, port: Option<&Value>) {
    let Some(port) = port else { return };
    let ports: Vec<&Value> = seq(spec, &["ports"]).collect();
    let (found, shown, at) = if let Some(name) = str_at(port, &["name"]) {
        (ports.iter().any(|p| str_at(p, &["name"]) == Some(name)), format!("`{name}`"), format!("name: {name}"))
    } else if let Some(n) = port.get("number").and_then(Value::as_u64) {
        (ports.iter().any(|p| p.get("port").and_then(Value::as_u64) == Some(n)), n.to_string(), format!("number: {n}"))
    } else {
        return;
    };
    if !found {
        let has: Vec<String> =
            ports.iter().map(|p| str_at(p, &["name"]).map(str::to_owned).unwrap_or_else(|| flow(&p["port"]))).collect();
        let msg = format!(
            "{} routes to port {shown} of Service `{service}`, which has no such port (it has {})",
            ctx.what(),
            if has.is_empty() { "none".to_owned() } else { format!("`{}`", has.join("`, `")) }
        );
        ctx.miss(msg, "use a port the Service declares, by name or number", vec![at]);
    }
}

/// `scaleTargetRef` names an object of the target.
fn scale_target(ctx: &mut Ctx<'_, '_>, v: &Value) {
    let Some(r) = v.get("spec").and_then(|s| s.get("scaleTargetRef")) else { return };
    let kind = str_at(r, &["kind"]).unwrap_or_default();
    let name = str_at(r, &["name"]).unwrap_or_default();
    let group = str_at(r, &["apiVersion"]).map(|a| a.rsplit_once('/').map(|(g, _)| g).unwrap_or(""));
    if !ctx.index.has_object(group, kind, name) {
        let msg = format!("{} scales {kind} `{name}` (scaleTargetRef), which nothing creates", ctx.what());
        ctx.miss(msg, "name a workload the target renders", vec!["scaleTargetRef".to_owned()]);
    }
}

/// The labels of a pod template.
fn labels(pod: &Value) -> Option<&Mapping> {
    pod.get("metadata").and_then(|m| m.get("labels")).and_then(Value::as_mapping)
}

/// Every pair of `selector` is among `labels`.
fn matches_labels(selector: &Mapping, labels: Option<&Mapping>) -> bool {
    selector.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// A LabelSelector (`matchLabels`, `matchExpressions`) that no pod template of the target matches.
fn selects_none(ctx: &Ctx<'_, '_>, selector: &Value) -> bool {
    !ctx.index.pods.iter().any(|p| selects(selector, labels(p)))
}

/// Whether a LabelSelector matches `labels`.
fn selects(selector: &Value, labels: Option<&Mapping>) -> bool {
    let empty = Mapping::new();
    let match_labels = selector.get("matchLabels").and_then(Value::as_mapping).unwrap_or(&empty);
    if !matches_labels(match_labels, labels) {
        return false;
    }
    seq(selector, &["matchExpressions"]).all(|e| {
        let key = e.get("key").cloned().unwrap_or(Value::Null);
        let value = labels.and_then(|l| l.get(&key));
        let values: Vec<&Value> = seq(e, &["values"]).collect();
        match str_at(e, &["operator"]).unwrap_or_default() {
            "In" => value.is_some_and(|v| values.contains(&v)),
            "NotIn" => value.is_none_or(|v| !values.contains(&v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => true,
        }
    })
}

/// Where a selector is likely written: its first label value.
fn selector_needles(selector: &Value) -> Vec<String> {
    let labels = selector.get("matchLabels").unwrap_or(selector);
    labels
        .as_mapping()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some(format!("{}: {}", k.as_str()?, v.as_str()?)))
        .chain(["selector:".to_owned()])
        .collect()
}

/// A value on one line (JSON, which is YAML flow style).
fn flow(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}
