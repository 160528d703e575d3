mod cli;
mod corpus;
mod crash;
mod git;
mod props;
mod render;
mod schema;
mod shard;
mod stream;
mod support;
mod trust_tree;
#[cfg(feature = "watch")]
mod watch;
