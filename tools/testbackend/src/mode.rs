//! The behaviours a [`Backend`](crate::Backend) can be switched between at run
//! time, and their command-line spelling (`ok`, `slow:250`, `status:503`, ...).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use thiserror::Error;

/// How the backend answers a request.
///
/// Modes marked *connection-level* break the exchange itself and apply to
/// every request, the health path included; the others apply to every path
/// except the health path, which always answers per
/// [`Backend::set_health`](crate::Backend::set_health).
///
/// The mode is read when a request head has been received (and, for
/// [`Mode::CloseImmediately`], also when a connection is accepted), so a
/// switch applies to requests that arrive afterwards, even on a connection
/// that is already open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// 200 with the configured body, plus the special paths (`/echo`,
    /// `/status/NNN`, `/chunked`, ...; see the crate documentation).
    #[default]
    Ok,
    /// Waits this long after reading the request, then answers as [`Mode::Ok`].
    Slow(Duration),
    /// *Connection-level.* Reads the request head and never answers; the
    /// socket stays open until the peer closes, the idle time-out passes or
    /// the backend stops.
    Stall,
    /// *Connection-level.* Reads the request head, then closes with RST
    /// (`SO_LINGER` 0).
    Reset,
    /// *Connection-level.* Closes each connection as soon as it is accepted,
    /// without reading.
    CloseImmediately,
    /// *Connection-level.* Sends a head announcing 100 body bytes, 10 of them,
    /// then closes.
    HalfResponse,
    /// *Connection-level.* Sends `this is not http\r\n\r\n` and closes.
    Garbage,
    /// *Connection-level.* Sends a status line whose code is `abc`.
    MalformedStatus,
    /// *Connection-level.* Sends a header line without a colon.
    MalformedHeaders,
    /// *Connection-level.* Announces 5 body bytes, sends 15, keeps the
    /// connection open.
    BodyLonger,
    /// *Connection-level.* Announces 50 body bytes, sends 5, then stalls with
    /// the connection open.
    BodyShorter,
    /// Answers every non-health request with this status and a short body.
    Status(u16),
}

impl Mode {
    /// Whether this mode breaks the exchange for every request, health checks
    /// included.
    pub fn is_connection_level(&self) -> bool {
        !matches!(self, Mode::Ok | Mode::Slow(_) | Mode::Status(_))
    }
}

/// A mode name that [`Mode::from_str`] does not understand.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ParseModeError {
    /// Not one of the known names.
    #[error(
        "unknown mode `{0}` (expected ok, slow:<ms>, stall, reset, close-immediately, half-response, \
         garbage, malformed-status, malformed-headers, body-longer, body-shorter or status:<code>)"
    )]
    Unknown(String),
    /// `slow:` or `status:` followed by something that is not a valid number.
    #[error("mode `{mode}` needs {expected} after the colon, got `{value}`")]
    BadNumber {
        /// `slow` or `status`.
        mode: &'static str,
        /// What the number had to be.
        expected: &'static str,
        /// The text after the colon.
        value: String,
    },
}

impl FromStr for Mode {
    type Err = ParseModeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Some(ms) = s.strip_prefix("slow:") {
            let ms = ms.parse::<u64>().map_err(|_| ParseModeError::BadNumber {
                mode: "slow",
                expected: "a number of milliseconds",
                value: ms.to_owned(),
            })?;
            return Ok(Mode::Slow(Duration::from_millis(ms)));
        }
        if let Some(code) = s.strip_prefix("status:") {
            return match code.parse::<u16>() {
                // Three digits is all a status line can carry (RFC 9112 section 4).
                Ok(n) if (100..=999).contains(&n) => Ok(Mode::Status(n)),
                _ => Err(ParseModeError::BadNumber {
                    mode: "status",
                    expected: "a status code from 100 to 999",
                    value: code.to_owned(),
                }),
            };
        }
        Ok(match s {
            "ok" => Mode::Ok,
            "stall" => Mode::Stall,
            "reset" => Mode::Reset,
            "close-immediately" => Mode::CloseImmediately,
            "half-response" => Mode::HalfResponse,
            "garbage" => Mode::Garbage,
            "malformed-status" => Mode::MalformedStatus,
            "malformed-headers" => Mode::MalformedHeaders,
            "body-longer" => Mode::BodyLonger,
            "body-shorter" => Mode::BodyShorter,
            other => return Err(ParseModeError::Unknown(other.to_owned())),
        })
    }
}

/// Writes the spelling [`Mode::from_str`] reads back.
impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Ok => f.write_str("ok"),
            Mode::Slow(d) => write!(f, "slow:{}", d.as_millis()),
            Mode::Stall => f.write_str("stall"),
            Mode::Reset => f.write_str("reset"),
            Mode::CloseImmediately => f.write_str("close-immediately"),
            Mode::HalfResponse => f.write_str("half-response"),
            Mode::Garbage => f.write_str("garbage"),
            Mode::MalformedStatus => f.write_str("malformed-status"),
            Mode::MalformedHeaders => f.write_str("malformed-headers"),
            Mode::BodyLonger => f.write_str("body-longer"),
            Mode::BodyShorter => f.write_str("body-shorter"),
            Mode::Status(code) => write!(f, "status:{code}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Mode; 12] = [
        Mode::Ok,
        Mode::Slow(Duration::from_millis(250)),
        Mode::Stall,
        Mode::Reset,
        Mode::CloseImmediately,
        Mode::HalfResponse,
        Mode::Garbage,
        Mode::MalformedStatus,
        Mode::MalformedHeaders,
        Mode::BodyLonger,
        Mode::BodyShorter,
        Mode::Status(503),
    ];

    #[test]
    fn every_mode_round_trips_through_its_spelling() {
        for mode in ALL {
            let text = mode.to_string();
            assert_eq!(text.parse::<Mode>(), Ok(mode), "{text}");
        }
    }

    #[test]
    fn only_ok_slow_and_status_spare_the_health_path() {
        let spared: Vec<_> = ALL.iter().filter(|m| !m.is_connection_level()).collect();
        assert_eq!(spared, [&Mode::Ok, &Mode::Slow(Duration::from_millis(250)), &Mode::Status(503)]);
    }

    #[test]
    fn bad_spellings_are_rejected_with_the_reason() {
        assert_eq!("sloww".parse::<Mode>(), Err(ParseModeError::Unknown("sloww".into())));
        assert!(matches!("slow:x".parse::<Mode>(), Err(ParseModeError::BadNumber { mode: "slow", .. })));
        assert!(matches!("status:99".parse::<Mode>(), Err(ParseModeError::BadNumber { mode: "status", .. })));
        assert!(matches!("status:1000".parse::<Mode>(), Err(ParseModeError::BadNumber { .. })));
        assert!("slow".parse::<Mode>().is_err());
    }
}
