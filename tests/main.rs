
mod corpus;
