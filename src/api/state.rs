//! What every handler holds: the settings, the service facade, the credentials it checks and
//! the open-slot caps. `app.rs` builds it (it names every layer); handlers only read it.

use std::sync::Arc;

use super::OpenSlots;
use crate::auth::Auth;
use crate::config::Settings;
use crate::service::AiService;

/// Everything a handler needs. Cloning is one reference count: axum clones the state for every
/// extractor and middleware of every request, and a field-by-field clone of the services (with
/// their maps and connections) was a tenth of a web process's CPU.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The state behind [`AppState`].
pub struct Shared {
    pub settings: Arc<Settings>,
    pub service: AiService,
    /// JWTs (and stream tokens) and API keys.
    pub auth: Auth,
    /// What callers hold open in this process (long-polls, event streams, WebSockets).
    pub open: OpenSlots,
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}
