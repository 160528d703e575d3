mod corpus;
mod schema;
