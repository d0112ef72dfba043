use std::sync::Arc;

use tower::Layer;

use super::{FcuMux, PayloadJobs};
use crate::builder::{Builder, ModeSwitch};

/// Layer that also sends forkchoice updates with attributes to builders.
/// See the [module docs](super).
#[derive(Clone, Debug)]
pub struct FcuMuxLayer {
    pub(super) builders: Arc<[Arc<Builder>]>,
    pub(super) jobs: Arc<PayloadJobs>,
    pub(super) mode: ModeSwitch,
}

impl FcuMuxLayer {
    /// Sends to `builders`, files jobs in `jobs`, obeys `mode`.
    pub fn new(builders: Vec<Arc<Builder>>, jobs: Arc<PayloadJobs>, mode: ModeSwitch) -> Self {
        Self {
            builders: builders.into(),
            jobs,
            mode,
        }
    }
}

impl<S> Layer<S> for FcuMuxLayer {
    type Service = FcuMux<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FcuMux {
            inner,
            layer: self.clone(),
        }
    }
}
