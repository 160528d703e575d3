mod architecture;
mod cli;
mod corpus;
mod crash;
mod git;
mod port;
mod props;
mod render;
mod schema;
mod shard;
mod stream;
mod support;
mod templates;
mod trust_tree;
mod trust_values;
mod values;
#[cfg(feature = "watch")]
mod watch;
