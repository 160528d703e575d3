mod cli;
mod corpus;
mod crash;
mod git;
mod port;
mod props;
mod render;
mod schema;
mod support;
mod templates;
mod trust_tree;
#[cfg(feature = "watch")]
mod watch;
