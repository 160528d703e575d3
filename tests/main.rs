mod corpus;
mod schema;
#[cfg(feature = "watch")]
mod watch;
