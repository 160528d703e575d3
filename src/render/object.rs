//! A rendered Kubernetes object and its identity.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;
use serde_yaml::Value;

/// What makes an object unique in a cluster: apiVersion, kind, namespace, name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectId {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// `metadata.namespace` (none for cluster-scoped objects).
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
}

impl ObjectId {
    /// Reads the identity of a manifest, if it has `apiVersion`, `kind` and `metadata.name`.
    pub fn of(value: &Value) -> Option<ObjectId> {
        Some(ObjectId {
            api_version: value.get("apiVersion")?.as_str()?.to_owned(),
            kind: value.get("kind")?.as_str()?.to_owned(),
            namespace: value
                .get("metadata")
                .and_then(|m| m.get("namespace"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            name: value.get("metadata")?.get("name")?.as_str()?.to_owned(),
        })
    }

    /// API group: the part of `apiVersion` before `/`, empty for the core group.
    pub fn group(&self) -> &str {
        self.api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{} ({})", self.kind, ns, self.name, self.api_version),
            None => write!(f, "{} {} ({})", self.kind, self.name, self.api_version),
        }
    }
}

/// One object of a target, ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedObject {
    /// Its identity (after namespace defaulting and Job hashing).
    pub id: ObjectId,
    /// Component that produced it (`namespace` for the generated Namespace).
    pub component: String,
    /// Stage name (`agent` for the agent).
    pub stage: String,
    /// Stage index (number of stages for the agent).
    pub stage_index: usize,
    /// Sync wave.
    pub wave: u32,
    /// Template it came from (none for generated objects).
    pub template: Option<PathBuf>,
    /// The manifest.
    pub value: Value,
}

impl RenderedObject {
    /// File name: `<kind lower-case>-<name>.yaml`.
    pub fn file_name(&self) -> String {
        crate::layout::object_file(&self.id.kind, &self.id.name)
    }

    /// Stage directory: `<NN>-<stage>`.
    pub fn stage_dir(&self) -> String {
        crate::layout::stage_dir(self.stage_index, &self.stage)
    }

    /// Path inside the target directory.
    pub fn path(&self) -> String {
        crate::layout::object_path(&self.stage_dir(), &self.component, &self.file_name())
    }

    /// The YAML text of the file.
    pub fn to_yaml(&self) -> String {
        super::emit::to_yaml(&self.value)
    }
}
