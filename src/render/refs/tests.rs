//! Unit tests of the reference checks, one per reference class.

use super::*;
use crate::render::object::ObjectId;

fn objects(yaml: &str) -> Vec<RenderedObject> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| {
            let value = <serde_yaml::Value as serde::Deserialize>::deserialize(d).unwrap();
            RenderedObject {
                id: ObjectId::of(&value).unwrap(),
                component: "c".into(),
                stage: "internal".into(),
                stage_index: 2,
                wave: 20,
                template: None,
                value,
            }
        })
        .collect()
}

fn misses(yaml: &str) -> Vec<String> {
    check(&objects(yaml), &Prerequisites::default(), &Provided::default()).into_iter().map(|m| m.message).collect()
}
