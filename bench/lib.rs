//! ringgate's benchmarks live in `benches/` (criterion) and `compare.sh`
//! (wrk against ringgate, nginx and HAProxy side by side); this library is
//! empty.
