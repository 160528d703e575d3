mod corpus;
mod git;
mod render;
mod schema;
mod support;
#[cfg(feature = "watch")]
mod watch;
