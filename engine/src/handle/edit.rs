//! Changes to existing points: payload set / overwrite / delete keys / clear, vector update /
//! delete. Each reads the current points and writes them back as one upsert, holding the
//! collection's write gate exclusively in between so no other write interleaves:
//!
//! ```text
//! ids (or filter → ids) ─▶ batches of max_batch_points ─▶ gate(exclusive):
//!     get newest payload + vectors ─▶ apply the edit ─▶ validate ─▶ WAL upsert ─▶ apply
//! ```
//! Absent ids are skipped (as Qdrant does for payload changes); vector updates name the first
//! absent point and apply nothing.

use std::collections::HashMap;

use serde_json::Value;

use super::CollectionHandle;
use crate::distance;
use crate::error::{Error, ErrorKind, Result};
use crate::filter::{Filter, key_path};
use crate::record::{StoredPoint, WalOp};
use crate::types::{Distance, Lsn, Payload, PointId, SparseVectors, Vectors};

/// A change applied to each selected point.
#[derive(Clone, Debug, PartialEq)]
pub enum PointEdit {
    /// Merge these keys into the payload (Qdrant's set payload).
    SetPayload(Payload),
    /// Replace the whole payload (Qdrant's overwrite payload).
    OverwritePayload(Payload),
    /// Remove these keys; a dotted path (`a.b`, `a[].b`) removes a nested key.
    DeletePayload(Vec<String>),
    /// Remove the whole payload.
    ClearPayload,
    /// Remove these named dense or sparse vectors (the point stays, with its other vectors and
    /// payload).
    DeleteVectors(Vec<String>),
}

impl PointEdit {
    fn what(&self) -> &'static str {
        match self {
            PointEdit::SetPayload(_) => "set payload",
            PointEdit::OverwritePayload(_) => "overwrite payload",
            PointEdit::DeletePayload(_) => "delete payload",
            PointEdit::ClearPayload => "clear payload",
            PointEdit::DeleteVectors(_) => "delete vectors",
        }
    }

    fn apply(&self, payload: &mut Payload, vectors: &mut Vectors, sparse: &mut SparseVectors) {
        match self {
            PointEdit::SetPayload(p) => {
                for (k, v) in p {
                    payload.insert(k.clone(), v.clone());
                }
            }
            PointEdit::OverwritePayload(p) => *payload = p.clone(),
            PointEdit::DeletePayload(keys) => {
                for k in keys {
                    remove_path(payload, &key_path(k));
                }
            }
            PointEdit::ClearPayload => payload.clear(),
            PointEdit::DeleteVectors(names) => names.iter().for_each(|n| {
                vectors.remove(n);
                sparse.remove(n);
            }),
        }
    }
}

/// Removes the value at `path` (through arrays: from each element).
fn remove_path(payload: &mut Payload, path: &[String]) {
    fn walk(v: &mut Value, path: &[String]) {
        match v {
            Value::Object(m) => remove_path(m, path),
            Value::Array(items) => items.iter_mut().for_each(|x| walk(x, path)),
            _ => {}
        }
    }
    match path {
        [] => {}
        [last] => {
            payload.remove(last);
        }
        [head, rest @ ..] => {
            if let Some(v) = payload.get_mut(head) {
                walk(v, rest);
            }
        }
    }
}

impl CollectionHandle {
    /// Applies `edit` to the given points (absent ids are skipped), in batches of the batch
    /// limit, each atomic. Returns the LSN of the last batch.
    pub fn edit(&self, ids: &[PointId], edit: &PointEdit) -> Result<Lsn> {
        if let PointEdit::DeleteVectors(names) = edit {
            let config = self.coll.config();
            for (i, n) in names.iter().enumerate() {
                if config.sparse_space(n).is_none() {
                    config.space_or_err(n, &format!("vector[{i}]"))?;
                }
            }
        }
        self.in_batches(ids, edit.what(), |chunk| {
            self.modify_batch(chunk, false, &mut |_, p, v, s| {
                edit.apply(p, v, s);
                Ok(())
            })
        })
    }

    /// [`Self::edit`] on every point matching `filter`. Points inserted concurrently may or
    /// may not be included.
    pub fn edit_matching(&self, filter: &Filter, edit: &PointEdit) -> Result<Lsn> {
        let ids = self.matching_ids(filter)?;
        self.edit(&ids, edit)
    }

    /// Sets the given named vectors of existing points, keeping their other vectors and their
    /// payload; all or nothing: a point that does not exist is an error ([`ErrorKind::NotFound`])
    /// and nothing is written. A repeated id keeps its last vectors.
    pub fn update_vectors(&self, points: Vec<(PointId, Vectors)>) -> Result<Lsn> {
        self.update_vectors_with_sparse(
            points
                .into_iter()
                .map(|(id, v)| (id, v, SparseVectors::new()))
                .collect(),
        )
    }

    /// [`Self::update_vectors`] with sparse vectors too.
    pub fn update_vectors_with_sparse(
        &self,
        points: Vec<(PointId, Vectors, SparseVectors)>,
    ) -> Result<Lsn> {
        let max = self.inner.opts().max_batch_points;
        if points.len() > max {
            return Err(super::too_many("points", points.len(), max));
        }
        let config = self.coll.config();
        let mut by_id: HashMap<PointId, (Vectors, SparseVectors)> =
            HashMap::with_capacity(points.len());
        let mut ids = Vec::with_capacity(points.len());
        for (i, (id, vectors, sparse)) in points.into_iter().enumerate() {
            for name in sparse.keys() {
                config.sparse_space_or_err(name, &format!("points[{i}].vector.{name}"))?;
            }
            if vectors.is_empty() && sparse.is_empty() {
                return Err(Error::invalid(format!(
                    "points[{i}].vector: no vectors given"
                )));
            }
            let mut checked = Vectors::new();
            for (name, mut v) in vectors {
                let field = match config.named {
                    true => format!("points[{i}].vector.{name}"),
                    false => format!("points[{i}].vector"),
                };
                let space = config.space_or_err(&name, &field)?;
                self.check_vector_of(space, &v, &field, Some(id))?;
                if config.params(space).distance == Distance::Cosine {
                    distance::normalize(&mut v);
                }
                checked.insert(name, v);
            }
            if by_id.insert(id, (checked, sparse)).is_none() {
                ids.push(id);
            }
        }
        self.modify_batch(&ids, true, &mut |id, _, v, s| {
            if let Some((dense, sparse)) = by_id.get(&id) {
                v.extend(dense.iter().map(|(n, x)| (n.clone(), x.clone())));
                s.extend(sparse.iter().map(|(n, x)| (n.clone(), x.clone())));
            }
            Ok(())
        })
    }

    /// One atomic read-modify-write of `ids` (at most the batch limit): holds the write gate
    /// exclusively from reading the current points to applying the new ones. With
    /// `require_all`, an absent id fails the batch before anything is written.
    pub(super) fn modify_batch(
        &self,
        ids: &[PointId],
        require_all: bool,
        f: &mut dyn FnMut(PointId, &mut Payload, &mut Vectors, &mut SparseVectors) -> Result<()>,
    ) -> Result<Lsn> {
        self.check_live()?;
        let max_payload = self.inner.opts().max_payload_bytes;
        let lsn = self.coll.exclusive(|| {
            let current = self.get(ids, true, true)?;
            if require_all && current.len() != ids.len() {
                let missing = ids
                    .iter()
                    .find(|id| !current.iter().any(|r| r.id == **id))
                    .copied()
                    .unwrap_or(ids[0]);
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("No point with id {missing} found"),
                ));
            }
            if current.is_empty() {
                return Ok(self.inner.wal().last_lsn());
            }
            let config = self.coll.config();
            let mut points = Vec::with_capacity(current.len());
            for r in current {
                let mut payload = r.payload.unwrap_or_default();
                let mut vectors = r.vectors.unwrap_or_default();
                let mut sparse = r.sparse;
                f(r.id, &mut payload, &mut vectors, &mut sparse)?;
                let bytes = match payload.is_empty() {
                    true => Vec::new(),
                    false => serde_json::to_vec(&payload)
                        .map_err(|e| Error::invalid(format!("payload: {e}")))?,
                };
                if bytes.len() > max_payload {
                    return Err(Error::new(
                        ErrorKind::ResourceExhausted,
                        format!(
                            "payload of point {} would be {} bytes, over the limit of {max_payload}",
                            r.id,
                            bytes.len(),
                        ),
                    ));
                }
                let mut vectors: Vec<(u16, Vec<f32>)> = vectors
                    .into_iter()
                    .filter_map(|(name, v)| Some((config.space(&name)? as u16, v)))
                    .collect();
                vectors.sort_by_key(|v| v.0);
                let mut sparse: Vec<(u16, crate::sparse::SparseVector)> = sparse
                    .into_iter()
                    .filter_map(|(name, v)| Some((config.sparse_space(&name)? as u16, v)))
                    .collect();
                sparse.sort_by_key(|v| v.0);
                points.push(StoredPoint {
                    id: r.id,
                    vectors,
                    sparse,
                    payload: bytes,
                });
            }
            self.commit_gated(WalOp::Upsert(points))
        })?;
        self.after_commit();
        Ok(lsn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Payload {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn delete_payload_removes_nested_keys_through_arrays() {
        let mut p =
            obj(json!({"a": {"b": 1, "c": 2}, "l": [{"b": 1, "k": 0}, {"b": 2}, 3], "b": 9}));
        PointEdit::DeletePayload(vec!["a.b".into(), "l[].b".into(), "missing.x".into()]).apply(
            &mut p,
            &mut Vectors::new(),
            &mut SparseVectors::new(),
        );
        assert_eq!(
            Value::Object(p),
            json!({"a": {"c": 2}, "l": [{"k": 0}, {}, 3], "b": 9})
        );
    }
}
