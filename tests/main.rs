mod architecture;
mod cli;
mod corpus;
mod crash;
mod git;
mod images;
mod lifecycle;
mod memo;
mod ownership;
mod port;
mod props;
mod render;
mod schema;
mod shard;
mod slot_up;
mod snapshots;
mod source_diff;
mod stream;
mod support;
mod templates;
mod trust_inputs;
mod trust_tree;
mod trust_values;
mod values;
mod walls;
#[cfg(feature = "watch")]
mod watch;
#[cfg(feature = "watch")]
mod watch_faults;
#[cfg(feature = "watch")]
mod watch_health;
#[cfg(feature = "watch")]
mod watch_inventory;
