//! The lineage of realized buffers: how to make each one again when its device is lost.

use ferrograd_ir::{Node, NodeRef};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

/// How a realized buffer can be made again.
#[derive(Clone)]
pub(crate) enum Lineage {
    /// The expression it is the value of (its graph, kept alive with the buffer).
    Expr(NodeRef),
    /// Its bytes, kept on the host.
    Host(Arc<[u8]>),
}

struct Record {
    /// The buffer leaf the lineage belongs to; the record dies with it.
    buffer: Weak<Node>,
    lineage: Lineage,
}

/// Lineage by buffer leaf, for as long as each leaf lives. Buffer leaves are never interned,
/// so a leaf's node id names exactly one buffer.
pub(crate) struct LineageStore {
    records: Mutex<Records>,
}

struct Records {
    map: HashMap<u64, Record>,
    sweep_at: usize,
}

impl LineageStore {
    pub(crate) fn new() -> LineageStore {
        LineageStore {
            records: Mutex::new(Records {
                map: HashMap::new(),
                sweep_at: 256,
            }),
        }
    }

    /// Remembers how `buffer` (a buffer leaf) is made again, replacing what was known.
    pub(crate) fn record(&self, buffer: &NodeRef, lineage: Lineage) {
        let mut r = self.records.lock();
        r.map.insert(
            buffer.id(),
            Record {
                buffer: Arc::downgrade(buffer),
                lineage,
            },
        );
        if r.map.len() >= r.sweep_at {
            r.map.retain(|_, rec| rec.buffer.strong_count() > 0);
            r.sweep_at = (r.map.len() * 2).max(256);
        }
    }

    /// How `buffer` is made again, if that is known.
    pub(crate) fn get(&self, buffer: &NodeRef) -> Option<Lineage> {
        self.records
            .lock()
            .map
            .get(&buffer.id())
            .filter(|rec| rec.buffer.strong_count() > 0)
            .map(|rec| rec.lineage.clone())
    }

    /// Number of live buffers with a known lineage.
    pub(crate) fn len(&self) -> usize {
        let r = self.records.lock();
        r.map
            .values()
            .filter(|rec| rec.buffer.strong_count() > 0)
            .count()
    }
}
