//! A run-wide table of the answers servers gave to `/send` transactions, so that servers
//! giving the same answer remember one copy of it.
//!
//! Every server remembers the answers of its last transactions, to answer a retry alike
//! (`transactions_remembered_per_origin`, two per origin). In a room of a thousand servers the
//! same event reaches every server in a transaction of its own, and each accepts it with the
//! same answer text (`{"pdus":{"$id":{}}}`): a thousand copies of each answer, ten million
//! at ten thousand events. Handing each server the copy already in the table makes it one.
//!
//! Invariants: only memory is shared: an answer handed out is the text asked for, byte for
//! byte; bounded (first in, first out past `entries_max`; a forgotten answer stays valid
//! wherever it is held, it is only no longer shared with later ones); the set is never
//! iterated, so its order cannot leak into a run.

use crate::server::fifo_map::FifoMap;
use std::cell::RefCell;
use std::rc::Rc;

/// How many distinct answers the table holds unless told otherwise: the answers of the
/// events of the last minutes of a large run.
pub const ANSWERS_SHARED_DEFAULT: usize = 65_536;

/// Distinct answer texts, shared.
pub struct AnswerInterner {
    texts: RefCell<FifoMap<Rc<str>, ()>>,
}

impl Default for AnswerInterner {
    fn default() -> Self {
        Self::new(ANSWERS_SHARED_DEFAULT)
    }
}

impl AnswerInterner {
    /// An empty table holding at most `entries_max` answers (at least 1).
    pub fn new(entries_max: usize) -> Self {
        Self {
            texts: RefCell::new(FifoMap::new(entries_max)),
        }
    }

    /// `text`, as the copy the table holds when it holds one.
    pub fn intern(&self, text: String) -> Rc<str> {
        if let Some((held, ())) = self.texts.borrow().get_key_value(text.as_str()) {
            return held.clone();
        }
        let text: Rc<str> = text.into();
        self.texts.borrow_mut().insert(text.clone(), ());
        text
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.texts.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_answers_share_one_copy_and_the_oldest_is_forgotten_first() {
        let table = AnswerInterner::new(2);
        let text = |t: &str| t.to_owned();
        let a = table.intern(text("{\"a\":1}"));
        let again = table.intern(text("{\"a\":1}"));
        assert!(Rc::ptr_eq(&a, &again));
        assert_eq!(&*again, "{\"a\":1}");
        let b = table.intern(text("{\"b\":2}"));
        assert!(!Rc::ptr_eq(&a, &b));
        assert_eq!(table.len(), 2);
        table.intern(text("{\"c\":3}"));
        assert_eq!(table.len(), 2, "a, the oldest, was forgotten");
        assert!(Rc::ptr_eq(&b, &table.intern(text("{\"b\":2}"))));
        let a_later = table.intern(text("{\"a\":1}"));
        assert!(!Rc::ptr_eq(&a, &a_later));
        assert_eq!(a_later, a, "the same text all the same");
        assert_eq!(table.len(), 2);
        let b_later = table.intern(text("{\"b\":2}"));
        assert!(!Rc::ptr_eq(&b, &b_later), "b went when a came back");
    }
}
