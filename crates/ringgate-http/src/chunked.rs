//! The chunked transfer coding (RFC 9112 §7.1), followed byte by byte across
//! reads. The gateway passes chunked bodies through verbatim; it runs this
//! decoder over them only to validate the framing and find where the body
//! ends (the next message on the connection starts right after), and, for
//! HTTP/1.0 clients, to extract the data.

/// Longest chunk extension or trailer section accepted, in bytes.
const MAX_METADATA: usize = 8 * 1024;
/// Chunk sizes above 2^60 bytes are refused before they can overflow.
const MAX_SIZE_DIGITS: u8 = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Start of a chunk-size line: a hex digit is required.
    SizeStart,
    Size,
    /// Whitespace after the size, before `;`.
    SizeWs,
    ExtNameStart,
    ExtName,
    ExtAfterName,
    ExtValueStart,
    ExtToken,
    ExtQuoted,
    ExtQuotedEscape,
    ExtAfterValue,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    /// A trailer field's name, up to its colon.
    TrailerName,
    TrailerValue,
    TrailerLf,
    EndLf,
    Done,
}

/// Why a chunked body is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    InvalidSize,
    SizeTooLarge,
    InvalidExtension,
    /// A CR not followed by LF, or data not followed by CRLF.
    MissingCrlf,
    InvalidTrailer,
    /// A trailer field that frames or routes the message (RFC 9110 §6.5.1):
    /// a server that merges trailers into the head would act on it.
    ForbiddenTrailer,
    /// Extensions or trailers longer than the gateway accepts.
    MetadataTooLong,
}

impl ChunkError {
    pub fn reason(self) -> &'static str {
        match self {
            ChunkError::InvalidSize => "invalid chunk size",
            ChunkError::SizeTooLarge => "chunk size too large",
            ChunkError::InvalidExtension => "invalid chunk extension",
            ChunkError::MissingCrlf => "chunk not terminated by CRLF",
            ChunkError::InvalidTrailer => "invalid trailer field",
            ChunkError::ForbiddenTrailer => "Content-Length, Transfer-Encoding or Host as a trailer field",
            ChunkError::MetadataTooLong => "chunk extensions or trailers too long",
        }
    }
}

/// What one [`ChunkedDecoder::feed`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the input that belong to the body.
    pub consumed: usize,
    /// The body ended within them.
    pub done: bool,
}

/// Follows a chunked body across any number of input slices.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    digits: u8,
    metadata: usize,
    /// The current trailer name, lowercased, as far as the longest
    /// forbidden name needs (`name_len` keeps counting past it).
    name: [u8; FORBIDDEN_NAME_MAX],
    name_len: u8,
}

/// Fields that must not arrive as trailers: they decide framing and routing.
const FORBIDDEN_TRAILERS: [&[u8]; 3] = [b"content-length", b"transfer-encoding", b"host"];
const FORBIDDEN_NAME_MAX: usize = 17;

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        ChunkedDecoder {
            state: State::SizeStart,
            size: 0,
            digits: 0,
            metadata: 0,
            name: [0; FORBIDDEN_NAME_MAX],
            name_len: 0,
        }
    }

    /// The terminating chunk and trailer section have been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Advances over `input`, calling `data` with each run of chunk data.
    /// Stops right after the body's end; bytes past it are not consumed.
    pub fn feed(&mut self, input: &[u8], data: impl FnMut(&[u8])) -> Result<Progress, ChunkError> {
        self.feed_inner(input, data, None)
    }

    /// [`feed`](Self::feed), also appending the trailer section's field
    /// lines (each `name: value\r\n`, checked as `feed` checks them) to
    /// `trailers`, for a peer that carries trailers in another framing.
    pub fn feed_keeping_trailers(
        &mut self,
        input: &[u8],
        data: impl FnMut(&[u8]),
        trailers: &mut Vec<u8>,
    ) -> Result<Progress, ChunkError> {
        self.feed_inner(input, data, Some(trailers))
    }

    fn feed_inner(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(&[u8]),
        mut trailers: Option<&mut Vec<u8>>,
    ) -> Result<Progress, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Done {
                break;
            }
            if self.state == State::Data {
                let take = (input.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                data(&input[i..i + take]);
                i += take;
                self.size -= take as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let b = input[i];
            i += 1;
            let before = self.state;
            self.state = self.step(b)?;
            let in_field = matches!(before, State::TrailerName | State::TrailerValue | State::TrailerLf)
                || (before == State::TrailerStart && self.state == State::TrailerName);
            if in_field && let Some(t) = trailers.as_deref_mut() {
                t.push(b);
            }
        }
        Ok(Progress { consumed: i, done: self.state == State::Done })
    }

    fn push_name(&mut self, b: u8) {
        if let Some(slot) = self.name.get_mut(usize::from(self.name_len)) {
            *slot = b.to_ascii_lowercase();
        }
        self.name_len = self.name_len.saturating_add(1);
    }

    fn count_metadata(&mut self) -> Result<(), ChunkError> {
        self.metadata += 1;
        if self.metadata > MAX_METADATA { Err(ChunkError::MetadataTooLong) } else { Ok(()) }
    }

    fn step(&mut self, b: u8) -> Result<State, ChunkError> {
        use State::*;
        Ok(match self.state {
            SizeStart | Size => match (b as char).to_digit(16) {
                Some(d) => {
                    // Leading zeros do not count towards the digit limit.
                    if self.size != 0 || d != 0 {
                        self.digits += 1;
                        if self.digits > MAX_SIZE_DIGITS {
                            return Err(ChunkError::SizeTooLarge);
                        }
                    }
                    self.size = self.size * 16 + u64::from(d);
                    Size
                }
                None if self.state == SizeStart => return Err(ChunkError::InvalidSize),
                None => match b {
                    b';' => {
                        self.count_metadata()?;
                        ExtNameStart
                    }
                    b' ' | b'\t' => SizeWs,
                    b'\r' => SizeLf,
                    b'\n' => return Err(ChunkError::MissingCrlf),
                    _ => return Err(ChunkError::InvalidSize),
                },
            },
            SizeWs => match b {
                b' ' | b'\t' => SizeWs,
                b';' => ExtNameStart,
                _ => return Err(ChunkError::InvalidSize),
            },
            ExtNameStart => {
                self.count_metadata()?;
                match b {
                    b' ' | b'\t' => ExtNameStart,
                    _ if is_tchar(b) => ExtName,
                    _ => return Err(ChunkError::InvalidExtension),
                }
            }
            ExtName => {
                self.count_metadata()?;
                match b {
                    _ if is_tchar(b) => ExtName,
                    b' ' | b'\t' => ExtAfterName,
                    b'=' => ExtValueStart,
                    b';' => ExtNameStart,
                    b'\r' => SizeLf,
                    _ => return Err(ChunkError::InvalidExtension),
                }
            }
            ExtAfterName => {
                self.count_metadata()?;
                match b {
                    b' ' | b'\t' => ExtAfterName,
                    b'=' => ExtValueStart,
                    b';' => ExtNameStart,
                    b'\r' => SizeLf,
                    _ => return Err(ChunkError::InvalidExtension),
                }
            }
            ExtValueStart => {
                self.count_metadata()?;
                match b {
                    b' ' | b'\t' => ExtValueStart,
                    b'"' => ExtQuoted,
                    _ if is_tchar(b) => ExtToken,
                    _ => return Err(ChunkError::InvalidExtension),
                }
            }
            ExtToken => {
                self.count_metadata()?;
                match b {
                    _ if is_tchar(b) => ExtToken,
                    b' ' | b'\t' => ExtAfterValue,
                    b';' => ExtNameStart,
                    b'\r' => SizeLf,
                    _ => return Err(ChunkError::InvalidExtension),
                }
            }
            ExtQuoted => {
                self.count_metadata()?;
                match b {
                    b'"' => ExtAfterValue,
                    b'\\' => ExtQuotedEscape,
                    b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff => ExtQuoted,
                    _ => return Err(ChunkError::InvalidExtension),
                }
            }
            ExtQuotedEscape => {
                self.count_metadata()?;
                match b {
                    b'\t' | b' '..=0x7e | 0x80..=0xff => ExtQuoted,
                    _ => return Err(ChunkError::InvalidExtension),
                }
            }
            ExtAfterValue => {
                self.count_metadata()?;
                match b {
                    b' ' | b'\t' => ExtAfterValue,
                    b';' => ExtNameStart,
                    b'\r' => SizeLf,
                    _ => return Err(ChunkError::InvalidExtension),
                }
            }
            SizeLf => {
                if b != b'\n' {
                    return Err(ChunkError::MissingCrlf);
                }
                self.digits = 0;
                if self.size == 0 {
                    self.metadata = 0;
                    TrailerStart
                } else {
                    Data
                }
            }
            Data => unreachable!("data is consumed in bulk by feed"),
            DataCr => match b {
                b'\r' => DataLf,
                _ => return Err(ChunkError::MissingCrlf),
            },
            DataLf => match b {
                b'\n' => {
                    self.metadata = 0;
                    SizeStart
                }
                _ => return Err(ChunkError::MissingCrlf),
            },
            // Trailer fields have the grammar of header fields (RFC 9112
            // §7.1.2): a token, a colon right after it, then field content.
            TrailerStart => match b {
                b'\r' => EndLf,
                _ if is_tchar(b) => {
                    self.count_metadata()?;
                    self.name_len = 0;
                    self.push_name(b);
                    TrailerName
                }
                _ => return Err(ChunkError::InvalidTrailer),
            },
            TrailerName => {
                self.count_metadata()?;
                match b {
                    _ if is_tchar(b) => {
                        self.push_name(b);
                        TrailerName
                    }
                    b':' => {
                        let name = &self.name[..usize::from(self.name_len).min(FORBIDDEN_NAME_MAX)];
                        if usize::from(self.name_len) <= FORBIDDEN_NAME_MAX && FORBIDDEN_TRAILERS.contains(&name) {
                            return Err(ChunkError::ForbiddenTrailer);
                        }
                        TrailerValue
                    }
                    _ => return Err(ChunkError::InvalidTrailer),
                }
            }
            TrailerValue => {
                self.count_metadata()?;
                match b {
                    b'\r' => TrailerLf,
                    b'\t' | b' '..=0x7e | 0x80..=0xff => TrailerValue,
                    _ => return Err(ChunkError::InvalidTrailer),
                }
            }
            TrailerLf => match b {
                b'\n' => TrailerStart,
                _ => return Err(ChunkError::MissingCrlf),
            },
            EndLf => match b {
                b'\n' => Done,
                _ => return Err(ChunkError::MissingCrlf),
            },
            Done => Done,
        })
    }
}

/// Decodes a complete chunked body in one call (for tests, benchmarks and
/// fuzzing): the data, and how many input bytes the body took.
pub fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize, bool), ChunkError> {
    let mut out = Vec::new();
    let mut d = ChunkedDecoder::new();
    let p = d.feed(input, |chunk| out.extend_from_slice(chunk))?;
    Ok((out, p.consumed, p.done))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_lines_are_kept_across_splits() {
        let body = b"3\r\nabc\r\n0\r\nX-T: 1\r\ngrpc-status: 0\r\n\r\n";
        for split in 0..body.len() {
            let mut d = ChunkedDecoder::new();
            let (mut data, mut trailers) = (Vec::new(), Vec::new());
            let p1 = d.feed_keeping_trailers(&body[..split], |c| data.extend_from_slice(c), &mut trailers).unwrap();
            let p2 =
                d.feed_keeping_trailers(&body[p1.consumed..], |c| data.extend_from_slice(c), &mut trailers).unwrap();
            assert!(p2.done);
            assert_eq!(data, b"abc");
            assert_eq!(trailers, b"X-T: 1\r\ngrpc-status: 0\r\n", "split at {split}");
        }
    }

    #[test]
    fn whole_body_with_extensions_and_trailers() {
        let body = b"5;name=value;q=\"a \\\"b\"\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\nHosts:\r\nContent-Lengthy: 2\r\n\r\nNEXT";
        let (data, used, done) = decode_all(body).unwrap();
        assert_eq!(data, b"hello world");
        assert!(done);
        assert_eq!(&body[used..], b"NEXT");
    }

    #[test]
    fn split_at_every_byte() {
        let body = b"A\r\n0123456789\r\n1f\r\nabcdefghijklmnopqrstuvwxyz01234\r\n0\r\n\r\n";
        for split in 0..body.len() {
            let mut d = ChunkedDecoder::new();
            let mut out = Vec::new();
            let a = d.feed(&body[..split], |c| out.extend_from_slice(c)).unwrap();
            assert_eq!(a.consumed, split);
            let b = d.feed(&body[split..], |c| out.extend_from_slice(c)).unwrap();
            assert!(b.done, "split at {split}");
            assert_eq!(a.consumed + b.consumed, body.len());
            assert_eq!(out, b"0123456789abcdefghijklmnopqrstuvwxyz01234");
        }
    }

    #[test]
    fn invalid_framing_is_refused() {
        let cases: &[(&[u8], ChunkError)] = &[
            (b"x\r\n", ChunkError::InvalidSize),
            (b"\r\n", ChunkError::InvalidSize),
            (b"-1\r\n", ChunkError::InvalidSize),
            (b"5 \r\nhello\r\n", ChunkError::InvalidSize),
            (b"0x5\r\n", ChunkError::InvalidSize),
            (b"1000000000000000\r\n", ChunkError::SizeTooLarge),
            (b"5;\r\nhello\r\n", ChunkError::InvalidExtension),
            (b"5;a=\"x\r\n", ChunkError::InvalidExtension),
            (b"5;=b\r\n", ChunkError::InvalidExtension),
            (b"5\nhello\r\n", ChunkError::MissingCrlf),
            (b"5\r\nhelloX\r\n", ChunkError::MissingCrlf),
            (b"5\r\nhello\r\r", ChunkError::MissingCrlf),
            (b"0\r\n: bad\r\n\r\n", ChunkError::InvalidTrailer),
            (b"0\r\nX: a\nb\r\n\r\n", ChunkError::InvalidTrailer),
            (b"0\r\nfoo\r\n\r\n", ChunkError::InvalidTrailer),
            (b"0\r\nX T: 1\r\n\r\n", ChunkError::InvalidTrailer),
            (b"0\r\nX-T : 1\r\n\r\n", ChunkError::InvalidTrailer),
            (b"0\r\nX-T: a\x01b\r\n\r\n", ChunkError::InvalidTrailer),
            (b"0\r\n X-T: 1\r\n\r\n", ChunkError::InvalidTrailer),
            (b"0\r\nContent-Length: 5\r\n\r\n", ChunkError::ForbiddenTrailer),
            (b"0\r\ntransfer-encoding: chunked\r\n\r\n", ChunkError::ForbiddenTrailer),
            (b"0\r\nHOST: evil\r\n\r\n", ChunkError::ForbiddenTrailer),
        ];
        for (input, want) in cases {
            assert_eq!(decode_all(input).map(|_| ()), Err(*want), "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn leading_zeros_are_not_an_overflow() {
        let (data, _, done) = decode_all(b"00000000000000000005\r\nhello\r\n0000\r\n\r\n").unwrap();
        assert_eq!(data, b"hello");
        assert!(done);
    }

    #[test]
    fn huge_extensions_are_refused() {
        let mut body = b"1;".to_vec();
        body.extend(std::iter::repeat_n(b'a', MAX_METADATA + 10));
        assert_eq!(decode_all(&body).map(|_| ()), Err(ChunkError::MetadataTooLong));
    }
}
