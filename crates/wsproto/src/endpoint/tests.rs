use proptest::prelude::*;

use super::*;
use crate::deflate::{DeflateOffer, DeflateServerConfig, Negotiation};
use crate::handshake::parse_extensions;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A client frame: masked, as §5.3 requires.
fn client_frame(opcode: OpCode, fin: bool, rsv1: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let header = FrameHeader { fin, rsv1, mask: Some(MASK), ..FrameHeader::new(opcode, 0) };
    encode_frame(&header, payload, &mut out);
    out
}

/// Feeds `wire` in pieces of `split` bytes.
fn feed(server: &mut Endpoint, wire: &[u8], split: usize) -> Vec<Received> {
    let mut received = Vec::new();
    for piece in wire.chunks(split.max(1)) {
        server.handle_all(&mut piece.to_vec(), &mut received);
    }
    received
}

/// The frames the server sent: (opcode, rsv1, payload) each.
fn server_frames(wire: &[u8]) -> Vec<(OpCode, bool, Vec<u8>)> {
    let mut decoder = Decoder::new(Role::Server, DecoderConfig { allow_rsv1: true, ..DecoderConfig::default() });
    let mut frames = Vec::new();
    let mut payload = Vec::new();
    let mut input = wire;
    while let Some(event) = {
        let d = decoder.decode(input);
        input = &input[d.consumed..];
        d.event
    } {
        match event {
            Event::Payload(p) => p.extend_unmasked(&mut payload),
            Event::FrameEnd(end) => {
                frames.push((end.header.opcode, end.header.rsv1, std::mem::take(&mut payload)));
            }
            Event::Violation(v) => panic!("the server broke {v}"),
            Event::Header(_) => {}
        }
    }
    frames
}

fn close_code(payload: &[u8]) -> Option<u16> {
    parse_close_payload(payload).ok().flatten().map(|c| c.code.0)
}

/// A message before a violation in the same input is answered before the
/// close: the caller gets it first.
#[test]
fn input_stops_after_each_message() {
    let mut server = Endpoint::server(EndpointConfig::default());
    let mut wire = client_frame(OpCode::Text, true, false, b"first");
    let first_len = wire.len();
    wire.extend(client_frame(OpCode::Text, true, false, b"second"));
    wire.extend(client_frame(OpCode::Reserved(5), true, false, b""));
    let mut received = Vec::new();
    let used = server.handle_input(&mut wire, &mut received);
    assert_eq!((used, received.len()), (first_len, 1));
    server.send(MessageKind::Text, b"first");
    let used2 = server.handle_input(&mut wire[used..], &mut received);
    server.send(MessageKind::Text, b"second");
    let used3 = server.handle_input(&mut wire[used + used2..], &mut received);
    assert_eq!(used + used2 + used3, wire.len());
    assert_eq!(received.last(), Some(&Received::Failed(Error::ReservedOpcode)));
    let frames = server_frames(server.output());
    let opcodes: Vec<OpCode> = frames.iter().map(|f| f.0).collect();
    assert_eq!(opcodes, [OpCode::Text, OpCode::Text, OpCode::Close]);
}

#[test]
fn messages_pings_and_the_close_handshake() {
    let mut server = Endpoint::server(EndpointConfig::default());
    let mut wire = client_frame(OpCode::Text, false, false, "κό".as_bytes());
    wire.extend(client_frame(OpCode::Ping, true, false, b"hi"));
    wire.extend(client_frame(OpCode::Continuation, true, false, "σμε".as_bytes()));
    wire.extend(client_frame(OpCode::Binary, true, false, &[0, 255]));
    wire.extend(client_frame(OpCode::Close, true, false, &encode_close_payload(CloseCode(4001), "bye")));
    for split in [1, 3, wire.len()] {
        let mut server = Endpoint::server(EndpointConfig::default());
        let received = feed(&mut server, &wire, split);
        assert_eq!(
            received,
            [
                Received::Ping(b"hi".to_vec()),
                Received::Message { kind: MessageKind::Text, data: "κόσμε".as_bytes().to_vec() },
                Received::Message { kind: MessageKind::Binary, data: vec![0, 255] },
                Received::Close(Some((CloseCode(4001), "bye".to_owned()))),
            ],
            "split {split}"
        );
        assert!(server.is_closed());
        let frames = server_frames(server.output());
        assert_eq!(frames[0], (OpCode::Pong, false, b"hi".to_vec()));
        // §5.5.1: the close is answered, echoing the code.
        assert_eq!((frames[1].0, close_code(&frames[1].2)), (OpCode::Close, Some(4001)));
    }
    // After the server's own close, it sends no data and waits for the client's.
    server.close(CloseCode::GOING_AWAY, "shutting down");
    server.send(MessageKind::Text, b"late");
    assert!(server.close_sent() && !server.is_closed());
    let mut received = Vec::new();
    server.handle_all(&mut client_frame(OpCode::Close, true, false, &[0x03, 0xe9]), &mut received);
    assert!(server.is_closed());
    let frames = server_frames(server.output());
    assert_eq!(frames.len(), 1, "only the server's close: {frames:?}");
}

/// Every violation fails the connection with its code (RFC 6455 §7.4.1),
/// and only the client's close is read after it.
#[test]
fn violations_close_with_their_code() {
    let deflate = Some(DeflateParams::default());
    let compressed = |data: &[u8]| {
        let mut out = Vec::new();
        Deflater::new(6, false).compress_message(data, &mut out);
        out
    };
    let small = EndpointConfig { max_message_len: 10, ..EndpointConfig::default() };
    let cases: Vec<(&str, EndpointConfig, Vec<u8>, Error)> = vec![
        (
            "rsv1 without deflate",
            EndpointConfig::default(),
            client_frame(OpCode::Text, true, true, b"x"),
            Error::ReservedBitSet,
        ),
        (
            "bad utf-8",
            EndpointConfig::default(),
            client_frame(OpCode::Text, true, false, b"\xce\xba\xff"),
            Error::InvalidUtf8,
        ),
        (
            "bad utf-8, compressed",
            EndpointConfig { deflate, ..EndpointConfig::default() },
            client_frame(OpCode::Text, true, true, &compressed(b"ok \xff")),
            Error::InvalidUtf8,
        ),
        (
            "truncated utf-8, compressed",
            EndpointConfig { deflate, ..EndpointConfig::default() },
            client_frame(OpCode::Text, true, true, &compressed(b"\xce")),
            Error::InvalidUtf8,
        ),
        ("message over the limit", small, client_frame(OpCode::Binary, true, false, &[0; 11]), Error::MessageTooLarge),
        (
            "inflated over the limit",
            EndpointConfig { deflate, ..small },
            client_frame(OpCode::Binary, true, true, &compressed(&[0; 11])),
            Error::InflatedTooLarge,
        ),
        (
            "not deflate data",
            EndpointConfig { deflate, ..EndpointConfig::default() },
            client_frame(OpCode::Binary, true, true, &[0xff; 8]),
            Error::InflateFailed,
        ),
        (
            "rsv1 on a continuation",
            EndpointConfig { deflate, ..EndpointConfig::default() },
            [client_frame(OpCode::Binary, false, false, b"a"), client_frame(OpCode::Continuation, true, true, b"b")]
                .concat(),
            Error::MisplacedCompressedBit,
        ),
        (
            "fragmented ping",
            EndpointConfig::default(),
            client_frame(OpCode::Ping, false, false, b""),
            Error::ControlFrameFragmented,
        ),
        (
            "continuation first",
            EndpointConfig::default(),
            client_frame(OpCode::Continuation, true, false, b"x"),
            Error::UnexpectedContinuation,
        ),
        (
            "close code 1005",
            EndpointConfig::default(),
            client_frame(OpCode::Close, true, false, &[0x03, 0xed]),
            Error::InvalidCloseCode,
        ),
        (
            "unmasked",
            EndpointConfig::default(),
            {
                let mut v = Vec::new();
                encode_frame(&FrameHeader::new(OpCode::Text, 0), b"x", &mut v);
                v
            },
            Error::UnmaskedClientFrame,
        ),
    ];
    for (name, config, frames, error) in cases {
        let mut server = Endpoint::server(config);
        let mut wire = frames;
        // Data after the violation is ignored; the client's close ends it.
        wire.extend(client_frame(OpCode::Text, true, false, b"ignored"));
        wire.extend(client_frame(OpCode::Close, true, false, &[0x03, 0xe8]));
        let received = feed(&mut server, &wire, 1);
        assert_eq!(received.first(), Some(&Received::Failed(error)), "{name}: {received:?}");
        assert_eq!(received.len(), 1, "{name}: {received:?}");
        let code = error.close_code().map(|c| c.0);
        let frames = server_frames(server.output());
        assert_eq!(frames.len(), 1, "{name}: {frames:?}");
        assert_eq!((frames[0].0, close_code(&frames[0].2)), (OpCode::Close, code), "{name}");
        assert!(server.is_closed(), "{name}");
    }
}

fn exts(header: &str) -> Vec<crate::handshake::Extension<'_>> {
    let mut out = Vec::new();
    parse_extensions(header.as_bytes(), &mut out).expect("extension syntax");
    out
}

fn offer_strategy() -> impl Strategy<Value = DeflateOffer> {
    (any::<bool>(), any::<bool>(), prop::option::of(8u8..=15), prop::option::of(prop::option::of(8u8..=15))).prop_map(
        |(snct, cnct, smwb, cmwb)| DeflateOffer {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: smwb,
            client_max_window_bits: cmwb,
        },
    )
}

fn server_config_strategy() -> impl Strategy<Value = DeflateServerConfig> {
    (any::<bool>(), any::<bool>(), 8u8..=15, 8u8..=15).prop_map(|(snct, cnct, sbits, cbits)| DeflateServerConfig {
        server_no_context_takeover: snct,
        client_no_context_takeover: cnct,
        server_max_window_bits: sbits,
        client_max_window_bits: cbits,
    })
}

/// Messages that compress and refer back across messages and far within
/// them (so that small windows and context takeover matter).
fn messages_strategy() -> impl Strategy<Value = Vec<(bool, Vec<u8>)>> {
    let words = prop::sample::select(vec!["hello ", "κόσμε ", "window ", "deflate ", "x", "0123456789abcdef"]);
    let text = prop::collection::vec(words, 0..400).prop_map(|w| w.concat().into_bytes());
    let binary = prop::collection::vec(any::<u8>(), 0..3000);
    prop::collection::vec(prop_oneof![text.prop_map(|t| (true, t)), binary.prop_map(|b| (false, b))], 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every offer and every server configuration: the client's offer goes
    /// through the server's negotiation, the client checks the answer, then
    /// the client compresses its messages with our `Deflater` per the agreed
    /// client parameters (fragmented, fed to the server in any pieces); the
    /// server reads them back unchanged and echoes them, compressed per the
    /// server parameters, and the client's `Inflater` (auditing the agreed
    /// server window) reads the echoes back unchanged.
    #[test]
    fn round_trip_with_the_client_side_for_every_parameter_combination(
        offer in offer_strategy(),
        config in server_config_strategy(),
        messages in messages_strategy(),
        level in 0u32..=9,
        fragment in 1usize..2000,
        split in 1usize..5000,
    ) {
        let offered = offer.to_string();
        let Negotiation::Accepted { params, declined: 0 } = DeflateOffer::negotiate(&exts(&offered), &config) else {
            panic!("a valid offer is accepted");
        };
        let answer = params.to_string();
        prop_assert_eq!(crate::deflate::DeflateParams::from_response_to(&exts(&offered), &exts(&answer)), Ok(Some(params)));

        let mut client_deflater = Deflater::with_window_bits(
            level,
            params.no_context_takeover(Role::Client),
            params.max_window_bits(Role::Client),
        );
        let mut wire = Vec::new();
        for (text, data) in &messages {
            let mut compressed = Vec::new();
            client_deflater.compress_message(data, &mut compressed);
            let opcode = if *text { OpCode::Text } else { OpCode::Binary };
            let pieces: Vec<&[u8]> = compressed.chunks(fragment).collect();
            for (i, piece) in pieces.iter().enumerate() {
                let op = if i == 0 { opcode } else { OpCode::Continuation };
                wire.extend(client_frame(op, i + 1 == pieces.len(), i == 0, piece));
            }
        }
        let mut server = Endpoint::server(EndpointConfig { deflate: Some(params), ..EndpointConfig::default() });
        let received = feed(&mut server, &wire, split);
        prop_assert_eq!(received.len(), messages.len());
        for (got, (text, data)) in received.iter().zip(&messages) {
            let kind = if *text { MessageKind::Text } else { MessageKind::Binary };
            prop_assert_eq!(got, &Received::Message { kind, data: data.clone() });
            server.send(kind, data);
        }

        let mut inflater = Inflater::with_window_bits(
            params.no_context_takeover(Role::Server),
            params.max_window_bits(Role::Server),
            1 << 20,
        );
        let frames = server_frames(server.output());
        prop_assert_eq!(frames.len(), messages.len());
        for ((opcode, rsv1, payload), (text, data)) in frames.iter().zip(&messages) {
            prop_assert_eq!(*opcode, if *text { OpCode::Text } else { OpCode::Binary });
            prop_assert!(*rsv1);
            let mut inflated = Vec::new();
            inflater.begin_message();
            inflater.inflate(payload, &mut |b| inflated.extend_from_slice(b)).expect("the server's data inflates");
            inflater.end_message(&mut |b| inflated.extend_from_slice(b)).expect("within the agreed window");
            prop_assert_eq!(&inflated, data);
        }
    }
}

/// A recycled buffer collects the next message; one over 1 MiB is not kept.
#[test]
fn recycled_buffers_are_reused_up_to_a_limit() {
    let mut server = Endpoint::server(EndpointConfig::default());
    let capacity_of_next = |server: &mut Endpoint| {
        let received = feed(server, &client_frame(OpCode::Binary, true, false, b"abc"), 100);
        match received.as_slice() {
            [Received::Message { data, .. }] => {
                assert_eq!(data, b"abc");
                data.capacity()
            }
            other => panic!("{other:?}"),
        }
    };
    server.recycle(Vec::with_capacity(4096));
    assert!(capacity_of_next(&mut server) >= 4096);
    server.recycle(Vec::with_capacity(MAX_SPARE + 1));
    assert!(capacity_of_next(&mut server) < 4096);
}

/// A client endpoint's masking keys: a counter, so that each frame's key
/// is known and distinct.
fn counting_keys() -> MaskKeys {
    let mut n: u32 = 0x0102_0304;
    Box::new(move || {
        n = n.wrapping_add(0x1111_1111);
        n.to_be_bytes()
    })
}

/// The frames a client sent, decoded as a server decodes them: (mask,
/// opcode, payload) each.
fn client_frames(wire: &[u8]) -> Vec<(Option<[u8; 4]>, OpCode, Vec<u8>)> {
    let mut decoder = Decoder::new(Role::Client, DecoderConfig { allow_rsv1: true, ..DecoderConfig::default() });
    let mut wire = wire.to_vec();
    let mut frames = Vec::new();
    let (mut mask, mut payload) = (None, Vec::new());
    let mut at = 0;
    loop {
        let d = decoder.decode_mut(&mut wire[at..]);
        at += d.consumed;
        match d.event {
            Some(Event::Header(h)) => {
                mask = h.header.mask;
                payload.clear();
            }
            Some(Event::Payload(p)) => payload.extend_from_slice(p.data()),
            Some(Event::FrameEnd(end)) => {
                if end.header.opcode.is_control() {
                    payload = decoder.control_payload().to_vec();
                }
                frames.push((mask, end.header.opcode, std::mem::take(&mut payload)));
            }
            Some(Event::Violation(v)) => panic!("the client's frames are valid: {:?}", v.error),
            None if d.consumed == 0 => break,
            None => {}
        }
    }
    frames
}

/// §5.3: every frame a client sends is masked, each with the next key;
/// the payload on the wire is the masked one and unmasks to what was sent.
#[test]
fn a_client_masks_every_frame_with_a_fresh_key() {
    let mut client = Endpoint::client(EndpointConfig::default(), counting_keys());
    assert_eq!(client.role(), Role::Client);
    client.send(MessageKind::Text, b"Hello");
    client.send(MessageKind::Binary, &[0, 1, 2]);
    client.close(CloseCode::NORMAL, "bye");
    let wire = client.output().clone();
    // The first frame's key is the first key; its payload is masked on the wire.
    assert_eq!(&wire[..2], &[0x81, 0x85]);
    assert_eq!(&wire[2..6], &[0x12, 0x13, 0x14, 0x15]);
    assert_ne!(&wire[6..11], b"Hello");
    let frames = client_frames(&wire);
    let keys: Vec<_> = frames.iter().map(|f| f.0).collect();
    assert_eq!(keys, [Some([0x12, 0x13, 0x14, 0x15]), Some([0x23, 0x24, 0x25, 0x26]), Some([0x34, 0x35, 0x36, 0x37])]);
    assert_eq!(frames[0].2, b"Hello");
    assert_eq!(frames[1].2, [0, 1, 2]);
    assert_eq!(close_code(&frames[2].2), Some(1000));
}

/// §5.1: a client fails the connection (1002) on a masked frame from the
/// server; it reads unmasked ones, answers pings with masked pongs, and
/// answers the server's close.
#[test]
fn a_client_reads_unmasked_frames_and_refuses_masked_ones() {
    let mut client = Endpoint::client(EndpointConfig::default(), counting_keys());
    let mut wire = vec![0x81, 0x02, b'h', b'i', 0x89, 0x01, b'p', 0x88, 0x02, 0x03, 0xe8];
    let mut received = Vec::new();
    client.handle_all(&mut wire, &mut received);
    assert_eq!(
        received,
        [
            Received::Message { kind: MessageKind::Text, data: b"hi".to_vec() },
            Received::Ping(b"p".to_vec()),
            Received::Close(Some((CloseCode::NORMAL, String::new()))),
        ]
    );
    assert!(client.is_closed());
    let frames = client_frames(client.output());
    assert_eq!(frames.iter().map(|f| f.1).collect::<Vec<_>>(), [OpCode::Pong, OpCode::Close]);
    assert!(frames.iter().all(|f| f.0.is_some()));
    assert_eq!(frames[0].2, b"p");
    assert_eq!(close_code(&frames[1].2), Some(1000));

    let mut client = Endpoint::client(EndpointConfig::default(), counting_keys());
    let mut masked = client_frame(OpCode::Text, true, false, b"hi");
    let mut received = Vec::new();
    client.handle_all(&mut masked, &mut received);
    assert!(matches!(received.as_slice(), [Received::Failed(_)]), "{received:?}");
    let frames = client_frames(client.output());
    assert_eq!(frames.len(), 1);
    assert_eq!(close_code(&frames[0].2), Some(1002));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A client endpoint and a server endpoint talk through any offer and
    /// any server configuration: the client's messages reach the server
    /// unchanged, the server's echoes reach the client unchanged, each side
    /// compressing with its own parameters and inflating with the other's
    /// (RFC 7692 §7.1), the bytes cut anywhere on the way.
    #[test]
    fn a_client_endpoint_and_a_server_endpoint_agree_for_every_parameter_combination(
        offer in prop::option::of(offer_strategy()),
        config in server_config_strategy(),
        messages in messages_strategy(),
        split in 1usize..5000,
    ) {
        let params = match &offer {
            None => None,
            Some(offer) => {
                let offered = offer.to_string();
                let Negotiation::Accepted { params, .. } = DeflateOffer::negotiate(&exts(&offered), &config) else {
                    panic!("a valid offer is accepted");
                };
                Some(params)
            }
        };
        let config = EndpointConfig { deflate: params, ..EndpointConfig::default() };
        let mut client = Endpoint::client(config, counting_keys());
        let mut server = Endpoint::server(config);
        for (text, data) in &messages {
            client.send(if *text { MessageKind::Text } else { MessageKind::Binary }, data);
        }
        client.close(CloseCode::NORMAL, "");
        let wire = std::mem::take(client.output());
        let at_server = feed(&mut server, &wire, split);
        prop_assert_eq!(at_server.len(), messages.len() + 1);
        for (got, (text, data)) in at_server.iter().zip(&messages) {
            let kind = if *text { MessageKind::Text } else { MessageKind::Binary };
            prop_assert_eq!(got, &Received::Message { kind, data: data.clone() });
        }
        prop_assert_eq!(&at_server[messages.len()], &Received::Close(Some((CloseCode::NORMAL, String::new()))));
        prop_assert!(server.is_closed());

        // The server's echoes, read by a client that has not closed.
        let mut client = Endpoint::client(config, counting_keys());
        let mut server = Endpoint::server(config);
        for (text, data) in &messages {
            server.send(if *text { MessageKind::Text } else { MessageKind::Binary }, data);
        }
        let wire = std::mem::take(server.output());
        let at_client = feed(&mut client, &wire, split);
        prop_assert_eq!(at_client.len(), messages.len());
        for (got, (text, data)) in at_client.iter().zip(&messages) {
            let kind = if *text { MessageKind::Text } else { MessageKind::Binary };
            prop_assert_eq!(got, &Received::Message { kind, data: data.clone() });
        }
    }
}

/// A compressed text message whose data inflates to invalid UTF-8 and
/// then refers back beyond the start of the window fails by the first
/// fault, invalid UTF-8 (1007), whether the frame arrives whole or in
/// pieces. The fuzz target `endpoint` found it failing as 1007 or as a
/// DEFLATE error depending on the cuts: the data inflated before the
/// corrupt spot was dropped when the error came in the same call.
#[test]
fn the_first_fault_in_compressed_text_decides_however_it_is_cut() {
    let params = crate::deflate::DeflateParams::default();
    // The fuzzer's message: "compressed" with one octet changed (invalid
    // UTF-8), then a distance too far back.
    let payload = [0x4a, 0xce, 0xcf, 0x2d, 0x28, 0x4a, 0x7a, 0x2d, 0x2e, 0x4e, 0x4d, 0x51, 0x48, 0x86, 0x33, 0x00];
    let mut wire = vec![0xc1, payload.len() as u8];
    wire.extend_from_slice(&payload);
    for split in [wire.len(), 7, 1] {
        let config = EndpointConfig { deflate: Some(params), ..EndpointConfig::default() };
        let mut client = Endpoint::client(config, counting_keys());
        let received = feed(&mut client, &wire, split);
        assert_eq!(received, [Received::Failed(Error::InvalidUtf8)], "split {split}");
        let frames = client_frames(client.output());
        assert_eq!(close_code(&frames[0].2), Some(1007), "split {split}");
    }
}

/// `send_header` queues the header alone for a server without compression
/// (the caller writes the payload after it), and refuses where the payload
/// would change (a client masks, deflate compresses) or after the close.
#[test]
fn send_header_queues_the_header_only_where_the_payload_goes_as_it_is() {
    let mut server = Endpoint::server(EndpointConfig::default());
    assert!(server.send_header(MessageKind::Binary, 70_000));
    assert_eq!(server.output(), &[0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    server.output().clear();
    assert!(server.send_header(MessageKind::Text, 5));
    assert_eq!(server.output(), &[0x81, 5]);
    server.output().clear();
    server.close(CloseCode::NORMAL, "");
    server.output().clear();
    assert!(!server.send_header(MessageKind::Text, 5), "§5.5.1: no data after the close");
    assert!(server.output().is_empty());

    let mut client = Endpoint::client(EndpointConfig::default(), counting_keys());
    assert!(!client.send_header(MessageKind::Text, 5), "a client masks its payload");
    let deflate = Some(crate::deflate::DeflateParams::default());
    let mut compressing = Endpoint::server(EndpointConfig { deflate, ..EndpointConfig::default() });
    assert!(!compressing.send_header(MessageKind::Text, 5), "deflate compresses the payload");
    assert!(client.output().is_empty() && compressing.output().is_empty());
}

/// Feeds `wire` as a socket shell with direct reads would: where the
/// endpoint offers its message buffer, up to `step` bytes (and `over` more
/// than allowed, to check that they are not lost) are appended there;
/// elsewhere `step` bytes go through `handle_all`. With `lazy`, every other
/// append is not followed by `payload_read` (the next `payload_buffer` or
/// `handle_all` must take it in). Returns what was received and the output.
fn feed_direct(endpoint: &mut Endpoint, wire: &[u8], step: usize, over: usize, lazy: bool) -> (Vec<Received>, Vec<u8>) {
    let step = step.max(1);
    let mut received = Vec::new();
    let mut at = 0;
    let mut appends = 0;
    while at < wire.len() {
        if let Some((buf, limit)) = endpoint.payload_buffer() {
            assert!(limit >= 1, "room for nothing");
            let n = (limit.min(step) + over).min(wire.len() - at);
            buf.extend_from_slice(&wire[at..at + n]);
            at += n;
            appends += 1;
            if !lazy || appends % 2 == 0 {
                endpoint.payload_read(&mut received);
            }
        } else {
            let n = step.min(wire.len() - at);
            endpoint.handle_all(&mut wire[at..at + n].to_vec(), &mut received);
            at += n;
        }
    }
    endpoint.handle_all(&mut [], &mut received);
    (received, std::mem::take(endpoint.output()))
}

/// A client frame of any kind, including ones that break rules: opcode
/// (data, continuation, ping, close, reserved), fin, rsv1, and a payload
/// that may be text, invalid UTF-8 or binary.
fn any_client_frame() -> impl Strategy<Value = Vec<u8>> {
    let opcode = prop::sample::select(vec![
        OpCode::Text,
        OpCode::Binary,
        OpCode::Continuation,
        OpCode::Continuation,
        OpCode::Ping,
        OpCode::Close,
        OpCode::Reserved(3),
    ]);
    let payload = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..3000),
        "[a-zκόσμε]{0,600}".prop_map(String::into_bytes),
        Just(b"\xce\xba\xff valid after".to_vec()),
    ];
    (opcode, any::<bool>(), prop::bool::weighted(0.1), payload).prop_map(|(opcode, fin, rsv1, payload)| {
        let payload = if opcode == OpCode::Close {
            payload.get(..2.min(payload.len())).unwrap_or_default().to_vec()
        } else {
            payload
        };
        let fin = fin || opcode.is_control();
        client_frame(opcode, fin, rsv1, &payload)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Reading payload straight into the message buffer changes nothing:
    /// the same messages, failures and output as the ordinary path, with
    /// or without deflate, however the bytes come, and with bytes beyond
    /// the allowed count.
    #[test]
    fn payload_read_straight_into_the_message_is_the_same_as_handle_input(
        frames in prop::collection::vec(any_client_frame(), 1..8),
        step in 1usize..4000,
        over in prop::sample::select(vec![0usize, 0, 0, 1, 7]),
        deflate in any::<bool>(),
        small_limit in any::<bool>(),
        lazy in any::<bool>(),
    ) {
        let config = EndpointConfig {
            deflate: deflate.then(DeflateParams::default),
            max_message_len: if small_limit { 2000 } else { 16 << 20 },
            ..EndpointConfig::default()
        };
        let wire = frames.concat();
        let mut whole = Endpoint::server(config);
        let mut expected = Vec::new();
        whole.handle_all(&mut wire.clone(), &mut expected);
        let expected_output = std::mem::take(whole.output());
        // Lazy callers append exactly what is allowed (more than allowed,
        // not taken in at once, is handled as `handle_all` would).
        let over = if lazy { 0 } else { over };
        let (received, output) = feed_direct(&mut Endpoint::server(config), &wire, step, over, lazy);
        prop_assert_eq!(received, expected);
        prop_assert_eq!(output, expected_output);
    }
}

/// A large binary message in pieces straight into its buffer; text that
/// turns out not to be UTF-8 fails with 1007 there as it would elsewhere,
/// and the peer's close after it is still seen.
#[test]
fn payload_buffer_takes_large_payload_and_checks_it() {
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
    let wire = client_frame(OpCode::Binary, true, false, &data);
    let mut server = Endpoint::server(EndpointConfig::default());
    let mut received = Vec::new();
    // The header and a few payload bytes the ordinary way.
    assert_eq!(server.handle_input(&mut wire[..20].to_vec(), &mut received), 20);
    let mut direct = 0;
    let mut at = 20;
    while let Some((buf, limit)) = server.payload_buffer() {
        assert!(limit <= wire.len() - at, "room beyond the frame: {limit}");
        let n = limit.min(65_536);
        buf.extend_from_slice(&wire[at..at + n]);
        at += n;
        direct += n;
        server.payload_read(&mut received);
    }
    assert_eq!(at, wire.len());
    assert_eq!(direct, wire.len() - 20);
    assert_eq!(received, [Received::Message { kind: MessageKind::Binary, data }]);
    // No room between frames, nor in a control frame between fragments.
    assert!(server.payload_buffer().is_none());
    let first = client_frame(OpCode::Binary, false, false, &[7; 40_000]);
    server.handle_input(&mut first[..20].to_vec(), &mut received);
    assert!(server.payload_buffer().is_some(), "room in the first fragment");
    server.handle_all(&mut first[20..].to_vec(), &mut received);
    let ping = client_frame(OpCode::Ping, true, false, b"ping payload");
    server.handle_input(&mut ping[..8].to_vec(), &mut received);
    assert!(server.payload_buffer().is_none(), "room in a ping between fragments");

    // Appended bytes not yet taken in: a second call offers what is left
    // of the room, and handle_input takes them in before its own input.
    let mut server = Endpoint::server(EndpointConfig::default());
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let wire = client_frame(OpCode::Binary, true, false, &data);
    let mut received = Vec::new();
    server.handle_input(&mut wire[..14].to_vec(), &mut received);
    let (buf, limit) = server.payload_buffer().expect("room");
    assert_eq!(limit, data.len());
    buf.extend_from_slice(&wire[14..40_014]);
    let (buf, left) = server.payload_buffer().expect("the rest of the room");
    assert_eq!(left, data.len() - 40_000);
    buf.extend_from_slice(&wire[40_014..50_014]);
    assert_eq!(server.handle_input(&mut wire[50_014..].to_vec(), &mut received), data.len() - 50_000);
    assert_eq!(received, [Received::Message { kind: MessageKind::Binary, data }]);

    let mut server = Endpoint::server(EndpointConfig::default());
    let mut text = "κόσμε".repeat(5000).into_bytes();
    text[20_001] = 0xff;
    let mut wire = client_frame(OpCode::Text, true, false, &text);
    wire.extend(client_frame(OpCode::Close, true, false, &1000u16.to_be_bytes()));
    let mut received = Vec::new();
    server.handle_input(&mut wire[..10].to_vec(), &mut received);
    let (buf, limit) = server.payload_buffer().expect("room for the text");
    assert_eq!(limit, text.len() - 2);
    buf.extend_from_slice(&wire[10..10 + limit]);
    server.payload_read(&mut received);
    assert_eq!(received, [Received::Failed(Error::InvalidUtf8)]);
    assert!(server.payload_buffer().is_none(), "no room after a failure");
    server.handle_all(&mut wire[10 + limit..].to_vec(), &mut received);
    assert!(server.is_closed(), "the close after the failure was not seen");
    let frames = server_frames(server.output());
    assert_eq!(frames.len(), 1);
    assert_eq!(close_code(&frames[0].2), Some(1007));
}

/// Reads a single-frame message as wsecho does: its first bytes from a
/// read buffer (`handle_input`), the rest straight into the message's
/// spare capacity (as tokio's `read_buf` does) in reads of up to `read`
/// bytes. Returns the message's data and how often its buffer grew.
fn read_directly(server: &mut Endpoint, wire: &[u8], first: usize, read: usize) -> (Vec<u8>, usize) {
    let mut received = Vec::new();
    assert_eq!(server.handle_input(&mut wire[..first].to_vec(), &mut received), first);
    let mut at = first;
    let (mut grown, mut capacity) = (0, 0);
    while let Some((buf, limit)) = server.payload_buffer() {
        if buf.capacity() != capacity {
            (grown, capacity) = (grown + 1, buf.capacity());
        }
        let n = limit.min(read).min(buf.capacity() - buf.len());
        assert!(n > 0, "no room offered");
        buf.extend_from_slice(&wire[at..at + n]);
        at += n;
        server.payload_read(&mut received);
    }
    assert_eq!(at, wire.len());
    match received.pop() {
        Some(Received::Message { data, .. }) => (data, grown),
        other => panic!("no message: {other:?}"),
    }
}

/// In a message's last frame the buffer grows to the message's end, not
/// past it: a 1 MiB message leaves a buffer that is recycled (not over
/// the 1 MiB kept), and the next one is read into it without growing.
/// The growth stays geometric however small the reads (a peer that sends
/// its frame a segment at a time does not make every read reallocate),
/// and fragments before the last grow it as a vector does.
#[test]
fn the_last_frame_reserves_no_more_than_the_message_needs() {
    let data: Vec<u8> = (0..1u32 << 20).map(|i| (i % 253) as u8).collect();
    let wire = client_frame(OpCode::Binary, true, false, &data);
    for (first, read) in [(16 << 10, 64 << 10), (1000, 200 << 10), (14, 1 << 20), (1000, 1460)] {
        let mut server = Endpoint::server(EndpointConfig::default());
        let (got, grown) = read_directly(&mut server, &wire, first, read);
        assert_eq!(got, data);
        assert_eq!(got.capacity(), data.len(), "first {first}, reads of {read}");
        assert!(grown <= 6, "grew {grown} times, first {first}, reads of {read}");
        let at = got.as_ptr();
        server.recycle(got);
        let (again, grown) = read_directly(&mut server, &wire, first, read);
        assert_eq!(again, data);
        assert_eq!((again.as_ptr(), again.capacity(), grown), (at, data.len(), 1), "not the recycled buffer");
    }
    // 16 MiB (wsecho's default limit) a segment at a time.
    let big: Vec<u8> = (0..16u32 << 20).map(|i| (i % 251) as u8).collect();
    let wire = client_frame(OpCode::Binary, true, false, &big);
    let config = EndpointConfig { max_message_len: 16 << 20, ..EndpointConfig::default() };
    let (got, grown) = read_directly(&mut Endpoint::server(config), &wire, 1000, 1460);
    assert!(got == big && got.capacity() == big.len(), "capacity {}", got.capacity());
    assert!(grown <= 10, "grew {grown} times");
    // Many fragments: not one reallocation per fragment.
    let mut server = Endpoint::server(EndpointConfig::default());
    let mut received = Vec::new();
    let mut grown = 0;
    let mut capacity = 0;
    for i in 0..200 {
        let frame =
            client_frame(if i == 0 { OpCode::Binary } else { OpCode::Continuation }, i == 199, false, &[9; 20_000]);
        server.handle_input(&mut frame[..14].to_vec(), &mut received);
        let mut at = 14;
        while let Some((buf, limit)) = server.payload_buffer() {
            buf.extend_from_slice(&frame[at..at + limit]);
            at += limit;
            if buf.capacity() != capacity {
                (grown, capacity) = (grown + 1, buf.capacity());
            }
            server.payload_read(&mut received);
        }
    }
    assert!(matches!(&received[..], [Received::Message { data, .. }] if data.len() == 4_000_000));
    assert!(grown <= 16, "the buffer grew {grown} times over 200 fragments");
}
