//! Collection aliases (Qdrant's): another name for a collection of the same tenant, usable
//! wherever a collection is looked up ([`Engine::collection`]). They live in the manifest
//! (version 5); a change of several aliases is one manifest publish, so it is atomic — the
//! usual blue/green switch (delete `prod` → old, create `prod` → new) never shows a moment
//! without `prod`. A dropped collection's aliases go with it.

use super::{Engine, ManifestChange, read};
use crate::error::{Error, ErrorKind, Result};
use crate::types::validate_name;

/// One change of [`Engine::update_aliases`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AliasAction {
    /// Points `alias` at `collection` (replacing what it pointed at, as Qdrant does).
    Create {
        /// The alias.
        alias: String,
        /// An existing collection of the tenant (not an alias).
        collection: String,
    },
    /// Removes `alias` (nothing if it does not exist, as Qdrant does).
    Delete {
        /// The alias.
        alias: String,
    },
    /// Renames an existing alias.
    Rename {
        /// The alias now.
        from: String,
        /// Its new name.
        to: String,
    },
}

impl Engine {
    /// Applies `actions` in order, all or nothing, persisted in one manifest publish before
    /// this returns. Errors name the action (`actions[i]`): an unknown collection or alias is
    /// [`ErrorKind::NotFound`]; an alias named like a collection is
    /// [`ErrorKind::AlreadyExists`].
    pub fn update_aliases(&self, tenant: &str, actions: &[AliasAction]) -> Result<()> {
        validate_name("tenant", tenant)?;
        let inner = &self.inner;
        inner.check_writable()?;
        let mut m = inner.lock_manifest();
        let mut next = read(&inner.aliases).clone();
        let key = |n: &str| (tenant.to_string(), n.to_string());
        let is_collection = |n: &str| read(&inner.catalog).contains_key(&key(n));
        let new_alias = |i: usize, n: &str| -> Result<()> {
            validate_name("alias name", n)
                .map_err(|e| Error::invalid(format!("actions[{i}]: {}", e.message())))?;
            if is_collection(n) {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!("actions[{i}]: {n:?} is a collection name, it cannot be an alias"),
                ));
            }
            Ok(())
        };
        // Every name an action gives is checked, as on every route (a name no alias or
        // collection could have is a 400, not a 404 or a silent no-op).
        let named = |i: usize, what: &str, n: &str| -> Result<()> {
            validate_name(what, n)
                .map_err(|e| Error::invalid(format!("actions[{i}]: {}", e.message())))
        };
        for (i, a) in actions.iter().enumerate() {
            match a {
                AliasAction::Create { collection, .. } => named(i, "collection name", collection)?,
                AliasAction::Delete { alias } => named(i, "alias name", alias)?,
                AliasAction::Rename { from, .. } => named(i, "alias name", from)?,
            }
        }
        for (i, a) in actions.iter().enumerate() {
            match a {
                AliasAction::Create { alias, collection } => {
                    new_alias(i, alias)?;
                    if !is_collection(collection) {
                        return Err(Error::not_found(format!(
                            "actions[{i}]: collection {collection:?} does not exist"
                        )));
                    }
                    next.insert(key(alias), collection.clone());
                }
                AliasAction::Delete { alias } => {
                    next.remove(&key(alias));
                }
                AliasAction::Rename { from, to } => {
                    new_alias(i, to)?;
                    let target = next.remove(&key(from)).ok_or_else(|| {
                        Error::not_found(format!("actions[{i}]: alias {from:?} does not exist"))
                    })?;
                    next.insert(key(to), target);
                }
            }
        }
        if next == *read(&inner.aliases) {
            return Ok(());
        }
        m.publish(ManifestChange::Aliases(&next))
    }

    /// `tenant`'s aliases as (alias, collection), sorted by alias.
    pub fn aliases(&self, tenant: &str) -> Vec<(String, String)> {
        read(&self.inner.aliases)
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .map(|((_, a), c)| (a.clone(), c.clone()))
            .collect()
    }

    /// The collection `alias` names, if it is an alias of `tenant`.
    pub fn resolve_alias(&self, tenant: &str, alias: &str) -> Option<String> {
        read(&self.inner.aliases)
            .get(&(tenant.to_string(), alias.to_string()))
            .cloned()
    }
}
