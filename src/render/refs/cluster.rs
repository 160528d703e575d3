//! Cluster-wide names a target's objects use — IngressClasses,
//! ClusterIssuers, StorageClasses, PriorityClasses and the CRDs of kinds
//! outside the Kubernetes API — resolve to the inventory's `prerequisites`
//! or to an object the target renders itself (a plain `platform`
//! environment may render a ClusterIssuer). [`needs`] lists them for `plan`.

use std::collections::BTreeSet;

use serde::Serialize;

use super::pods::{needles, pod_template};
use super::{seq, str_at, Ctx};
use crate::inventory::Prerequisites;
use crate::render::kinds;
use crate::render::object::RenderedObject;

/// A kind of cluster prerequisite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prereq {
    IngressClass,
    ClusterIssuer,
    StorageClass,
    PriorityClass,
    Crd,
}

impl Prereq {
    /// Its list under `prerequisites`.
    fn key(self) -> &'static str {
        match self {
            Prereq::IngressClass => "ingressClasses",
            Prereq::ClusterIssuer => "clusterIssuers",
            Prereq::StorageClass => "storageClasses",
            Prereq::PriorityClass => "priorityClasses",
            Prereq::Crd => "crds",
        }
    }

    /// How messages name it.
    fn noun(self) -> &'static str {
        match self {
            Prereq::IngressClass => "IngressClass",
            Prereq::ClusterIssuer => "ClusterIssuer",
            Prereq::StorageClass => "StorageClass",
            Prereq::PriorityClass => "PriorityClass",
            Prereq::Crd => "the CRD of",
        }
    }

    fn declared(self, p: &Prerequisites) -> &[String] {
        match self {
            Prereq::IngressClass => &p.ingress_classes,
            Prereq::ClusterIssuer => &p.cluster_issuers,
            Prereq::StorageClass => &p.storage_classes,
            Prereq::PriorityClass => &p.priority_classes,
            Prereq::Crd => &p.crds,
        }
    }
}

/// One cluster-wide name an object uses: prereq, name, the field that names it.
type ClusterRef = (Prereq, String, &'static str);

/// What a target asks of its cluster: the prerequisites its objects use
/// and do not render themselves, each sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Needs {
    /// IngressClass names.
    pub ingress_classes: BTreeSet<String>,
    /// cert-manager ClusterIssuer names.
    pub cluster_issuers: BTreeSet<String>,
    /// StorageClass names.
    pub storage_classes: BTreeSet<String>,
    /// PriorityClass names.
    pub priority_classes: BTreeSet<String>,
    /// CRDs, as `group/Kind`.
    pub crds: BTreeSet<String>,
}

impl Needs {
    /// Nothing needed.
    pub fn is_empty(&self) -> bool {
        self.lists().iter().all(|(_, l)| l.is_empty())
    }

    /// Each list with its `prerequisites` key, in declaration order.
    pub fn lists(&self) -> [(&'static str, &BTreeSet<String>); 5] {
        [
            ("ingressClasses", &self.ingress_classes),
            ("clusterIssuers", &self.cluster_issuers),
            ("storageClasses", &self.storage_classes),
            ("priorityClasses", &self.priority_classes),
            ("crds", &self.crds),
        ]
    }
}

/// The cluster prerequisites `objects` use and do not render.
pub fn needs(objects: &[RenderedObject]) -> Needs {
    let mut out = Needs::default();
    for o in objects {
        for (prereq, name, _) in cluster_refs(o) {
            if rendered(objects.iter(), prereq, &name) {
                continue;
            }
            let set = match prereq {
                Prereq::IngressClass => &mut out.ingress_classes,
                Prereq::ClusterIssuer => &mut out.cluster_issuers,
                Prereq::StorageClass => &mut out.storage_classes,
                Prereq::PriorityClass => &mut out.priority_classes,
                Prereq::Crd => &mut out.crds,
            };
            set.insert(name);
        }
    }
    out
}

/// Reports each cluster-wide name of the object that is neither declared nor rendered.
pub(super) fn check(ctx: &mut Ctx<'_, '_>) {
    for (prereq, name, field) in cluster_refs(ctx.o) {
        if prereq.declared(ctx.prerequisites).contains(&name) || rendered_in(ctx, prereq, &name) {
            continue;
        }
        let msg = format!(
            "{} needs {} `{name}` ({field}), which is not a declared cluster prerequisite",
            ctx.what(),
            prereq.noun()
        );
        let help = format!(
            "if the cluster has it, declare it under `prerequisites.{}` in the inventory; otherwise use one that is declared",
            prereq.key()
        );
        let needles = if prereq == Prereq::Crd {
            vec![format!("kind: {}", ctx.o.id.kind)]
        } else {
            [needles(field, &name), vec![field.to_owned()]].concat()
        };
        ctx.miss(msg, help, needles);
    }
}

/// Whether the target renders the prerequisite itself.
fn rendered_in(ctx: &Ctx<'_, '_>, prereq: Prereq, name: &str) -> bool {
    match object_kind(prereq) {
        Some((group, kind)) => ctx.index.has_object(Some(group), kind, name),
        None => ctx.index.crds.contains(name),
    }
}

/// Whether one of `objects` is the prerequisite itself.
fn rendered<'a>(mut objects: impl Iterator<Item = &'a RenderedObject>, prereq: Prereq, name: &str) -> bool {
    objects.any(|o| match object_kind(prereq) {
        Some((group, kind)) => o.id.group() == group && o.id.kind == kind && o.id.name == name,
        None => defines_crd(o).is_some_and(|d| d == name),
    })
}

/// The kind of cluster object a prereq names (none for CRDs, named `group/Kind`).
fn object_kind(prereq: Prereq) -> Option<(&'static str, &'static str)> {
    match prereq {
        Prereq::IngressClass => Some(("networking.k8s.io", "IngressClass")),
        Prereq::ClusterIssuer => Some(("cert-manager.io", "ClusterIssuer")),
        Prereq::StorageClass => Some(("storage.k8s.io", "StorageClass")),
        Prereq::PriorityClass => Some(("scheduling.k8s.io", "PriorityClass")),
        Prereq::Crd => None,
    }
}

/// `group/Kind` of the custom resource a CustomResourceDefinition object defines.
pub(super) fn defines_crd(o: &RenderedObject) -> Option<String> {
    if o.id.group() != "apiextensions.k8s.io" || o.id.kind != "CustomResourceDefinition" {
        return None;
    }
    Some(format!("{}/{}", str_at(&o.value, &["spec", "group"])?, str_at(&o.value, &["spec", "names", "kind"])?))
}

/// PriorityClasses every cluster has.
const BUILTIN_PRIORITY_CLASSES: [&str; 2] = ["system-cluster-critical", "system-node-critical"];

/// Every cluster-wide name `o` uses.
fn cluster_refs(o: &RenderedObject) -> Vec<ClusterRef> {
    let v = &o.value;
    let mut out: Vec<ClusterRef> = Vec::new();
    let mut push = |prereq, name: Option<&str>, field| {
        if let Some(n) = name.filter(|n| !n.is_empty()) {
            out.push((prereq, n.to_owned(), field));
        }
    };
    let group = o.id.group();
    if !group.is_empty() && kinds::builtin_scope(group, &o.id.kind).is_none() {
        push(Prereq::Crd, Some(&format!("{group}/{}", o.id.kind)), "kind");
    }
    match (group, o.id.kind.as_str()) {
        ("networking.k8s.io", "Ingress") => {
            push(Prereq::IngressClass, str_at(v, &["spec", "ingressClassName"]), "ingressClassName");
            let annotations = &v["metadata"]["annotations"];
            push(
                Prereq::IngressClass,
                str_at(annotations, &["kubernetes.io/ingress.prereq"]),
                "kubernetes.io/ingress.prereq",
            );
            push(
                Prereq::ClusterIssuer,
                str_at(annotations, &["cert-manager.io/cluster-issuer"]),
                "cert-manager.io/cluster-issuer",
            );
        }
        ("cert-manager.io", "Certificate") if str_at(v, &["spec", "issuerRef", "kind"]) == Some("ClusterIssuer") => {
            push(Prereq::ClusterIssuer, str_at(v, &["spec", "issuerRef", "name"]), "issuerRef");
        }
        ("", "PersistentVolumeClaim") => {
            push(Prereq::StorageClass, str_at(v, &["spec", "storageClassName"]), "storageClassName")
        }
        ("apps", "StatefulSet") => {
            for t in seq(v, &["spec", "volumeClaimTemplates"]) {
                push(Prereq::StorageClass, str_at(t, &["spec", "storageClassName"]), "storageClassName");
            }
        }
        _ => {}
    }
    if let Some(p) = pod_template(o).and_then(|t| str_at(t, &["spec", "priorityClassName"])) {
        if !BUILTIN_PRIORITY_CLASSES.contains(&p) {
            push(Prereq::PriorityClass, Some(p), "priorityClassName");
        }
    }
    out
}
