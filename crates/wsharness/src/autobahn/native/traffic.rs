//! Autobahn's `TrafficStats`: octets at the wire, WebSocket and application
//! levels, frames and messages, per direction, and the compression ratios
//! the report derives from them (`trafficStats` of the compression cases).
//!
//! Only data messages count, and only while the connection is open; octets
//! before that (the opening handshake) count apart as `preopen`.

use serde_json::{Value, json};

/// The counters, named as Autobahn's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrafficStats {
    /// Octets written to TCP while open.
    pub outgoing_octets_wire: u64,
    /// Payload octets of the data frames sent (compressed, when compressed).
    pub outgoing_octets_websocket: u64,
    /// Octets of the messages sent, before compression.
    pub outgoing_octets_app: u64,
    /// Data frames sent.
    pub outgoing_frames: u64,
    /// Messages sent.
    pub outgoing_messages: u64,
    /// Octets read from TCP while open.
    pub incoming_octets_wire: u64,
    /// Payload octets of the data frames received (compressed, when compressed).
    pub incoming_octets_websocket: u64,
    /// Octets of the messages received, after decompression.
    pub incoming_octets_app: u64,
    /// Data frames received.
    pub incoming_frames: u64,
    /// Messages received.
    pub incoming_messages: u64,
    /// Octets written before the connection opened.
    pub preopen_outgoing_octets_wire: u64,
    /// Octets read before the connection opened.
    pub preopen_incoming_octets_wire: u64,
}

/// `a / b` as Python computes `float(a) / float(b)`, or `None` when `b` is 0.
fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// `(a - b) / b`, or `None` when `b` is 0.
fn overhead(wire: u64, websocket: u64) -> Option<f64> {
    (websocket > 0).then(|| (wire as f64 - websocket as f64) / websocket as f64)
}

impl TrafficStats {
    /// `TrafficStats.__json__`.
    pub fn to_json(&self) -> Value {
        json!({
            "outgoingOctetsWireLevel": self.outgoing_octets_wire,
            "outgoingOctetsWebSocketLevel": self.outgoing_octets_websocket,
            "outgoingOctetsAppLevel": self.outgoing_octets_app,
            "outgoingCompressionRatio": ratio(self.outgoing_octets_websocket, self.outgoing_octets_app),
            "outgoingWebSocketOverhead": overhead(self.outgoing_octets_wire, self.outgoing_octets_websocket),
            "outgoingWebSocketFrames": self.outgoing_frames,
            "outgoingWebSocketMessages": self.outgoing_messages,
            "preopenOutgoingOctetsWireLevel": self.preopen_outgoing_octets_wire,
            "incomingOctetsWireLevel": self.incoming_octets_wire,
            "incomingOctetsWebSocketLevel": self.incoming_octets_websocket,
            "incomingOctetsAppLevel": self.incoming_octets_app,
            "incomingCompressionRatio": ratio(self.incoming_octets_websocket, self.incoming_octets_app),
            "incomingWebSocketOverhead": overhead(self.incoming_octets_wire, self.incoming_octets_websocket),
            "incomingWebSocketFrames": self.incoming_frames,
            "incomingWebSocketMessages": self.incoming_messages,
            "preopenIncomingOctetsWireLevel": self.preopen_incoming_octets_wire,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_as_autobahns() {
        // Numbers from a wstest report of 13.3.1 against Python websockets.
        let t = TrafficStats {
            outgoing_octets_wire: 21763,
            outgoing_octets_websocket: 15763,
            outgoing_octets_app: 16000,
            outgoing_frames: 1000,
            outgoing_messages: 1000,
            incoming_octets_wire: 6858,
            incoming_octets_websocket: 4858,
            incoming_octets_app: 16000,
            incoming_frames: 1000,
            incoming_messages: 1000,
            preopen_outgoing_octets_wire: 367,
            preopen_incoming_octets_wire: 330,
        };
        let v = t.to_json();
        // Python's repr of the same floats.
        assert_eq!(v["incomingCompressionRatio"].to_string(), "0.303625");
        assert_eq!(v["incomingWebSocketOverhead"].to_string(), "0.41169205434335115");
        assert_eq!(v["outgoingCompressionRatio"].to_string(), "0.9851875");
        assert_eq!(v["outgoingWebSocketOverhead"].to_string(), "0.38063820338768");
        assert_eq!(v.as_object().map(|o| o.len()), Some(16));
        let empty = TrafficStats::default().to_json();
        assert_eq!(empty["incomingCompressionRatio"], Value::Null);
        assert_eq!(empty["outgoingWebSocketOverhead"], Value::Null);
    }
}
