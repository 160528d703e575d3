//! The inventory: `services.yaml` (plus `environments/*.yaml`) loaded,
//! resolved and validated into an [`Inventory`].
//!
//! Flow: `yaml` (positions) → `load` (serde, unknown keys) → `resolve`
//! (inheritance, globs, references) → `validate` (graph checks) → `model`.
//! Entry point: [`load`]. `schema` exports the JSON Schema of the file.

mod imports;
mod load;
mod model;
pub mod names;
mod prerequisites;
mod raw;
mod resolve;
mod scalar;
mod validate;
pub mod values;
pub mod walls;
pub mod yaml;

pub use load::{read_source, SourceFile};
pub use model::*;
pub use raw::{
    ImageBuild, RawCluster, RawDecryption, RawFlux, RawGenerate, RawInventory, RawIsolation, RawRemoteRef, RawSecret,
    RawSecretRef, RawSecretStore, RawTls, API_VERSION, KIND,
};
pub use resolve::{deep_merge, load, Loaded};
pub use validate::find_cycle;
pub use values::{Override, Overrides};
pub use walls::{WallChange, Walls};

/// The JSON Schema of `services.yaml`, generated from the same serde types
/// the loader uses, so the two never disagree.
pub fn json_schema() -> serde_json::Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(RawInventory)).expect("a schema always serializes");
    // What serde checks by value rather than by type, the schema states too.
    schema["$id"] = "https://codex-k8s.io/schemas/services.v1alpha1.json".into();
    schema["properties"]["apiVersion"]["const"] = API_VERSION.into();
    schema["properties"]["kind"]["const"] = KIND.into();
    schema["properties"]["project"]["pattern"] = DNS_LABEL_PATTERN.into();
    schema["properties"]["project"]["maxLength"] = 63.into();
    // A component needs `manifests` unless a preset it uses gives them.
    schema["definitions"]["RawComponent"]["anyOf"] =
        serde_json::json!([{"required": ["manifests"]}, {"required": ["use"]}]);
    schema
}

/// A DNS-1123 label as a regular expression (for the JSON Schema).
pub const DNS_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// The JSON Schema of an `environments/<name>.yaml` file.
pub fn environment_json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(raw::RawEnvironment)).expect("a schema always serializes")
}
