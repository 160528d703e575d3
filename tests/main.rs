mod cli;
mod corpus;
mod crash;
mod git;
mod props;
mod render;
mod schema;
mod support;
#[cfg(feature = "watch")]
mod watch;
