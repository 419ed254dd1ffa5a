//! ringgate's rewrite rule sets, with the semantics of Application Gateway
//! v2's: conditions on server variables and headers, then request-header,
//! response-header and URL rewrites. A set is compiled once, when the
//! configuration is loaded ([`compile`], which reports every mistake at once
//! as [`SpecError`]s), and evaluated per request ([`RuleSet::request_edits`],
//! [`RuleSet::response_edits`]) into a reusable [`Edits`] that the proxy
//! applies in one pass over the parsed head. A set whose conditions do not
//! match costs its regex searches and nothing else: no allocation, no copy.
//!
//! # Variables
//!
//! | Spelling | Value |
//! |---|---|
//! | `uri_path` | the request path, without the query |
//! | `query_string` (also `request_query`) | what follows `?`, without it |
//! | `request_uri` | the original request target, path and query |
//! | `host` | the request's host, without the port |
//! | `http_method` (also `request_method`) | `GET`, `POST`, ... |
//! | `http_version` | `HTTP/1.0`, `HTTP/1.1` |
//! | `request_scheme` | `http` or `https` |
//! | `client_ip`, `client_port` | the peer that connected to the gateway |
//! | `server_port` | the listener's port |
//! | `add_x_forwarded_for_proxy` | the client's X-Forwarded-For with `client_ip` appended |
//! | `ssl_enabled`, `ssl_connection_protocol`, `ciphers_used` | the client TLS connection |
//! | `cookie_<name>` | the request cookie `<name>` |
//! | `http_status` | the backend's status code (response phase) |
//! | `http_req_<header>` | a request header (any case) |
//! | `http_resp_<header>` | a response header (response phase) |
//!
//! A condition names a server variable bare or with `var_` (`uri_path`,
//! `var_uri_path`). The caller supplies values through [`Vars`]; an absent
//! variable fails its condition (a negated one holds) and substitutes as
//! nothing. Application Gateway variables ringgate does not provide
//! (`client_tcp_rtt`, `client_certificate*`, ...) are refused by name.
//!
//! # Templates
//!
//! Header values, the URL path and the query string are text with
//! references: `{var_<server variable>}`, `{http_req_<header>}`,
//! `{http_resp_<header>}`, and capture groups of the rule's conditions,
//! `{var_uri_path_1}`, `{http_req_user-agent_2}`, `{http_resp_location_1}`:
//! group N of the rule's first non-negated condition on that variable (0 is
//! the whole match; a group that did not take part is empty). A trailing
//! `_<digits>` always means a group. Other braces are literal text. Values
//! are split into literal and reference parts at compile time.
//!
//! A header whose value is empty, as configured or once substituted, is
//! deleted. A URL path with a literal `?` sets the path and the query string
//! (`/view?id={var_uri_path_1}`); a query string that is empty removes the
//! query.
//!
//! # Evaluation
//!
//! Rules run in ascending `sequence`, equal sequences in listed order. A
//! rule applies when all its conditions match (AND); conditions are tested
//! in order and the first failure stops the rule. A condition's pattern is a
//! regular expression (RE2 syntax) searched anywhere in the value, case
//! folded when `ignore_case`, inverted by `negate`; it is Unicode-aware (`.`
//! is one UTF-8 character), so match arbitrary bytes with `(?s-u)`. Matching
//! is decided with a plain search; capture groups are located afterwards,
//! only for a rule that matched and only for the conditions its values
//! reference. Conditions always see the
//! request as received: one rule's edits do not feed the next rule's
//! conditions. When several rules edit the same header, or the URL, the last
//! one wins.
//!
//! # Phases
//!
//! Request headers and the URL are rewritten before the request is
//! forwarded ([`RuleSet::request_edits`]); response headers when the
//! response head arrives ([`RuleSet::response_edits`], whose [`Vars`] also
//! answers `http_resp_*` and `http_status`). A rule may do both; its
//! conditions are then tested in each phase, so they may not use response
//! variables, and neither may a value it writes into the request.
//!
//! # Safety
//!
//! At compile time: header names must be HTTP tokens; hop-by-hop headers
//! (Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade) and the
//! framing headers Content-Length and Transfer-Encoding cannot be rewritten
//! (the gateway writes them itself; a rewritten length would desynchronise
//! the next hop); Host can be set but not deleted; literal text may not
//! contain control characters, nor, in a URL, spaces or `#`.
//!
//! At run time, substituted values come from the client and are checked
//! before they are returned: a header value containing CR, LF, NUL or any
//! other control character except tab is *dropped* (the edit is not made,
//! [`Edits::dropped`] counts it); so is a URL whose path does not start with
//! `/` or whose path or query contains a control character, a space, `#`,
//! non-ASCII bytes, or (path only) `?`. A rule's path and query are made
//! together or not at all.

mod compile;
mod edits;
mod ruleset;
mod spec;
mod template;
#[cfg(test)]
mod testutil;
mod variable;

pub use compile::compile;
pub use edits::{Edits, HeaderEdit};
pub use ruleset::RuleSet;
pub use spec::{ActionSpec, ConditionSpec, RuleSetSpec, RuleSpec, SpecError};
pub use variable::{CertField, Phase, Variable, Vars, cookie_value, server_variable_names};
