//! Batches' own records (the batch hash, its item and held lists, a user's batches), their
//! view, and the webhook a batch sends when it ends. The items themselves are tasks of the
//! engine; what a batch does at submission and cancellation is the service's (`service/batches.rs`).

mod store;
mod view;

pub use store::{BatchRecord, BatchStore};
pub use view::BatchView;
