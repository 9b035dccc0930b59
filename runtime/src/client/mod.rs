//! The client side: [`Channel`] (gRPC-Go's `ClientConn`), [`Client`] and [`CallOptions`].

mod call;
mod channel;

pub use call::{CallOptions, Client};
pub use channel::{Channel, ChannelBuilder};
