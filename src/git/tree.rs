//! Building git trees from memory: replace a few subtrees of a base tree and
//! reuse every other subtree as is, so committing one slot in a repository of
//! a thousand slots writes a handful of objects.

use std::collections::BTreeMap;

use git2::{FileMode, ObjectType, Oid, Repository, Tree};

use super::Result;

/// A change at one path of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Put this blob content at the path.
    File(Vec<u8>),
    /// Put this directory (relative paths → contents) at the path, replacing what was there.
    Dir(BTreeMap<String, Vec<u8>>),
    /// Remove whatever is at the path.
    Remove,
}

/// Updates by slash-separated path.
pub type Updates = BTreeMap<String, Update>;

enum Node {
    Leaf(Update),
    Inner(BTreeMap<String, Node>),
}

fn insert(root: &mut BTreeMap<String, Node>, path: &str, update: Update) {
    let mut parts = path.split('/').filter(|p| !p.is_empty()).peekable();
    let mut cur = root;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(part.to_owned(), Node::Leaf(update));
            return;
        }
        let entry = cur.entry(part.to_owned()).or_insert_with(|| Node::Inner(BTreeMap::new()));
        if let Node::Leaf(_) = entry {
            *entry = Node::Inner(BTreeMap::new());
        }
        let Node::Inner(next) = entry else { unreachable!("just made inner") };
        cur = next;
    }
}

/// Writes a directory of files as a tree; `None` when it is empty.
fn write_dir(repo: &Repository, files: &BTreeMap<String, Vec<u8>>) -> Result<Option<Oid>> {
    let mut root: BTreeMap<String, Node> = BTreeMap::new();
    for (path, content) in files {
        insert(&mut root, path, Update::File(content.clone()));
    }
    apply_level(repo, None, root)
}

fn apply_level(repo: &Repository, base: Option<Tree<'_>>, updates: BTreeMap<String, Node>) -> Result<Option<Oid>> {
    let mut builder = repo.treebuilder(base.as_ref())?;
    for (name, node) in updates {
        match node {
            Node::Leaf(Update::File(content)) => {
                let oid = repo.blob(&content)?;
                builder.insert(&name, oid, FileMode::Blob.into())?;
            }
            Node::Leaf(Update::Dir(files)) => match write_dir(repo, &files)? {
                Some(oid) => {
                    builder.insert(&name, oid, FileMode::Tree.into())?;
                }
                None => {
                    if builder.get(&name)?.is_some() {
                        builder.remove(&name)?;
                    }
                }
            },
            Node::Leaf(Update::Remove) => {
                if builder.get(&name)?.is_some() {
                    builder.remove(&name)?;
                }
            }
            Node::Inner(children) => {
                let sub = match builder.get(&name)? {
                    Some(e) if e.kind() == Some(ObjectType::Tree) => Some(repo.find_tree(e.id())?),
                    _ => None,
                };
                match apply_level(repo, sub, children)? {
                    Some(oid) => {
                        builder.insert(&name, oid, FileMode::Tree.into())?;
                    }
                    None => {
                        if builder.get(&name)?.is_some() {
                            builder.remove(&name)?;
                        }
                    }
                }
            }
        }
    }
    if builder.is_empty() {
        return Ok(None);
    }
    Ok(Some(builder.write()?))
}

/// The tree of `base` with `updates` applied (an empty tree when nothing is left).
pub fn apply_updates(repo: &Repository, base: Option<&Tree<'_>>, updates: &Updates) -> Result<Oid> {
    let mut root: BTreeMap<String, Node> = BTreeMap::new();
    for (path, update) in updates {
        insert(&mut root, path, update.clone());
    }
    match apply_level(repo, base.cloned(), root)? {
        Some(oid) => Ok(oid),
        None => Ok(repo.treebuilder(None)?.write()?),
    }
}
