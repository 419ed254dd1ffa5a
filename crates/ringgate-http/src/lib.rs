//! ringgate's HTTP/1.1 codec: pure functions over byte slices, no sockets.
//!
//! Heads are parsed with httparse into [`Span`]s that point into the caller's
//! buffer (nothing is copied), classified once (Host, Content-Length,
//! hop-by-hop fields, ...), checked against the request-smuggling rules of
//! RFC 9112, and rewritten for the other side in a single pass. Bodies are
//! framed by [`BodyKind`]; chunked bodies are followed by [`ChunkedDecoder`]
//! so they can be passed through verbatim and their end found.

mod chunked;
mod error;
pub mod fuzz;
mod head;
pub mod path;
mod request;
mod response;
mod rewrite;
pub mod trace;

pub use chunked::{ChunkError, ChunkedDecoder, Progress, decode_all as chunked_decode_all};
pub use error::{
    ErrorCode, error_page_response, error_page_response_as, error_response, error_response_as, reason_phrase,
};
pub use head::{BodyKind, Header, HeaderKind, Span, Version};
pub use request::{Method, ParseLimits, RequestError, RequestHead, parse_request};
pub use response::{ResponseCodings, ResponseError, ResponseHead, parse_response};
pub use rewrite::{
    DropFields, ForwardInfo, ResponseRewrite, write_forwarded_for, write_request_head, write_response_head,
};

/// Result of feeding bytes to a head parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// The head is complete and `len` bytes long.
    Complete(usize),
    /// More bytes are needed.
    Partial,
}
