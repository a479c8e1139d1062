//! [`TlsService`]: a service written for the inner machine, hosted
//! unchanged on [`Tls`] around it.

use twill_core::{Cx, Machine, Service};

use crate::layer::{Tls, TlsError, TlsEvent};

/// Runs `S`, a service of the inner machine `M`, on `Tls<M>`: inner events
/// go to `S` with a context over the inner machine; the layer's own events
/// (`Secured`, `Failed`) go to the optional `on_tls` hook.
pub struct TlsService<S, M: Machine> {
    /// The inner service.
    pub inner: S,
    on_tls: Option<TlsHook<M>>,
}

type TlsHook<M> = Box<dyn FnMut(&TlsEvent<<M as Machine>::Event>) + Send>;

impl<S, M: Machine> TlsService<S, M> {
    /// Wraps a service of the inner machine.
    pub fn new(inner: S) -> Self {
        TlsService {
            inner,
            on_tls: None,
        }
    }

    /// Also calls `f` with the layer's own events (for logging).
    pub fn on_tls(mut self, f: impl FnMut(&TlsEvent<M::Event>) + Send + 'static) -> Self {
        self.on_tls = Some(Box::new(f));
        self
    }
}

impl<S: Service<M>, M: Machine> Service<Tls<M>> for TlsService<S, M> {
    type Done = S::Done;

    fn on_event(&mut self, cx: &mut Cx<'_, Tls<M>, S::Done>, event: TlsEvent<M::Event>) {
        match event {
            TlsEvent::Inner(e) => self.inner.on_event(&mut cx.map(Tls::inner_mut), e),
            other => {
                if let Some(f) = &mut self.on_tls {
                    f(&other);
                }
            }
        }
    }

    fn on_done(&mut self, cx: &mut Cx<'_, Tls<M>, S::Done>, done: S::Done) {
        self.inner.on_done(&mut cx.map(Tls::inner_mut), done);
    }

    fn on_timer(&mut self, cx: &mut Cx<'_, Tls<M>, S::Done>, token: u64) {
        self.inner.on_timer(&mut cx.map(Tls::inner_mut), token);
    }

    fn on_error(&mut self, error: &TlsError<M::Error>) {
        if let TlsError::Inner(e) = error {
            self.inner.on_error(e);
        }
    }
}
