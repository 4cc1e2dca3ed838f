//! Keeping what passes: the bytes each side sent, recorded as a packet
//! capture ([`pcapng`], for `--pcap FILE`), the HTTP exchanges and
//! WebSocket messages as HAR ([`har`], for `--har FILE`), and captures read
//! back into the proxy's events ([`read`], for `wsproxy read FILE`).
//!
//! The relay and the session know, for each connection, its addresses,
//! the bytes each side sent and when, and how each side ended. They write
//! that as binary records (`record`) into the buffers of the outputs whose format
//! is [`crate::Format::Capture`], next to the rendered events of the other
//! outputs: the same batches, the same bounded queue, the same writer
//! thread. The capture outputs' writers ([`pcapng::PcapngWriter`],
//! [`har::HarWriter`]) turn the records into packets or HAR entries. Nothing is parsed back from JSON.

pub mod har;
pub mod pcapng;
pub mod read;
mod resync;
