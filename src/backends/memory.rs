//! `CACHE_TYPE=memory`: a string cache in this process, lost on restart.
//! Nothing to wait for, so no connector.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// A process-local string cache for `CACHE_TYPE=memory`.
#[derive(Clone, Default)]
pub struct MemoryCache(Arc<RwLock<HashMap<String, String>>>);

impl MemoryCache {
    pub fn get(&self, key: &str) -> Option<String> {
        self.0.read().ok()?.get(key).cloned()
    }

    pub fn set(&self, key: impl Into<String>, value: impl Into<String>) {
        if let Ok(mut map) = self.0.write() {
            map.insert(key.into(), value.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_cache_is_shared_between_clones() {
        let a = MemoryCache::default();
        let b = a.clone();
        a.set("k", "v");
        assert_eq!(b.get("k").as_deref(), Some("v"));
        assert_eq!(b.get("missing"), None);
    }
}
