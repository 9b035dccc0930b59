//! The client side: [`Channel`] (gRPC-Go's `ClientConn`), the [`CallInvoker`] seam that
//! generated clients run on, [`Client`], [`CallOptions`] and [`RequestSender`].

mod call;
mod channel;
mod conn;
mod health_check;
mod invoker;
mod options;
mod response;
pub(crate) mod retry;
mod sender;
mod target;

pub use crate::proxy::Proxy;
pub use channel::{Channel, ChannelBuilder};
pub use invoker::{BidiCall, CallInvoker, Client};
pub use options::CallOptions;
pub use sender::RequestSender;
