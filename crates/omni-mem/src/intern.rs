//! The symbol intern table: one per process, shared by all threads.
//! Symbols are immediates holding an index into this table; names are
//! never freed (a symbol's name lives as long as the process).

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use crate::value::Value;

#[derive(Default)]
struct Table {
    names: Vec<&'static str>,
    ids: HashMap<&'static str, u32>,
}

fn table() -> &'static RwLock<Table> {
    static TABLE: OnceLock<RwLock<Table>> = OnceLock::new();
    TABLE.get_or_init(|| RwLock::new(Table::default()))
}

/// The symbol named `name`, interning it on first use.
pub fn intern(name: &str) -> Value {
    {
        let t = table().read().unwrap_or_else(|e| e.into_inner());
        if let Some(&id) = t.ids.get(name) {
            return Value::symbol(id);
        }
    }
    let mut t = table().write().unwrap_or_else(|e| e.into_inner());
    if let Some(&id) = t.ids.get(name) {
        return Value::symbol(id);
    }
    let id = u32::try_from(t.names.len()).expect("more than 2^32 symbols");
    // Names are leaked on purpose: they live as long as the process.
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    t.names.push(leaked);
    t.ids.insert(leaked, id);
    Value::symbol(id)
}

/// The name of symbol `v`, if it is a symbol.
pub fn symbol_name(v: Value) -> Option<&'static str> {
    let id = v.as_symbol()?;
    let t = table().read().unwrap_or_else(|e| e.into_inner());
    t.names.get(id as usize).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_idempotent() {
        let a = intern("hello");
        let b = intern("hello");
        let c = intern("world");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(symbol_name(a), Some("hello"));
        assert_eq!(symbol_name(Value::TRUE), None);
    }
}
