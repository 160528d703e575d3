//! The table of emulated resource types, wire conversion between API groups
//! that share storage (core/v1 and events.k8s.io/v1 events), and discovery
//! documents.

use serde_json::{json, Map, Value};

/// Static description of one served resource (one group/version/plural).
#[derive(Debug)]
pub struct ResourceDef {
    /// API group; `""` for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    /// Storage bucket. Resources sharing a bucket share objects (converted on
    /// the wire), like core/v1 and events.k8s.io/v1 events.
    pub bucket: &'static str,
    /// Has a `/status` subresource: main-resource writes ignore `.status`,
    /// `/status` writes only change `.status`.
    pub status_subresource: bool,
    /// Maintains `metadata.generation` (bumped on spec changes).
    pub has_generation: bool,
    /// `PUT` on a missing object creates it (true for core events).
    pub create_on_update: bool,
    pub short_names: &'static [&'static str],
    /// Field labels accepted by `fieldSelector`.
    pub field_selectors: &'static [&'static str],
}

const NAME_NS: &[&str] = &["metadata.name", "metadata.namespace"];

const CORE_EVENT_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

const EVENTS_V1_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
    "regarding.apiVersion",
    "regarding.resourceVersion",
    "regarding.fieldPath",
    "reason",
    "reportingController",
    "type",
];

/// All emulated resources. The first entry for a bucket is its storage form.
pub static RESOURCES: &[ResourceDef] = &[
    ResourceDef {
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        bucket: "namespaces",
        status_subresource: true,
        has_generation: false,
        create_on_update: false,
        short_names: &["ns"],
        field_selectors: &["metadata.name", "metadata.namespace", "status.phase"],
    },
    ResourceDef {
        group: "",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        bucket: "events",
        status_subresource: false,
        has_generation: false,
        create_on_update: true,
        short_names: &["ev"],
        field_selectors: CORE_EVENT_FIELDS,
    },
    ResourceDef {
        group: "",
        version: "v1",
        plural: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        bucket: "configmaps",
        status_subresource: false,
        has_generation: false,
        create_on_update: false,
        short_names: &["cm"],
        field_selectors: NAME_NS,
    },
    ResourceDef {
        group: "",
        version: "v1",
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        bucket: "pods",
        status_subresource: true,
        has_generation: true,
        create_on_update: false,
        short_names: &["po"],
        field_selectors: &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
    },
    ResourceDef {
        group: "batch",
        version: "v1",
        plural: "jobs",
        singular: "job",
        kind: "Job",
        namespaced: true,
        bucket: "jobs",
        status_subresource: true,
        has_generation: true,
        create_on_update: false,
        short_names: &[],
        field_selectors: &["metadata.name", "metadata.namespace", "status.successful"],
    },
    ResourceDef {
        group: "apps",
        version: "v1",
        plural: "deployments",
        singular: "deployment",
        kind: "Deployment",
        namespaced: true,
        bucket: "deployments",
        status_subresource: true,
        has_generation: true,
        create_on_update: false,
        short_names: &["deploy"],
        field_selectors: NAME_NS,
    },
    ResourceDef {
        group: "apps",
        version: "v1",
        plural: "statefulsets",
        singular: "statefulset",
        kind: "StatefulSet",
        namespaced: true,
        bucket: "statefulsets",
        status_subresource: true,
        has_generation: true,
        create_on_update: false,
        short_names: &["sts"],
        field_selectors: NAME_NS,
    },
    ResourceDef {
        group: "apps",
        version: "v1",
        plural: "daemonsets",
        singular: "daemonset",
        kind: "DaemonSet",
        namespaced: true,
        bucket: "daemonsets",
        status_subresource: true,
        has_generation: true,
        create_on_update: false,
        short_names: &["ds"],
        field_selectors: NAME_NS,
    },
    ResourceDef {
        group: "networking.k8s.io",
        version: "v1",
        plural: "ingresses",
        singular: "ingress",
        kind: "Ingress",
        namespaced: true,
        bucket: "ingresses",
        status_subresource: true,
        has_generation: true,
        create_on_update: false,
        short_names: &["ing"],
        field_selectors: NAME_NS,
    },
    ResourceDef {
        group: "networking.k8s.io",
        version: "v1",
        plural: "networkpolicies",
        singular: "networkpolicy",
        kind: "NetworkPolicy",
        namespaced: true,
        bucket: "networkpolicies",
        status_subresource: false,
        has_generation: true,
        create_on_update: false,
        short_names: &["netpol"],
        field_selectors: NAME_NS,
    },
    ResourceDef {
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        singular: "lease",
        kind: "Lease",
        namespaced: true,
        bucket: "leases",
        status_subresource: false,
        has_generation: false,
        create_on_update: false,
        short_names: &[],
        field_selectors: NAME_NS,
    },
    ResourceDef {
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        bucket: "events",
        status_subresource: false,
        has_generation: false,
        create_on_update: false,
        short_names: &["ev"],
        field_selectors: EVENTS_V1_FIELDS,
    },
];

/// core/v1 Event field -> events.k8s.io/v1 Event field.
const EVENT_RENAMES: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

fn rename_fields(obj: &mut Value, forward: bool) {
    if let Value::Object(m) = obj {
        for (core, v1) in EVENT_RENAMES {
            let (from, to) = if forward { (core, v1) } else { (v1, core) };
            if let Some(v) = m.remove(*from) {
                m.insert((*to).to_string(), v);
            }
        }
    }
}

impl ResourceDef {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// `jobs.batch`, or `namespaces` for the core group (as in messages).
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The storage (first) definition of this resource's bucket.
    pub fn storage(&self) -> &'static ResourceDef {
        RESOURCES.iter().find(|d| d.bucket == self.bucket).expect("bucket has a storage definition")
    }

    fn is_events_v1(&self) -> bool {
        self.group == "events.k8s.io"
    }

    /// Storage form -> the wire form of this group/version.
    pub fn to_external(&self, internal: &Value) -> Value {
        let mut out = internal.clone();
        if self.is_events_v1() {
            rename_fields(&mut out, true);
        }
        set_type_meta(&mut out, &self.api_version(), self.kind);
        out
    }

    /// Wire form of this group/version -> storage form.
    pub fn to_internal(&self, external: Value) -> Value {
        let mut out = external;
        if self.is_events_v1() {
            rename_fields(&mut out, false);
        }
        let storage = self.storage();
        set_type_meta(&mut out, &storage.api_version(), storage.kind);
        out
    }
}

/// Set `apiVersion` and `kind` as the first keys of an object.
pub fn set_type_meta(obj: &mut Value, api_version: &str, kind: &str) {
    if let Value::Object(m) = obj {
        m.insert("apiVersion".into(), json!(api_version));
        m.insert("kind".into(), json!(kind));
    }
}

/// Find the resource served at `group/version/plural`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES.iter().find(|d| d.group == group && d.version == version && d.plural == plural)
}

/// Resolve a user-supplied resource name for the test-control API: a kind
/// (`Job`), a plural (`jobs`), a short name (`ns`), or a qualified plural
/// (`events.events.k8s.io`, `jobs.batch`). Case-insensitive; the first match
/// (core group first) wins.
pub fn resolve(name: &str) -> Option<&'static ResourceDef> {
    let n = name.to_ascii_lowercase();
    RESOURCES.iter().find(|d| {
        d.kind.eq_ignore_ascii_case(&n)
            || d.plural == n
            || d.singular == n
            || d.short_names.contains(&n.as_str())
            || d.qualified() == n
    })
}

/// Find the resource for an object's `apiVersion` and `kind`.
pub fn by_type(api_version: &str, kind: &str) -> Option<&'static ResourceDef> {
    RESOURCES.iter().find(|d| d.api_version() == api_version && d.kind == kind)
}

fn verbs(def: &ResourceDef) -> Value {
    let mut v = vec!["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
    if def.plural == "namespaces" {
        v.retain(|x| *x != "deletecollection");
    }
    json!(v)
}

/// `APIResourceList` for a group/version.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let defs: Vec<&ResourceDef> = RESOURCES.iter().filter(|d| d.group == group && d.version == version).collect();
    if defs.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for d in &defs {
        let mut r = Map::new();
        r.insert("name".into(), json!(d.plural));
        r.insert("singularName".into(), json!(d.singular));
        r.insert("namespaced".into(), json!(d.namespaced));
        r.insert("kind".into(), json!(d.kind));
        r.insert("verbs".into(), verbs(d));
        if !d.short_names.is_empty() {
            r.insert("shortNames".into(), json!(d.short_names));
        }
        resources.push(Value::Object(r));
        if d.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", d.plural),
                "singularName": "",
                "namespaced": d.namespaced,
                "kind": d.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if d.plural == "namespaces" {
            resources.push(json!({
                "name": "namespaces/finalize",
                "singularName": "",
                "namespaced": false,
                "kind": "Namespace",
                "verbs": ["update"],
            }));
        }
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }))
}

fn api_groups() -> Vec<&'static str> {
    let mut groups: Vec<&'static str> = Vec::new();
    for d in RESOURCES {
        if !d.group.is_empty() && !groups.contains(&d.group) {
            groups.push(d.group);
        }
    }
    groups
}

/// `APIGroup` document for one group.
pub fn api_group(group: &str) -> Option<Value> {
    let d = RESOURCES.iter().find(|d| !group.is_empty() && d.group == group)?;
    let gv = json!({"groupVersion": d.api_version(), "version": d.version});
    Some(json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": [gv.clone()],
        "preferredVersion": gv,
    }))
}

/// `APIGroupList` for `/apis`.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = api_groups()
        .into_iter()
        .filter_map(|g| {
            let mut v = api_group(g)?;
            if let Value::Object(m) = &mut v {
                m.remove("kind");
                m.remove("apiVersion");
            }
            Some(v)
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `APIVersions` for `/api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// `version.Info` for `/version`.
pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-kube-emulator",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_conversion_roundtrip() {
        let v1 = find("events.k8s.io", "v1", "events").unwrap();
        let ext = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e"}, "regarding": {"kind": "Job"}, "note": "hi",
            "reportingController": "c", "reason": "R"});
        let internal = v1.to_internal(ext.clone());
        assert_eq!(internal["apiVersion"], "v1");
        assert_eq!(internal["involvedObject"]["kind"], "Job");
        assert_eq!(internal["message"], "hi");
        assert_eq!(internal["reportingComponent"], "c");
        assert_eq!(v1.to_external(&internal), ext);
    }

    #[test]
    fn resolve_names() {
        assert_eq!(resolve("Job").unwrap().plural, "jobs");
        assert_eq!(resolve("ns").unwrap().kind, "Namespace");
        assert_eq!(resolve("leases").unwrap().group, "coordination.k8s.io");
        assert_eq!(resolve("events.events.k8s.io").unwrap().group, "events.k8s.io");
        assert_eq!(resolve("event").unwrap().group, "");
        assert_eq!(resolve("deploy").unwrap().group, "apps");
        assert_eq!(resolve("StatefulSet").unwrap().plural, "statefulsets");
        assert_eq!(resolve("ingresses").unwrap().group, "networking.k8s.io");
        assert_eq!(resolve("networkpolicies").unwrap().kind, "NetworkPolicy");
        assert!(resolve("widgets").is_none());
    }
}
